"""A command's first request: does the base URL answer like Celonis? (issue 22 #12)

Another server may listen at the base URL: Airflow's api-server on 8080, a proxy's login
page, a host that serves a web site. Its answers fail each request in its own way (a job
"not started: the answer is not JSON", a 404 that reads as a missing job), and `run` then
wrote a state file and printed a resume hint for a run that never reached Celonis.

So before a command looks anything up, starts anything or writes a state file, it reads
`GET /integration/api/pools`: the one endpoint whose answer does not depend on the
manifest's ids. Celonis answers it with a JSON list of pools (each with an id), or refuses
the key (401, or 403 when it may not list pools): the command then goes on as before and
meets the refusal where it did (a run's report says that nothing started). Anything
else is `NotCelonisError` (exit 3): a 404, a redirect, another 4xx, an answer that is not
JSON, JSON of another shape, an HTML page with a 401 or 403. The message names the base
URL, the status and the media type, never the body. Network failures, 5xx and 429 are
raised as they are (retried first, as every read).
"""

from __future__ import annotations

import requests

from runner.api.auth import TOKEN_PATH
from runner.api.client import POOLS_PATH, CelonisClient, pools_in
from runner.api.errors import (
    ApiError,
    AuthError,
    NetworkError,
    NotCelonisError,
    ProtocolError,
    RateLimitedError,
    ServerError,
)
from runner.api.transport import content_type
from runner.api.types import PoolInfo

HINT = (
    "Is CELONIS_BASE_URL / --base-url / connection.base_url the team's Celonis URL"
    " (https://TEAM.REALM.celonis.cloud)? Another server may listen there (Airflow's"
    " api-server on 8080; the emulator's default port is 8491)"
)


def first_contact(client: CelonisClient) -> list[PoolInfo] | None:
    """The team's pools; None when Celonis refused the key or its listing of pools (a 401 or
    403, or an OAuth token request's refusal, that is not an HTML page).

    NotCelonisError when the base URL answers, but not like Celonis (an OAuth token request
    on the way included); any other ApiError (no answer, 5xx, 429) as the request raised it."""
    try:
        response = client.transport.request("GET", POOLS_PATH)
    except (NetworkError, ServerError, RateLimitedError):
        raise
    except AuthError as error:
        if error.content_type == "text/html" or error.status == 404:
            raise _not_celonis_error(client.base_url, error) from None
        # Celonis refused the key (401, a token request's 4xx) or its listing of pools (403):
        # the command meets the refusal where it did before (a run's report says nothing
        # started), and a 403 key may still read its own pools
        return None
    except ApiError as error:
        raise _not_celonis_error(client.base_url, error) from None
    return _pools(client, response)


def _pools(client: CelonisClient, response: requests.Response) -> list[PoolInfo]:
    """The pools of a 2xx answer; NotCelonisError when it is not JSON or not a list of pools."""
    kind = content_type(response)
    try:
        answer = client.transport.json(response, "GET", POOLS_PATH)
    except ProtocolError:
        what = "an answer that is not JSON"
        raise not_celonis(client.base_url, response.status_code, kind, what) from None
    try:
        return pools_in(answer)
    except ProtocolError:
        what = "JSON, but not the list of data pools Celonis answers there"
        raise not_celonis(client.base_url, response.status_code, kind, what) from None


def _not_celonis_error(base_url: str, error: ApiError) -> NotCelonisError:
    return not_celonis(
        base_url, error.status, error.content_type, _refusal(error), request=error.path
    )


def _refusal(error: ApiError) -> str:
    """What an answer that raised `error` was, in words."""
    status = error.status or 0
    if error.content_type == "text/html":
        return "an HTML page"
    if status == 404:
        return "not found, where Celonis lists its data pools"
    if 300 <= status < 400:
        return "a redirect"
    if 200 <= status < 300:
        return "an answer that is not JSON"
    return "an answer Celonis does not give there"


def not_celonis(
    base_url: str,
    status: int | None,
    kind: str | None,
    what: str,
    *,
    request: str = POOLS_PATH,
) -> NotCelonisError:
    """The error for an answer from `base_url` that is not Celonis': status and media type only,
    never the body."""
    media = f" ({kind})" if kind else " (no Content-Type)"
    method = "POST" if request == TOKEN_PATH else "GET"
    return NotCelonisError(
        f"{base_url} does not answer like Celonis: {method} {request} got HTTP {status}{media},"
        f" {what}; nothing was started. {HINT}",
        method=method,
        path=request,
        status=status,
        content_type=kind,
    )
