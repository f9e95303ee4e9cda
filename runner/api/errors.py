"""The errors the API client raises: one small tree, every message safe to show.

    RunnerError (runner.errors)
     +-- ApiError                 exit 3; any other unexpected HTTP status (400, 409, ...)
          +-- AuthError           401 (the key or token was refused), 403 (no permission)
          +-- NotFoundError       404: unknown pool or job
          +-- RateLimitedError    429, carries the wait the server asked for
          +-- ServerError         5xx
          +-- NetworkError        connection refused or dropped, timeouts, TLS failures
          +-- ProtocolError       an answer that is not the JSON we expect
               +-- NotCelonisError the base URL answers, but not like Celonis (another server)
          +-- JobBusyError        the job is already QUEUED or RUNNING: not triggered
          +-- UnclearExecuteError an execute may or may not have started the job

Messages name the HTTP method, the path, the status and Celonis' `errorCode`
and `title` when the answer has them. They never carry a key, a token, a
header or a `requests` object: the transport raises these errors outside the
`except` block of the `requests` exception, so no exception chain leads back
to the request either.
"""

from __future__ import annotations

from typing import Literal

from runner.api.types import ExecutionHandle, JobStatus
from runner.errors import RunnerError
from runner.shared_types import Mode

NetworkKind = Literal[
    "refused",  # the connection was never established: nothing reached the server
    "connect_timeout",  # no connection within the connect timeout: nothing reached the server
    "read_timeout",  # sent, no answer in time: the server may have acted on it
    "dropped",  # the connection broke after sending: the server may have acted on it
    "tls",  # certificate or TLS failure: not transient, never retried
    "other",
]

_NOT_SENT: frozenset[str] = frozenset({"refused", "connect_timeout", "tls"})


class ApiError(RunnerError):
    """A request to the Celonis API failed; `str()` is the message for the user.

    `took_no_effect`: set by `CelonisClient.execute` when the execute certainly did not
    start the job (no POST went out, Celonis refused it with a definite answer, or the
    status shows it did not start), so the job is "not started", not "may be running"."""

    took_no_effect = False

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        error_code: str | None = None,
        title: str | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.error_code = error_code
        self.title = title
        self.content_type = content_type
        """The answer's media type (`application/json`, `text/html`), when there was an answer."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthError(ApiError):
    """401 or 403, or the OAuth token request was refused."""


class NotFoundError(ApiError):
    """404: the pool or job does not exist, or the key cannot see it."""


class RateLimitedError(ApiError):
    """429. `retry_after` is the wait in seconds the server asked for, if it said."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = 429,
        error_code: str | None = None,
        title: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, method=method, path=path, status=status, error_code=error_code, title=title
        )
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: a fault on Celonis' side."""


class NetworkError(ApiError):
    """No usable HTTP answer: see `kind` and `request_may_have_arrived`."""

    def __init__(self, message: str, *, method: str, path: str, kind: NetworkKind) -> None:
        super().__init__(message, method=method, path=path)
        self.kind: NetworkKind = kind

    @property
    def request_may_have_arrived(self) -> bool:
        """False only when the request provably never reached the server."""
        return self.kind not in _NOT_SENT

    @property
    def transient(self) -> bool:
        return self.kind != "tls"


class ProtocolError(ApiError):
    """An answer we cannot use: not JSON, or not the shape the API is known to have."""


class NotCelonisError(ProtocolError):
    """The base URL answered a command's first request, but not as Celonis answers it (an HTML
    page, JSON of another shape, a 404 where Celonis has a resource): another server listens
    there. Raised before anything is started (runner.api.first_contact)."""


class JobBusyError(ApiError):
    """The job is QUEUED or RUNNING (someone else's run), so it was not triggered.

    `job_status` is what the API said; wait until it is finished, then call
    `execute` again. `running_at_ms` (Celonis' clock) is a moment at which that
    run was going: the start it showed, or the latest moment of the refusal
    (`running_from_ms` then the earliest).
    """

    def __init__(
        self,
        job_status: JobStatus,
        *,
        pool_id: str,
        refused: bool = False,
        running_at_ms: int | None = None,
        running_from_ms: int | None = None,
    ) -> None:
        if refused:
            what = "already running (the API refused the execute with HTTP 409)"
        else:
            what = f"already {job_status.status} (a run this runner did not start)"
        super().__init__(
            f"job {job_status.job_id} in pool {pool_id} is {what}:"
            " wait for it to finish, then trigger it again",
            status=409 if refused else None,
        )
        self.job_status = job_status
        self.pool_id = pool_id
        self.running_at_ms = running_at_ms
        self.running_from_ms = running_from_ms

    def claim(self, mode: Mode, triggered_at: float) -> ExecutionHandle:
        """The claim on the run that keeps the job busy (an adopted run, nothing sent)."""
        job_id = self.job_status.job_id
        return ExecutionHandle(
            self.pool_id,
            job_id,
            mode,
            JobStatus(job_id, None),
            triggered_at,
            0,
            running_at_ms=self.running_at_ms,
            running_from_ms=self.running_from_ms,
        )


class UnclearExecuteError(ApiError):
    """The execute POST got no clear answer: the job may be running.

    `handle` (what the job showed before, `since_ms`) is what
    `runner.lifecycle.settle` needs to find out from the history; the execute is
    never sent again within the run.
    """

    def __init__(self, handle: ExecutionHandle, cause: ApiError) -> None:
        super().__init__(
            f"job {handle.job_id} in pool {handle.pool_id}: the execute got no clear answer"
            f" ({cause}); whether it started is read from the job's execution history",
            method=cause.method,
            path=cause.path,
            status=cause.status,
        )
        self.handle = handle
