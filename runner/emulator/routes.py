"""The Celonis endpoints: auth, routing, and each endpoint's answer from the job state.

Paths, methods and shapes follow what is known of the API, written up in
docs/celonis-api.md (Celonis' documentation and what PyCelonis 2.x calls).
The caller holds the state's lock and has advanced it to `now`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from runner.emulator.auth import Credentials
from runner.emulator.execute_body import SubsetError, parse_subset
from runner.emulator.responses import (
    Request,
    Response,
    celonis_error,
    empty_response,
    forbidden,
    json_response,
    unauthorized,
)
from runner.emulator.scenario import ScenarioTask, TaskType
from runner.emulator.state import EmulatedJob, State, Subset

MODES = ("FULL", "DELTA")
ITEM_TYPES = ("JOB", "TASK", "STEP")
DEFAULT_LIMIT = 100

Handler = Callable[[Request, list[str], float], Response]

_SEGMENT = "([^/]+)"
_POOL = f"/integration/api/pools/{_SEGMENT}"


class _Answer(Exception):
    """Stops handling with this response (a 4xx found while reading the request)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Routes:
    def __init__(self, state: State, credentials: Credentials) -> None:
        self.state = state
        self.credentials = credentials
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"^/api/cloud$"), {"GET": self.cloud}),
            (re.compile(r"^/api/cloud/permissions$"), {"GET": self.permissions}),
            (re.compile(r"^/api/team$"), {"GET": self.team}),
            (re.compile(f"^{_POOL}$"), {"GET": self.pool}),
            (re.compile(f"^{_POOL}/jobs/{_SEGMENT}/tasks/?$"), {"GET": self.tasks}),
            (
                re.compile(f"^{_POOL}/jobs/{_SEGMENT}/extractions/{_SEGMENT}/expanded$"),
                {"GET": self.extraction},
            ),
            (re.compile(f"^{_POOL}/jobs/{_SEGMENT}/loads$"), {"GET": self.loads}),
            (
                re.compile(
                    f"^/integration/api/v2/data-pools/{_SEGMENT}/data-jobs/{_SEGMENT}/execute$"
                ),
                {"POST": self.execute_public},
            ),
            (re.compile(r"^/integration/api/pools$"), {"GET": self.pools}),
            (re.compile(f"^{_POOL}/jobs$"), {"GET": self.jobs}),
            (re.compile(f"^{_POOL}/jobs/{_SEGMENT}$"), {"GET": self.job}),
            (re.compile(f"^{_POOL}/jobs/{_SEGMENT}/execute$"), {"POST": self.execute_internal}),
            (re.compile(f"^{_POOL}/jobs/{_SEGMENT}/cancel$"), {"POST": self.cancel}),
            (re.compile(f"^{_POOL}/logs/status$"), {"GET": self.logs_status}),
            (re.compile(f"^{_POOL}/logs/executions$"), {"GET": self.execution_items}),
            (re.compile(f"^{_POOL}/logs/executions/detail$"), {"GET": self.log_detail}),
            (re.compile(f"^{_POOL}/logs/{_SEGMENT}/executions$"), {"GET": self.history}),
        ]

    def respond(self, request: Request, now: float) -> Response:
        try:
            if request.path == "/oauth2/token":
                return self.token(request, now)
            if not self.credentials.allows(request.authorization, now):
                return unauthorized()
            for pattern, handlers in self.routes:
                match = pattern.match(request.path)
                if match is None:
                    continue
                handler = handlers.get(request.method)
                if handler is None:
                    response = celonis_error(405, "Method Not Allowed", "METHOD_NOT_ALLOWED")
                    response.headers["Allow"] = ", ".join(handlers)
                    return response
                params = [unquote(g).lower() for g in match.groups()]
                return handler(request, params, now)
            return celonis_error(404, "Not Found", "NOT_FOUND")
        except _Answer as answer:
            return answer.response

    # -- helpers -------------------------------------------------------------------

    def _check_pool(self, pool_id: str) -> None:
        if pool_id in self.state.scenario.forbidden_pools:
            raise _Answer(forbidden())
        if pool_id not in self.state.pools:
            raise _Answer(celonis_error(404, f"Data pool {pool_id} not found.", "NOT_FOUND"))

    def _job(self, pool_id: str, job_id: str) -> EmulatedJob:
        self._check_pool(pool_id)
        job = self.state.job(pool_id, job_id)
        if job is None:
            title = f"Data job {job_id} not found in data pool {pool_id}."
            raise _Answer(celonis_error(404, title, "NOT_FOUND"))
        return job

    # -- endpoints -----------------------------------------------------------------

    def token(self, request: Request, now: float) -> Response:
        if request.method != "POST":
            return json_response(405, {"error": "method_not_allowed"}, {"Allow": "POST"})
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        status, body = self.credentials.token(request.authorization, form, now)
        return json_response(status, body, {"Cache-Control": "no-store"})

    def cloud(self, request: Request, params: list[str], now: float) -> Response:
        return json_response(200, _USER)

    def permissions(self, request: Request, params: list[str], now: float) -> Response:
        return json_response(200, _PERMISSIONS)

    def team(self, request: Request, params: list[str], now: float) -> Response:
        return json_response(200, _TEAM)

    def pool(self, request: Request, params: list[str], now: float) -> Response:
        (pool_id,) = params
        self._check_pool(pool_id)
        return json_response(200, self.state.pool_view(self.state.pools[pool_id]))

    def tasks(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        job = self._job(pool_id, job_id)
        return json_response(200, [self.state.task_view(job, t) for t in job.spec.task_list])

    def extraction(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id, task_id = params
        job = self._job(pool_id, job_id)
        task = _task(job, task_id, "EXTRACTION")
        return json_response(200, self.state.extraction_view(job, task))

    def loads(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        job = self._job(pool_id, job_id)
        loads = [t for t in job.spec.task_list if t.type == "DATA_MODEL_LOAD"]
        return json_response(200, [self.state.load_view(job, t) for t in loads])

    def execute_public(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        self._job(pool_id, job_id)
        return self._execute(job_id, request.query.get("mode"), now)

    def execute_internal(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        job = self._job(pool_id, job_id)
        try:
            body = json.loads(request.body.decode("utf-8")) if request.body.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return celonis_error(400, "The request body is not valid JSON.", "BAD_REQUEST")
        if not isinstance(body, dict):
            return celonis_error(400, "The request body must be a JSON object.", "BAD_REQUEST")
        try:
            subset = parse_subset(body, job.spec)
        except SubsetError as exc:
            return celonis_error(400, str(exc), "BAD_REQUEST")
        return self._execute(job_id, body.get("mode"), now, subset)

    def _execute(
        self, job_id: str, mode: object, now: float, subset: Subset | None = None
    ) -> Response:
        if mode not in MODES:
            title = f"Invalid execution mode {mode!r}: use FULL or DELTA."
            return celonis_error(400, title, "BAD_REQUEST")
        result = self.state.execute(job_id, str(mode), now, subset)
        if result == "rejected":
            return celonis_error(409, "Data job is already running.", "JOB_ALREADY_RUNNING")
        return empty_response(200)

    def cancel(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        self._job(pool_id, job_id)
        self.state.cancel(job_id, now)
        return empty_response(200)

    def pools(self, request: Request, params: list[str], now: float) -> Response:
        return json_response(200, self.state.pool_list())

    def jobs(self, request: Request, params: list[str], now: float) -> Response:
        (pool_id,) = params
        self._check_pool(pool_id)
        views = [self.state.job_view(job, now) for job in self.state.pool_jobs(pool_id)]
        return json_response(200, views)

    def job(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        return json_response(200, self.state.job_view(self._job(pool_id, job_id), now))

    def logs_status(self, request: Request, params: list[str], now: float) -> Response:
        (pool_id,) = params
        self._check_pool(pool_id)
        if self.state.scenario.logs_status_unavailable:
            return celonis_error(404, "Not Found", "NOT_FOUND")
        entries = [self.state.status_entry(job, now) for job in self.state.pool_jobs(pool_id)]
        return json_response(200, entries)

    def history(self, request: Request, params: list[str], now: float) -> Response:
        pool_id, job_id = params
        items = self.state.history(self._job(pool_id, job_id), now)
        page, pages = _page(items, request)
        return json_response(200, {"executionItems": page, "numOfPages": pages})

    def execution_items(self, request: Request, params: list[str], now: float) -> Response:
        (pool_id,) = params
        self._check_pool(pool_id)
        execution_id, item_type = _execution_query(request)
        execution = self.state.find_execution(pool_id, execution_id)
        if execution is None:
            return json_response(200, [])
        item_id = request.query.get("id") or None
        return json_response(200, self.state.execution_items(execution, item_type, item_id, now))

    def log_detail(self, request: Request, params: list[str], now: float) -> Response:
        (pool_id,) = params
        self._check_pool(pool_id)
        execution_id, item_type = _execution_query(request)
        execution = self.state.find_execution(pool_id, execution_id)
        lines: list[dict[str, Any]] = []
        if execution is not None and item_type != "STEP":
            item_id = request.query.get("id") or None
            lines = self.state.log_messages(execution, item_type, item_id, now)
        page, pages = _page(lines, request)
        return json_response(200, {"logMessages": page, "numOfPages": pages})


def _task(job: EmulatedJob, task_id: str, kind: TaskType) -> ScenarioTask:
    for task in job.spec.task_list:
        if task.id == task_id and task.type == kind:
            return task
    title = f"Task {task_id} not found in data job {job.spec.id}."
    raise _Answer(celonis_error(404, title, "NOT_FOUND"))


# What `GET /api/cloud`, `/api/cloud/permissions` and `/api/team` answer: fixed values of
# the shapes PyCelonis reads; the emulator has one user in one team.
_TEAM_ID = "00000000-0000-4000-8000-00000000e317"
_USER = {
    "id": "00000000-0000-4000-8000-0000000005e7",
    "email": "emulator@example.invalid",
    "name": "Emulator User",
    "teamName": "emulator",
    "teamId": _TEAM_ID,
    "teamDomain": "emulator",
    "active": True,
    "current": True,
    "language": "en",
}
_PERMISSIONS = [
    {"serviceName": "integration", "permissions": ["VIEW", "MANAGE", "EXECUTE"]},
    {"serviceName": "team", "permissions": ["VIEW"]},
]
_TEAM = {
    "id": _TEAM_ID,
    "name": "emulator",
    "domain": "emulator",
    "trackingEnabled": False,
    "active": True,
}


def _execution_query(request: Request) -> tuple[str, str | None]:
    execution_id = request.query.get("executionId", "").lower()
    if not execution_id:
        raise _Answer(celonis_error(400, "Query parameter executionId is required.", "BAD_REQUEST"))
    item_type = request.query.get("type") or None
    if item_type is not None:
        item_type = item_type.upper()
        if item_type not in ITEM_TYPES:
            title = f"Invalid type {request.query['type']!r}: use JOB, TASK or STEP."
            raise _Answer(celonis_error(400, title, "BAD_REQUEST"))
    return execution_id, item_type


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        title = f"Query parameter {name} must be a whole number of at least {minimum}."
        raise _Answer(celonis_error(400, title, "BAD_REQUEST"))
    return value


def _page(items: list[dict[str, Any]], request: Request) -> tuple[list[dict[str, Any]], int]:
    """One page (0-based `page`, `limit` per page) and the number of pages."""
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1)
    page = _int_param(request, "page", 0, 0)
    return items[page * limit : (page + 1) * limit], math.ceil(len(items) / limit)
