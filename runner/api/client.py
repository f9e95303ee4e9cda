"""Operations on Celonis data jobs: reads, the execute, the cancel, and the JSON they answer.

The execute returns an `ExecutionHandle`: what the job showed before the
send and when the send went out on Celonis' clock (measured by the
transport's `CelonisClock`). Which execution is ours is decided from it in
`runner.lifecycle`, never here. The execute POST is never re-sent: when its
outcome is unclear, UnclearExecuteError hands the handle to the caller, which
settles it (`runner.lifecycle.settle`) from the execution history.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

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
    UnclearExecuteError,
)
from runner.api.task_reader import TaskReader
from runner.api.transport import (
    DEFAULT_TIMEOUTS,
    JsonBody,
    RetryPolicy,
    Transport,
    error_kind,
    may_retry_execute,
    shown_path,
)
from runner.api.types import (
    ACTIVE_STATUSES,
    CURRENT_EXECUTION_ID,
    FINISHED_STATUSES,
    KNOWN_STATUSES,
    LAST_EXECUTION_START,
    LATEST_EXECUTION_ITEM_ID,
    ExecutionHandle,
    ExecutionInfo,
    JobInfo,
    JobStatus,
    PoolInfo,
)
from runner.clock import Clock
from runner.shared_types import MODES, Mode
from runner.task_records import JobTasks

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "KNOWN_STATUSES",
    "CelonisClient",
    "ExecutionHandle",
    "ExecutionInfo",
    "JobInfo",
    "JobStatus",
    "PoolInfo",
    "statuses_in",
]

log = structlog.get_logger(__name__)

POOLS_PATH = "/integration/api/pools"
FAILURE_LOG_PAGE_SIZE = 200
FAILURE_LOG_MAX_PAGES = 5


def _pool_path(pool_id: str) -> str:
    return f"/integration/api/pools/{pool_id}"


class CelonisClient:
    """The Celonis data-job operations the runner needs, over one `requests.Session`.

    Safe to share between threads as far as `requests.Session` is.
    """

    def __init__(self, transport: Transport, *, interrupt: threading.Event | None = None) -> None:
        self.transport = transport
        if interrupt is not None:
            transport.interrupt = interrupt
        self.retry = transport.retry
        self.clock = transport.clock
        self._lock = threading.Lock()
        self._no_pool_status: set[str] = set()
        self._unknown_logged: set[tuple[str, str]] = set()

    @classmethod
    def connect(
        cls,
        base_url: str,
        auth: Auth,
        session: requests.Session,
        clock: Clock,
        *,
        timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        interrupt: threading.Event | None = None,
        ca_bundle: str | None = None,
    ) -> CelonisClient:
        """A client over a new Transport to `base_url` (for callers that have no Transport)."""
        transport = Transport(
            base_url,
            auth,
            session,
            clock,
            timeouts=timeouts,
            retry=retry,
            rng=rng,
            ca_bundle=ca_bundle,
        )
        return cls(transport, interrupt=interrupt)

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    # -- reading --

    def job_status(self, pool_id: str, job_id: str) -> JobStatus:
        """`GET /integration/api/pools/{pool}/jobs/{job}`."""
        path = f"{_pool_path(pool_id)}/jobs/{job_id}"
        answer = self.transport.get_json(path, pool_id=pool_id, job_id=job_id)
        if not isinstance(answer, dict):
            raise _unexpected("GET", path, "expected a JSON object")
        return self._parse_job(answer, job_id, "GET", path)

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """Statuses of `job_ids` with one `logs/status` request.

        When that endpoint answers 404 or 403 the pool is remembered and each
        job is read on its own from then on; jobs missing from the answer are
        read on their own too.
        """
        wanted = list(dict.fromkeys(job_ids))
        entries = self._pool_entries(pool_id)
        found = statuses_in(entries, wanted) if entries is not None else {}
        return {job_id: found.get(job_id) or self.job_status(pool_id, job_id) for job_id in wanted}

    def list_pools(self) -> list[PoolInfo]:
        """`GET /integration/api/pools`."""
        return pools_in(self.transport.get_json(POOLS_PATH))

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        """`GET /integration/api/pools/{pool}/jobs`."""
        path = f"{_pool_path(pool_id)}/jobs"
        answer = self.transport.get_json(path, pool_id=pool_id)
        jobs = []
        for item in _objects(answer, "GET", path):
            job_id = _required_str(item, "id", "GET", path)
            status = self._parse_job(item, job_id, "GET", path)
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
        """The newest entry of the job's execution history; None if it never ran."""
        items = self.execution_history(pool_id, job_id, limit=1)
        return items[0] if items else None

    def execution_history(self, pool_id: str, job_id: str, limit: int) -> list[ExecutionInfo]:
        """The newest `limit` entries of the job's execution history, newest first.

        `GET /integration/api/pools/{pool}/logs/{job}/executions?limit=&page=0`.
        """
        path = f"{_pool_path(pool_id)}/logs/{job_id}/executions"
        params: dict[str, str | int] = {"limit": limit, "page": 0}
        shown = shown_path(path, params)
        answer = self.transport.get_json(path, params, pool_id=pool_id, job_id=job_id)
        if not isinstance(answer, dict):
            raise _unexpected("GET", shown, "expected a JSON object")
        items = _objects(answer.get("executionItems") or [], "GET", shown)
        return [_execution_info(item, shown) for item in items[:limit]]

    def celonis_floor_ms(self, local: float | None = None) -> int:
        """A time on Celonis' clock (epoch ms) that local wall time `local` (default: now) is
        certainly not before, from the offset measured so far."""
        return self.transport.celonis_clock.floor_ms(self.clock.time() if local is None else local)

    def celonis_ceiling_ms(self, local: float | None = None) -> int:
        """A time on Celonis' clock (epoch ms) that local wall time `local` is certainly not after."""
        return self.transport.celonis_clock.ceiling_ms(
            self.clock.time() if local is None else local
        )

    def failure_reason(
        self, pool_id: str, job_id: str, *, execution_id: str | None = None
    ) -> str | None:
        """The ERROR log lines of the failed tasks of execution `execution_id` (default: the
        newest in the history), joined; None if none.

        Best effort: API errors are logged and give None, except AuthError.
        """
        try:
            return self._failure_reason(pool_id, job_id, execution_id)
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
        subset: Mapping[str, object] | None = None,
        resend_of: ExecutionHandle | None = None,
    ) -> ExecutionHandle:
        """Trigger a run: `POST /integration/api/v2/data-pools/{pool}/data-jobs/{job}/execute`,
        or with `subset` (the subset keys of the internal execute's body, from
        `runner.api.task_reader.TaskIds.body`) `POST /integration/api/pools/{pool}/jobs/{job}/execute`.

        Reads the status first: JobBusyError if the job is QUEUED, RUNNING or in
        an unknown state. The POST is retried only after a 429 or a connection
        that never opened. After a timeout, a dropped connection or a 5xx the
        outcome is unclear: UnclearExecuteError carries the handle, to be settled
        from the history (`runner.lifecycle.settle`); never re-sent here.

        `pool_entries`: the pool's `logs/status` (from `pool_entries`) read just before a
        batch of executes, so that starting N jobs of a pool reads it once, not N times.
        `resend_of`: the handle of our own earlier execute whose outcome was unclear and
        which a full settle window showed no sign of. A 409 (or a busy status) now is that
        execute having taken effect after all: its handle comes back, nothing is waited for.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be FULL or DELTA, not {mode!r}")
        asked = self.clock.time()
        try:
            before, entry = self._snapshot(pool_id, job_id, pool_entries)
            busy = (
                self._busy(pool_id, before, entry, asked, read_before=pool_entries is not None)
                if before.in_progress and resend_of is None
                else None
            )
        except ApiError as error:
            error.took_no_effect = True  # read before any POST
            raise
        if busy is not None:
            raise busy
        if before.in_progress and resend_of is not None:  # our unclear execute took effect
            log.warning("api.execute_earlier_one_running", pool=pool_id, job=job_id)
            return resend_of
        return self._post_execute(
            _to_send(pool_id, job_id, mode, before, subset, resend_of), resend_of
        )

    def _post_execute(
        self, handle: ExecutionHandle, resend_of: ExecutionHandle | None
    ) -> ExecutionHandle:
        """Send the POST once (retried only where it provably did not arrive)."""
        path, params, body = _execute_request(handle)
        sent = [handle]

        def count() -> None:
            h = sent[0]
            first = h.sent_at is None
            now = self.clock.time()
            sent[0] = dataclasses.replace(
                h,
                attempts=h.attempts + 1,
                triggered_at=self.clock.monotonic() if first else h.triggered_at,
                sent_at=now if first else h.sent_at,
                since_ms=self._since(resend_of, now) if first else h.since_ms,
                until_ms=self.transport.celonis_clock.ceiling_ms(now) if first else h.until_ms,
            )

        bound = log.bind(pool=handle.pool_id, job=handle.job_id, mode=handle.mode)
        try:
            self.transport.call(
                "POST",
                path,
                may_retry=may_retry_execute,
                params=params,
                form=body,
                pool_id=handle.pool_id,
                job_id=handle.job_id,
                on_send=count,
            )
        except ApiError as error:
            return self._execute_failed(sent[0], resend_of, error, shown_path(path, params))
        bound.debug("api.executed", attempts=sent[0].attempts, since_ms=sent[0].since_ms)
        return sent[0]

    def _since(self, resend_of: ExecutionHandle | None, now: float) -> int:
        """Where our execution may begin on Celonis' clock: at the first send of this intent."""
        if resend_of is not None and resend_of.since_ms is not None:
            return resend_of.since_ms
        return self.transport.celonis_clock.floor_ms(now)

    def _execute_failed(
        self,
        handle: ExecutionHandle,
        resend_of: ExecutionHandle | None,
        error: ApiError,
        shown: str,
    ) -> ExecutionHandle:
        if error.path != shown or handle.sent_at is None:
            error.took_no_effect = True
            raise error  # the token request failed: no execute went out
        if error.status == 409 and type(error) is ApiError:
            if resend_of is not None:
                # The run it refuses for is the one our unclear POST started.
                log.warning(
                    "api.execute_refused_running",
                    pool=handle.pool_id,
                    job=handle.job_id,
                    attempts=handle.attempts,
                )
                return handle
            # refused at a moment after the POST went out and before now
            at, since = self._moment_since(handle.sent_at)
            status = self.job_status(handle.pool_id, handle.job_id)
            raise JobBusyError(
                status,
                pool_id=handle.pool_id,
                refused=True,
                running_at_ms=at,
                running_from_ms=since,
            ) from None
        if not _outcome_unknown(error):
            error.took_no_effect = True  # a definite answer: refused, not started
            raise error
        log.warning(
            "api.execute_outcome_unknown",
            pool=handle.pool_id,
            job=handle.job_id,
            error=error_kind(error),
            attempts=handle.attempts,
        )
        raise UnclearExecuteError(handle, error) from None

    def cancel(self, pool_id: str, job_id: str) -> None:
        """`POST /integration/api/pools/{pool}/jobs/{job}/cancel` (retried: cancelling twice is harmless)."""
        path = f"{_pool_path(pool_id)}/jobs/{job_id}/cancel"
        self.transport.request("POST", path, pool_id=pool_id, job_id=job_id, idempotent=True)
        log.debug("api.cancelled", pool=pool_id, job=job_id)

    # -- internals --

    def pool_entries(self, pool_id: str) -> Mapping[str, JobStatus] | None:
        """The pool's `logs/status` entries by job id (lower case); None when the pool lacks it."""
        return self._pool_entries(pool_id)

    def _snapshot(
        self, pool_id: str, job_id: str, given: Mapping[str, JobStatus] | None = None
    ) -> tuple[JobStatus, JobStatus | None]:
        """The job's answer merged with its pool entry (the entry's start), and the entry.

        The two are separate reads (`given`: read before the job's answer), so the merged
        status may pair the job's status with the start of another execution: an earlier one,
        ended, when the entry still shows it. That start tells which executions came before a
        send; it is no moment at which an execution the job's answer shows running was going
        (`_running_at`).
        """
        status = self.job_status(pool_id, job_id)
        entries = given if given is not None else self._pool_entries(pool_id)
        entry = entries.get(job_id.lower()) if entries is not None else None
        if entry is None:
            return status, None
        merged = JobStatus(
            job_id=job_id,
            status=status.status,
            current_execution_id=status.current_execution_id,
            latest_execution_item_id=status.latest_execution_item_id,
            last_execution_start=entry.last_execution_start,
        )
        return merged, entry

    def _busy(
        self,
        pool_id: str,
        before: JobStatus,
        entry: JobStatus | None,
        asked: float,
        *,
        read_before: bool,
    ) -> JobBusyError:
        """The refusal to send while `before` shows a run going (asked at local time `asked`):
        the claim on that run is its start, else the bounds of the read's moment."""
        start = self._running_at(pool_id, before.job_id, entry, read_before=read_before)
        at, since = (start, None) if start is not None else self._moment_since(asked)
        return JobBusyError(before, pool_id=pool_id, running_at_ms=at, running_from_ms=since)

    def _moment_since(self, local: float) -> tuple[int, int]:
        """The bounds on Celonis' clock (epoch ms) of a moment between local wall time `local`
        and now: (the latest it can have been, the earliest)."""
        return self.celonis_ceiling_ms(), self.celonis_floor_ms(local)

    def _running_at(
        self, pool_id: str, job_id: str, entry: JobStatus | None, *, read_before: bool
    ) -> int | None:
        """A moment (Celonis' clock, epoch ms) at which the run that keeps the job busy (its
        answer shows it in progress) was going: that run's start; None when no start shows it
        (the moment is then the read's, within bounds).

        The pool entry's start is that run's when the entry shows the job in progress, or was
        read after the job's answer. An entry read before it (`read_before`: the batch's read)
        that shows the job ended shows an earlier execution, while a lagging view had not yet
        shown the busy run: a claim at its start would take that ended run's outcome for the
        busy run's end. The pool is then read again: a start other than the earlier entry's is
        the busy run's (or a later one's); the same start, or none, leaves no start.
        """
        start = entry.last_execution_start if entry is not None else None
        if entry is not None and read_before and not entry.in_progress:
            entries = self._pool_entries(pool_id)
            again = entries.get(job_id.lower()) if entries is not None else None
            later = again.last_execution_start if again is not None else None
            start = later if later != start else None
        return start

    def _pool_entries(self, pool_id: str) -> Mapping[str, JobStatus] | None:
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
        # Keyed in lower case: ids are UUIDs, and a manifest may spell them in capitals.
        items = {
            _required_str(item, "id", "GET", path).lower(): item
            for item in _objects(answer, "GET", path)
        }
        return _PoolEntries(items, self._pool_entry, path)

    def _pool_entry(self, item: Mapping[str, object], path: str) -> JobStatus:
        job_id = _required_str(item, "id", "GET", path)
        status = _opt_str(item, "status", "GET", path)
        start = _epoch_ms(item.get(LAST_EXECUTION_START), LAST_EXECUTION_START, "GET", path)
        entry = JobStatus(job_id, status, last_execution_start=start)
        self._note_unknown(entry)
        return entry

    def _parse_job(
        self, item: Mapping[str, object], job_id: str, method: str, path: str
    ) -> JobStatus:
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
        return status

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

    def _failure_reason(self, pool_id: str, job_id: str, execution_id: str | None) -> str | None:
        if execution_id is None:
            latest = self.latest_execution(pool_id, job_id)
            execution_id = latest.execution_id if latest is not None else None
        if execution_id is None:
            return None
        found = self._failed_task_lines(pool_id, job_id, execution_id)
        if not found:
            return None
        if len(found) == 1:
            return "\n".join(found[0][1])
        # Several failed tasks: say which line is whose.
        return "\n".join(
            f"{name}: {line}" if name else line for name, lines in found for line in lines
        )

    def _failed_task_lines(
        self, pool_id: str, job_id: str, execution_id: str
    ) -> list[tuple[str | None, list[str]]]:
        """(name, ERROR lines) of each failed task of the execution that logged any."""
        tasks_params: dict[str, str | int] = {"executionId": execution_id, "type": "TASK"}
        tasks_path = f"{_pool_path(pool_id)}/logs/executions"
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
        return found

    def task_results(self, pool_id: str, job_id: str, *, execution_id: str) -> JobTasks:
        """The job's task list and the tasks of execution `execution_id`: status, dates, ERROR
        lines (read by runner.api.task_reader)."""
        return TaskReader(self).results(pool_id, job_id, execution_id)

    def task_error_lines(
        self, pool_id: str, job_id: str, execution_id: str, item_id: str
    ) -> list[str]:
        """The ERROR lines of one task item's detail log (all pages, up to a limit)."""
        return self._error_lines(pool_id, job_id, execution_id, item_id)

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


def statuses_in(entries: Mapping[str, JobStatus], job_ids: Iterable[str]) -> dict[str, JobStatus]:
    """The statuses of `job_ids` that a pool's entries (`pool_entries`, keyed in lower case)
    hold, each under the id as asked for (a manifest may spell a UUID in capitals)."""
    found: dict[str, JobStatus] = {}
    for job_id in job_ids:
        entry = entries.get(job_id.lower())
        if entry is not None:
            found[job_id] = dataclasses.replace(entry, job_id=job_id)
    return found


class _PoolEntries(Mapping[str, JobStatus]):
    """A pool's `logs/status` entries by job id (lower case). An entry is checked and read
    when it is first looked up: a pool of 250 jobs answers for all of them, and a poll or an
    execute wants a few (reading every entry was most of a poll's cost at 10,000 jobs).
    Looked up from several request threads at once: a race only reads an entry twice."""

    def __init__(
        self,
        items: Mapping[str, Mapping[str, object]],
        read: Callable[[Mapping[str, object], str], JobStatus],
        path: str,
    ) -> None:
        self._items = items
        self._read = read
        self._path = path
        self._done: dict[str, JobStatus] = {}

    def __getitem__(self, job_id: str) -> JobStatus:
        entry = self._done.get(job_id)
        if entry is None:
            entry = self._done[job_id] = self._read(self._items[job_id], self._path)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _execute_request(
    handle: ExecutionHandle,
) -> tuple[str, dict[str, str | int] | None, JsonBody | None]:
    """The execute's path, query and body: the documented v2 endpoint for a whole job, the
    internal one (the only one that takes a subset) when only part of the job runs."""
    if handle.subset is None:
        path = f"/integration/api/v2/data-pools/{handle.pool_id}/data-jobs/{handle.job_id}/execute"
        return path, {"mode": handle.mode}, None
    path = f"/integration/api/pools/{handle.pool_id}/jobs/{handle.job_id}/execute"
    body = {"poolId": handle.pool_id, "jobId": handle.job_id, "mode": handle.mode}
    return path, None, JsonBody.of({**body, **handle.subset})


def _to_send(
    pool_id: str,
    job_id: str,
    mode: Mode,
    before: JobStatus,
    subset: Mapping[str, object] | None,
    resend_of: ExecutionHandle | None,
) -> ExecutionHandle:
    """The handle of an execute about to go out (a re-send keeps the first send's `before`
    and counts on from its attempts)."""
    return ExecutionHandle(
        pool_id,
        job_id,
        mode,
        resend_of.before if resend_of is not None else before,
        0.0,
        resend_of.attempts if resend_of is not None else 0,
        subset=dict(subset) if subset is not None else None,
    )


def _outcome_unknown(error: ApiError) -> bool:
    """The request may have been acted on although we got no success answer."""
    if isinstance(error, ServerError):
        return True
    return isinstance(error, NetworkError) and error.transient and error.request_may_have_arrived


def _execution_info(item: Mapping[str, object], shown: str) -> ExecutionInfo:
    return ExecutionInfo(
        execution_id=_opt_id(item, "executionId", "GET", shown)
        or _opt_id(item, "id", "GET", shown),
        status=_opt_str(item, "status", "GET", shown),
        start_date=_epoch_ms(item.get("startDate"), "startDate", "GET", shown),
        end_date=_epoch_ms(item.get("endDate"), "endDate", "GET", shown),
    )


def pools_in(answer: object) -> list[PoolInfo]:
    """The pools of a `GET /integration/api/pools` answer; ProtocolError when it is not a list
    of objects with an id."""
    return [
        PoolInfo(
            id=_required_str(item, "id", "GET", POOLS_PATH),
            name=_opt_str(item, "name", "GET", POOLS_PATH),
        )
        for item in _objects(answer, "GET", POOLS_PATH)
    ]


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


MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: a later (or negative) date is not a date Celonis gives."""


def _epoch_ms(value: object, key: str, method: str, path: str) -> int | None:
    """Epoch milliseconds from a number, a string of ASCII digits or an ISO-8601 date.

    NaN, infinities, dates out of range and digits of other scripts are
    ProtocolErrors (an answer we cannot use), never a crash.
    """
    if value is None:
        return None
    ms = _to_epoch_ms(value)
    if ms is None or not 0 <= ms <= MAX_EPOCH_MS:
        raise _unexpected(method, path, f"{key} is not a date: {str(value)[:40]!r}")
    return ms


def _to_epoch_ms(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    return _text_to_epoch_ms(value.strip())


def _text_to_epoch_ms(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= 20 else None
    if not text.isascii():
        return None  # fromisoformat would read other scripts' digits
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        return None
