"""Requests and answers as plain values, and Celonis-like error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    """The first value of each query parameter."""
    authorization: str | None
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status,
        json.dumps(data).encode("utf-8"),
        {"Content-Type": "application/json", **(headers or {})},
    )


def empty_response(status: int = 200) -> Response:
    return Response(status)


def celonis_error(status: int, title: str, error_code: str) -> Response:
    return json_response(status, {"title": title, "status": status, "errorCode": error_code})


_DEFAULT_ERRORS: dict[int, dict[str, Any]] = {
    400: {"title": "Bad Request", "status": 400, "errorCode": "BAD_REQUEST"},
    401: {"error": "Unauthorized"},
    403: {"title": "Access Denied.", "status": 403, "errorCode": "ADMIN_ACCESS_ERROR"},
    404: {"title": "Not Found", "status": 404, "errorCode": "NOT_FOUND"},
    409: {
        "title": "Data job is already running.",
        "status": 409,
        "errorCode": "JOB_ALREADY_RUNNING",
    },
    429: {"title": "Rate limit exceeded.", "status": 429, "errorCode": "LIMIT_RATE_EXCEEDED"},
}


def default_error_body(status: int) -> Any:
    """What a fault with this status answers when it gives no body (None: an empty body)."""
    if status in _DEFAULT_ERRORS:
        return dict(_DEFAULT_ERRORS[status])
    if status < 400:
        return None
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code = "INTERNAL_SERVER_ERROR" if status >= 500 else "ERROR"
    return {"title": phrase, "status": status, "errorCode": code}


def unauthorized() -> Response:
    return json_response(401, {"error": "Unauthorized"})


def forbidden() -> Response:
    return json_response(403, _DEFAULT_ERRORS[403])
