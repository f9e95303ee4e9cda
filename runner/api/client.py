"""Operations on Celonis data jobs, and the handle that tells this run's status from a stale one.

The client never trusts a finished status right after an execute: the
`ExecutionHandle` remembers the job's markers (`currentExecutionId`,
`latestExecutionItemId`, `lastExecutionStartDate`) from before the trigger,
and a finished status only counts once a marker moved (or the run was seen
QUEUED/RUNNING). The execute POST is never re-sent blindly: when its outcome
is unknown the client reads the status until it has settled.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import requests
import structlog

from runner.api.auth import Auth
from runner.api.errors import (
    ApiError,
    AuthError,
    JobBusyError,
    NetworkError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from runner.api.transport import (
    DEFAULT_TIMEOUTS,
    RetryPolicy,
    Transport,
    error_kind,
    retryable,
    shown_path,
)
from runner.clock import Clock
from runner.manifest.model import Mode

log = structlog.get_logger(__name__)

ACTIVE_STATUSES = frozenset({"QUEUED", "RUNNING"})
FINISHED_STATUSES = frozenset({"SUCCESS", "FAIL", "CANCEL", "SKIPPED"})
KNOWN_STATUSES = ACTIVE_STATUSES | FINISHED_STATUSES

CURRENT_EXECUTION_ID = "currentExecutionId"
LATEST_EXECUTION_ITEM_ID = "latestExecutionItemId"
LAST_EXECUTION_START = "lastExecutionStartDate"
MARKERS = (CURRENT_EXECUTION_ID, LATEST_EXECUTION_ITEM_ID, LAST_EXECUTION_START)

FAILURE_LOG_PAGE_SIZE = 200
FAILURE_LOG_MAX_PAGES = 5


@dataclass(frozen=True)
class JobStatus:
    """A job's status as one answer showed it. Any field may be None (never ran, or not given).

    `job_status` answers carry `current_execution_id` and `latest_execution_item_id`;
    `pool_statuses` entries carry `last_execution_start` (epoch ms).
    """

    job_id: str
    status: str | None
    current_execution_id: str | None = None
    latest_execution_item_id: str | None = None
    last_execution_start: int | None = None

    @property
    def is_active(self) -> bool:
        """QUEUED or RUNNING."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        """SUCCESS, FAIL, CANCEL or SKIPPED (only SUCCESS is a success)."""
        return self.status in FINISHED_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def is_unknown(self) -> bool:
        """A status outside the known list: treat it as still running (never as success)."""
        return self.status is not None and self.status not in KNOWN_STATUSES

    @property
    def in_progress(self) -> bool:
        """Active, or unknown (which counts as still running)."""
        return self.is_active or self.is_unknown

    def marker(self, name: str) -> str | int | None:
        if name == CURRENT_EXECUTION_ID:
            return self.current_execution_id
        if name == LATEST_EXECUTION_ITEM_ID:
            return self.latest_execution_item_id
        if name == LAST_EXECUTION_START:
            return self.last_execution_start
        raise KeyError(name)

    def markers(self) -> dict[str, str | int]:
        """The markers this status has, by their API names."""
        found = {name: self.marker(name) for name in MARKERS}
        return {name: value for name, value in found.items() if value is not None}


class Observation(StrEnum):
    """What a status says about the run an ExecutionHandle stands for."""

    NOT_YET = "not_yet"
    """The API does not show this run yet: nothing, or the previous run's (stale) end."""
    ACTIVE = "active"
    """This run is QUEUED or RUNNING, or in a status we do not know (counts as running)."""
    FINISHED = "finished"
    """This run has ended; the status's `status` is its outcome."""


@dataclass(frozen=True)
class ExecutionHandle:
    """One triggered run of a job, and what the job looked like just before the trigger.

    `before` merges the job's own answer (`currentExecutionId`,
    `latestExecutionItemId`) and its entry in the pool's `logs/status`
    (`lastExecutionStartDate`). `compared` names the markers whose
    before-value was actually read (a null included), so a status from either
    source can be judged: a marker counts as moved when it is in `compared`,
    present in the new status and different from before (null -> value is a
    move). A marker missing from the new status says nothing.

    `triggered_at` is `clock.monotonic()` when the first POST went out;
    `attempts` counts the POSTs sent.
    """

    pool_id: str
    job_id: str
    mode: Mode
    before: JobStatus
    triggered_at: float
    attempts: int
    compared: frozenset[str] = frozenset(MARKERS)
    sent_at: float | None = None
    """Wall-clock epoch seconds when the first POST went out (None: not known)."""

    @property
    def never_ran_before(self) -> bool:
        return self.before.status is None and not self.before.markers()

    def marker_moved(self, status: JobStatus) -> bool:
        """A marker in `status` differs from its value before the trigger."""
        for name in self.compared:
            now = status.marker(name)
            if now is not None and now != self.before.marker(name):
                return True
        return False

    def observe(self, status: JobStatus, *, seen_active: bool = False) -> Observation:
        """Whether `status` (from `job_status` or `pool_statuses`) shows this run, and how far.

        QUEUED, RUNNING or an unknown value: ACTIVE. A finished status is
        FINISHED only if a marker moved, the job had never run before, or
        `seen_active` (pass True once an earlier observation of this handle
        was ACTIVE: the status resource has caught up, so the next end is
        ours). Otherwise it is the previous run's end seen through a stale
        status: NOT_YET, keep polling.
        """
        if status.job_id.lower() != self.job_id.lower():
            raise ValueError(f"status of job {status.job_id} given to the handle of {self.job_id}")
        if status.in_progress:
            return Observation.ACTIVE
        if status.status is None:
            return Observation.NOT_YET
        if seen_active or self.never_ran_before or self.marker_moved(status):
            return Observation.FINISHED
        return Observation.NOT_YET

    def shows_start(self, status: JobStatus) -> bool:
        """Evidence that a run began after `before` was read (used after an unclear execute)."""
        if status.in_progress or self.marker_moved(status):
            return True
        return self.before.status is None and status.status is not None

    @classmethod
    def unknown_before(
        cls, pool_id: str, job_id: str, mode: Mode, sent_at: float | None
    ) -> ExecutionHandle:
        """A handle for a resumed job whose execute may have gone out and whose before-markers
        were never read: no marker counts as compared."""
        before = JobStatus(job_id=job_id, status=None)
        return cls(pool_id, job_id, mode, before, 0.0, 1, frozenset(), sent_at)


class Settlement(StrEnum):
    """What one round of reads says about an execute whose outcome was unclear."""

    STARTED = "started"
    NOT_STARTED = "not_started"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class PoolInfo:
    id: str
    name: str | None


@dataclass(frozen=True)
class JobInfo:
    id: str
    name: str | None
    pool_id: str
    status: JobStatus


@dataclass(frozen=True)
class ExecutionInfo:
    """One entry of a job's execution history. Dates are epoch milliseconds; any may be None."""

    execution_id: str | None
    status: str | None
    start_date: int | None
    end_date: int | None


def _pool_path(pool_id: str) -> str:
    return f"/integration/api/pools/{pool_id}"


class CelonisClient:
    """The Celonis data-job operations the runner needs, over one `requests.Session`.

    Safe to share between threads as far as `requests.Session` is.
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        session: requests.Session,
        clock: Clock,
        *,
        timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.transport = Transport(
            base_url, auth, session, clock, timeouts=timeouts, retry=self.retry, rng=rng
        )
        self._lock = threading.Lock()
        self._no_pool_status: set[str] = set()
        self._unknown_logged: set[tuple[str, str]] = set()

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    # -- reading --

    def job_status(self, pool_id: str, job_id: str) -> JobStatus:
        """`GET /integration/api/pools/{pool}/jobs/{job}`."""
        return self._job_status_with_keys(pool_id, job_id)[0]

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """Statuses of `job_ids` with one `logs/status` request.

        When that endpoint answers 404 or 403 the pool is remembered and each
        job is read on its own from then on; jobs missing from the answer are
        read on their own too.
        """
        wanted = list(dict.fromkeys(job_ids))
        entries = self._pool_entries(pool_id)
        result: dict[str, JobStatus] = {}
        for job_id in wanted:
            entry = entries.get(job_id.lower()) if entries is not None else None
            if entry is None:
                result[job_id] = self.job_status(pool_id, job_id)
            else:
                result[job_id] = dataclasses.replace(entry, job_id=job_id)
        return result

    def list_pools(self) -> list[PoolInfo]:
        """`GET /integration/api/pools`."""
        path = "/integration/api/pools"
        answer = self.transport.get_json(path)
        return [
            PoolInfo(
                id=_required_str(item, "id", "GET", path), name=_opt_str(item, "name", "GET", path)
            )
            for item in _objects(answer, "GET", path)
        ]

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        """`GET /integration/api/pools/{pool}/jobs`."""
        path = f"{_pool_path(pool_id)}/jobs"
        answer = self.transport.get_json(path, pool_id=pool_id)
        jobs = []
        for item in _objects(answer, "GET", path):
            job_id = _required_str(item, "id", "GET", path)
            status, _ = self._parse_job(item, job_id, "GET", path)
            jobs.append(
                JobInfo(
                    id=job_id,
                    name=_opt_str(item, "name", "GET", path),
                    pool_id=pool_id,
                    status=status,
                )
            )
        return jobs

    def latest_execution(self, pool_id: str, job_id: str) -> ExecutionInfo | None:
        """The newest entry of the job's execution history; None if it never ran.

        `GET /integration/api/pools/{pool}/logs/{job}/executions?limit=1&page=0`.
        """
        path = f"{_pool_path(pool_id)}/logs/{job_id}/executions"
        params: dict[str, str | int] = {"limit": 1, "page": 0}
        shown = shown_path(path, params)
        answer = self.transport.get_json(path, params, pool_id=pool_id, job_id=job_id)
        if not isinstance(answer, dict):
            raise _unexpected("GET", shown, "expected a JSON object")
        items = _objects(answer.get("executionItems") or [], "GET", shown)
        if not items:
            return None
        item = items[0]
        return ExecutionInfo(
            execution_id=_opt_id(item, "executionId", "GET", shown)
            or _opt_id(item, "id", "GET", shown),
            status=_opt_str(item, "status", "GET", shown),
            start_date=_epoch_ms(item.get("startDate"), "startDate", "GET", shown),
            end_date=_epoch_ms(item.get("endDate"), "endDate", "GET", shown),
        )

    def failure_reason(self, pool_id: str, job_id: str) -> str | None:
        """The ERROR log lines of the latest execution's failed tasks, joined; None if none.

        Best effort: API errors are logged and give None, except AuthError.
        """
        try:
            return self._failure_reason(pool_id, job_id)
        except AuthError:
            raise
        except ApiError as error:
            log.warning(
                "api.failure_reason_unavailable", pool=pool_id, job=job_id, error=str(error)
            )
            return None

    # -- acting --

    def execute(
        self,
        pool_id: str,
        job_id: str,
        mode: Mode,
        *,
        pool_entries: Mapping[str, JobStatus] | None = None,
    ) -> ExecutionHandle:
        """Trigger a run: `POST /integration/api/v2/data-pools/{pool}/data-jobs/{job}/execute`.

        Reads the status first: JobBusyError if the job is QUEUED, RUNNING or in
        an unknown state. The POST is retried after a 429 or a connection that
        never opened; after a timeout, a dropped connection or a 5xx it is only
        sent again once the status stayed unchanged for `RetryPolicy.execute_settle`.

        `pool_entries`: the pool's `logs/status` (from `pool_entries`) read just before a
        batch of executes, so that starting N jobs of a pool reads it once, not N times.
        """
        if mode not in ("FULL", "DELTA"):
            raise ValueError(f"mode must be FULL or DELTA, not {mode!r}")
        bound = log.bind(pool=pool_id, job=job_id, mode=mode)
        before, compared = self._snapshot(pool_id, job_id, pool_entries)
        if before.in_progress:
            raise JobBusyError(before, pool_id=pool_id)
        handle = ExecutionHandle(pool_id, job_id, mode, before, 0.0, 0, compared)

        path = f"/integration/api/v2/data-pools/{pool_id}/data-jobs/{job_id}/execute"
        params = {"mode": mode}
        shown = shown_path(path, params)
        transport = self.transport
        state = transport.start()
        posts = 0
        first_sent: float | None = None
        unclear = False  # an earlier POST may have started the job

        def count() -> None:
            nonlocal posts, first_sent
            posts += 1
            if first_sent is None:
                first_sent = self.clock.monotonic()

        while True:
            state.attempts += 1
            try:
                transport.send(
                    "POST", path, params=params, pool_id=pool_id, job_id=job_id, on_send=count
                )
                break
            except ApiError as error:
                if error.path != shown:
                    raise  # the token request failed (after its own retries): nothing was sent
                if retryable(error, idempotent=False):
                    wait = transport.next_wait(state, error)
                    if wait is None:
                        raise
                    transport.sleep_before_retry(state, error, wait)
                    continue
                if error.status == 409 and type(error) is ApiError:
                    if unclear:
                        # The run it refuses for is the one our unclear POST started
                        # after all (its status was slow to show it). Do not start another.
                        bound.warning("api.execute_refused_running", attempts=posts)
                        break
                    raise JobBusyError(
                        self.job_status(pool_id, job_id), pool_id=pool_id, refused=True
                    ) from None
                if not _outcome_unknown(error):
                    raise
                unclear = True
                bound.warning(
                    "api.execute_outcome_unknown", error=error_kind(error), attempt=state.attempts
                )
                if self._started_since(handle):
                    bound.info("api.execute_started_anyway", attempts=posts)
                    break
                elapsed = self.clock.monotonic() - state.started
                if state.attempts >= self.retry.max_attempts or elapsed >= self.retry.budget:
                    bound.warning(
                        "api.giving_up", reason="execute not started", attempts=state.attempts
                    )
                    raise
                bound.warning("api.execute_resend", attempt=state.attempts + 1)
        assert first_sent is not None
        bound.debug("api.executed", attempts=posts, before=before.markers(), status=before.status)
        return ExecutionHandle(pool_id, job_id, mode, before, first_sent, posts, compared)

    def cancel(self, pool_id: str, job_id: str) -> None:
        """`POST /integration/api/pools/{pool}/jobs/{job}/cancel` (retried: cancelling twice is harmless)."""
        path = f"{_pool_path(pool_id)}/jobs/{job_id}/cancel"
        self.transport.request("POST", path, pool_id=pool_id, job_id=job_id, idempotent=True)
        log.debug("api.cancelled", pool=pool_id, job=job_id)

    # -- internals --

    def _started_since(self, handle: ExecutionHandle) -> bool:
        """Poll the status until it shows a new run, or stayed unchanged for the settle period."""
        deadline = self.clock.monotonic() + self.retry.execute_settle
        while True:
            now, _ = self._snapshot(handle.pool_id, handle.job_id)
            if handle.shows_start(now):
                return True
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            self.clock.sleep(min(self.retry.settle_poll, remaining))

    def pool_entries(self, pool_id: str) -> dict[str, JobStatus] | None:
        """The pool's `logs/status` entries by job id (lower case); None when the pool lacks it."""
        return self._pool_entries(pool_id)

    def _snapshot(
        self, pool_id: str, job_id: str, given: Mapping[str, JobStatus] | None = None
    ) -> tuple[JobStatus, frozenset[str]]:
        """The job's answer merged with its pool entry, and the markers actually read."""
        status, keys = self._job_status_with_keys(pool_id, job_id)
        entries = given if given is not None else self._pool_entries(pool_id)
        entry = entries.get(job_id.lower()) if entries is not None else None
        if entry is None:
            return status, keys
        merged = JobStatus(
            job_id=job_id,
            status=status.status,
            current_execution_id=status.current_execution_id,
            latest_execution_item_id=status.latest_execution_item_id,
            last_execution_start=entry.last_execution_start,
        )
        return merged, keys | {LAST_EXECUTION_START}

    def _job_status_with_keys(self, pool_id: str, job_id: str) -> tuple[JobStatus, frozenset[str]]:
        path = f"{_pool_path(pool_id)}/jobs/{job_id}"
        answer = self.transport.get_json(path, pool_id=pool_id, job_id=job_id)
        if not isinstance(answer, dict):
            raise _unexpected("GET", path, "expected a JSON object")
        return self._parse_job(answer, job_id, "GET", path)

    def _pool_entries(self, pool_id: str) -> dict[str, JobStatus] | None:
        """`logs/status` of the pool by job id in lower case; None when the pool lacks it."""
        with self._lock:
            if pool_id in self._no_pool_status:
                return None
        path = f"{_pool_path(pool_id)}/logs/status"
        try:
            answer = self.transport.get_json(path, pool_id=pool_id)
        except (NotFoundError, AuthError) as error:
            if error.status not in (403, 404):
                raise
            with self._lock:
                self._no_pool_status.add(pool_id)
            log.info(
                "api.pool_status_unavailable",
                pool=pool_id,
                status=error.status,
                fallback="one request per job",
            )
            return None
        entries: dict[str, JobStatus] = {}
        for item in _objects(answer, "GET", path):
            job_id = _required_str(item, "id", "GET", path)
            status = _opt_str(item, "status", "GET", path)
            start = _epoch_ms(item.get(LAST_EXECUTION_START), LAST_EXECUTION_START, "GET", path)
            # Keyed in lower case: ids are UUIDs, and a manifest may spell them in capitals.
            entries[job_id.lower()] = JobStatus(job_id, status, last_execution_start=start)
            self._note_unknown(entries[job_id.lower()])
        return entries

    def _parse_job(
        self, item: Mapping[str, object], job_id: str, method: str, path: str
    ) -> tuple[JobStatus, frozenset[str]]:
        status = JobStatus(
            job_id=job_id,
            status=_opt_str(item, "status", method, path),
            current_execution_id=_opt_id(item, CURRENT_EXECUTION_ID, method, path),
            latest_execution_item_id=_opt_id(item, LATEST_EXECUTION_ITEM_ID, method, path),
            last_execution_start=_epoch_ms(
                item.get(LAST_EXECUTION_START), LAST_EXECUTION_START, method, path
            ),
        )
        self._note_unknown(status)
        return status, frozenset(name for name in MARKERS if name in item)

    def _note_unknown(self, status: JobStatus) -> None:
        if not status.is_unknown or status.status is None:
            return
        key = (status.job_id, status.status)
        with self._lock:
            if key in self._unknown_logged:
                return
            self._unknown_logged.add(key)
        log.warning(
            "api.unknown_status",
            job=status.job_id,
            status=status.status,
            treated_as="still running",
        )

    def _failure_reason(self, pool_id: str, job_id: str) -> str | None:
        base = _pool_path(pool_id)
        history_path = f"{base}/logs/{job_id}/executions"
        history = self.transport.get_json(
            history_path, {"limit": 1, "page": 0}, pool_id=pool_id, job_id=job_id
        )
        shown = shown_path(history_path, {"limit": 1, "page": 0})
        if not isinstance(history, dict):
            raise _unexpected("GET", shown, "expected a JSON object")
        items = _objects(history.get("executionItems", []), "GET", shown)
        if not items:
            return None
        latest = items[0]
        execution_id = _opt_id(latest, "executionId", "GET", shown) or _opt_id(
            latest, "id", "GET", shown
        )
        if execution_id is None:
            return None
        tasks_params: dict[str, str | int] = {"executionId": execution_id, "type": "TASK"}
        tasks_path = f"{base}/logs/executions"
        tasks_shown = shown_path(tasks_path, tasks_params)
        tasks = _objects(
            self.transport.get_json(tasks_path, tasks_params, pool_id=pool_id, job_id=job_id),
            "GET",
            tasks_shown,
        )
        found: list[tuple[str | None, list[str]]] = []
        for task in tasks:
            if task.get("status") != "FAIL":
                continue
            task_id = _opt_id(task, "id", "GET", tasks_shown)
            if task_id is None:
                continue
            lines = self._error_lines(pool_id, job_id, execution_id, task_id)
            if lines:
                found.append((_opt_str(task, "name", "GET", tasks_shown), lines))
        if not found:
            return None
        if len(found) == 1:
            return "\n".join(found[0][1])
        # Several failed tasks: say which line is whose.
        return "\n".join(
            f"{name}: {line}" if name else line for name, lines in found for line in lines
        )

    def _error_lines(self, pool_id: str, job_id: str, execution_id: str, item_id: str) -> list[str]:
        path = f"{_pool_path(pool_id)}/logs/executions/detail"
        lines: list[str] = []
        page = 0
        while page < FAILURE_LOG_MAX_PAGES:
            params: dict[str, str | int] = {
                "executionId": execution_id,
                "id": item_id,
                "type": "TASK",
                "limit": FAILURE_LOG_PAGE_SIZE,
                "page": page,
            }
            shown = shown_path(path, params)
            answer = self.transport.get_json(path, params, pool_id=pool_id, job_id=job_id)
            if not isinstance(answer, dict):
                raise _unexpected("GET", shown, "expected a JSON object")
            for entry in _objects(answer.get("logMessages", []), "GET", shown):
                text = entry.get("logMessage")
                if entry.get("level") == "ERROR" and isinstance(text, str) and text.strip():
                    lines.append(text.strip())
            pages = answer.get("numOfPages")
            page += 1
            if not isinstance(pages, int) or page >= pages:
                break
        return lines


def _outcome_unknown(error: ApiError) -> bool:
    """The request may have been acted on although we got no success answer."""
    if isinstance(error, ServerError):
        return True
    return isinstance(error, NetworkError) and error.transient and error.request_may_have_arrived


def _unexpected(method: str, path: str, what: str) -> ProtocolError:
    return ProtocolError(f"{method} {path}: unexpected answer: {what}", method=method, path=path)


def _objects(answer: object, method: str, path: str) -> list[Mapping[str, object]]:
    if not isinstance(answer, list):
        raise _unexpected(method, path, "expected a JSON list")
    items: list[Mapping[str, object]] = []
    for item in answer:
        if not isinstance(item, dict):
            raise _unexpected(method, path, "expected a list of JSON objects")
        items.append(item)
    return items


def _opt_str(item: Mapping[str, object], key: str, method: str, path: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _unexpected(method, path, f"{key} is {type(value).__name__}, expected a string or null")


def _opt_id(item: Mapping[str, object], key: str, method: str, path: str) -> str | None:
    value = item.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _opt_str(item, key, method, path)


def _required_str(item: Mapping[str, object], key: str, method: str, path: str) -> str:
    value = _opt_id(item, key, method, path)
    if value is None:
        raise _unexpected(method, path, f"an entry has no {key}")
    return value


def _epoch_ms(value: object, key: str, method: str, path: str) -> int | None:
    """Epoch milliseconds from a number, a string of digits or an ISO-8601 date."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return int(when.timestamp() * 1000)
    raise _unexpected(method, path, f"{key} is not a date: {str(value)[:40]!r}")
