"""Operations on Celonis data jobs, and the handle that tells this run's status from a stale one.

The client never trusts a finished status right after an execute: the
`ExecutionHandle` remembers the job's markers (`currentExecutionId`,
`latestExecutionItemId`, `lastExecutionStartDate`) from before the trigger,
and a finished status only counts once a marker moved (or the run was seen
QUEUED/RUNNING). The execute POST is never re-sent on a timer: when its
outcome is unclear, `settle` looks for evidence (rules in `CelonisClient.settle`
and docs/INTERFACES.md); without it, UnclearExecuteError hands the handle to
the executor, which settles it every poll round.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

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
from runner.api.transport import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_TIMEOUTS,
    JsonBody,
    RetryPolicy,
    Transport,
    error_kind,
    may_retry_execute,
    shown_path,
)
from runner.clock import Clock

if TYPE_CHECKING:
    from runner.api.tasks import JobTasks
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


class Settlement(StrEnum):
    """What `CelonisClient.settle` found out about an execute whose outcome was unclear."""

    STARTED = "started"
    """Evidence that the run began: watch it as this job's run."""
    NOT_STARTED = "not_started"
    """Positive evidence that it did not begin: the job may be started again."""
    UNCLEAR = "unclear"
    """No evidence either way yet: ask again later, never send the execute again."""


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
    before_known: bool = True
    """False for `unknown_before`: the markers before the trigger were never read."""
    clock_skew: float = DEFAULT_CLOCK_SKEW
    """Seconds our wall clock and Celonis' dates may differ (RetryPolicy.clock_skew)."""
    subset: Mapping[str, object] | None = field(default=None, compare=False)
    """The subset keys of the internal execute's body; None: the whole job (v2 endpoint)."""

    @classmethod
    def unknown_before(
        cls, pool_id: str, job_id: str, mode: Mode, sent_at: float
    ) -> ExecutionHandle:
        """The handle of a resumed job whose execute was sent at `sent_at` (epoch s) by a
        run that never read (or never kept) the markers before it."""
        return cls(
            pool_id,
            job_id,
            mode,
            JobStatus(job_id, None),
            0.0,
            1,
            frozenset(),
            sent_at=sent_at,
            before_known=False,
        )

    @property
    def never_ran_before(self) -> bool:
        return self.before_known and self.before.status is None and not self.before.markers()

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
        status: NOT_YET, keep polling. For an `unknown_before` handle (no
        markers to compare) a finished pool entry whose `lastExecutionStartDate`
        is at or after `sent_at - clock_skew` is this run's end too.
        """
        if status.job_id.lower() != self.job_id.lower():
            raise ValueError(f"status of job {status.job_id} given to the handle of {self.job_id}")
        if status.in_progress:
            return Observation.ACTIVE
        if status.status is None:
            return Observation.NOT_YET
        if seen_active or self.never_ran_before or self.marker_moved(status):
            return Observation.FINISHED
        if self.started_since_sent(status.last_execution_start):
            return Observation.FINISHED
        return Observation.NOT_YET

    def started_since_sent(self, start_ms: int | None) -> bool:
        """A run that started at `start_ms` (epoch ms) began at or after our send (skew allowed)."""
        if start_ms is None or self.sent_at is None:
            return False
        return start_ms >= (self.sent_at - self.clock_skew) * 1000

    def shows_start(self, status: JobStatus) -> bool:
        """Evidence that a run began after `before` was read (used after an unclear execute)."""
        if status.in_progress or self.marker_moved(status):
            return True
        return self.before_known and self.before.status is None and status.status is not None


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
        return self._job_status_with_keys(pool_id, job_id)[0]

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
        subset: Mapping[str, object] | None = None,
    ) -> ExecutionHandle:
        """Trigger a run: `POST /integration/api/v2/data-pools/{pool}/data-jobs/{job}/execute`,
        or with `subset` (the subset keys of the internal execute's body, from
        `runner.api.tasks.TaskIds.body`) `POST /integration/api/pools/{pool}/jobs/{job}/execute`.

        Reads the status first: JobBusyError if the job is QUEUED, RUNNING or in
        an unknown state. The POST is retried only after a 429 or a connection
        that never opened. After a timeout, a dropped connection or a 5xx the
        outcome is unclear: the status is read for `RetryPolicy.execute_settle`;
        evidence that the run began returns the handle, positive evidence that
        it did not (see `settle`) sends the POST again, and otherwise
        UnclearExecuteError carries the handle to settle later. Never re-sent on
        a timer.

        `pool_entries`: the pool's `logs/status` (from `pool_entries`) read just before a
        batch of executes, so that starting N jobs of a pool reads it once, not N times.
        """
        if mode not in ("FULL", "DELTA"):
            raise ValueError(f"mode must be FULL or DELTA, not {mode!r}")
        try:
            before, compared = self._snapshot(pool_id, job_id, pool_entries)
        except ApiError as error:
            error.took_no_effect = True  # read before any POST
            raise
        if before.in_progress:
            raise JobBusyError(before, pool_id=pool_id)
        handle = ExecutionHandle(
            pool_id,
            job_id,
            mode,
            before,
            0.0,
            0,
            compared,
            clock_skew=self.retry.clock_skew,
            subset=dict(subset) if subset is not None else None,
        )
        return self._post_execute(handle, after_unclear=False)

    def _post_execute(self, handle: ExecutionHandle, *, after_unclear: bool) -> ExecutionHandle:
        """Send the POST once (retried only where it provably did not arrive)."""
        path, params, body = _execute_request(handle)
        sent = [handle]

        def count() -> None:
            h = sent[0]
            first = h.sent_at is None
            sent[0] = dataclasses.replace(
                h,
                attempts=h.attempts + 1,
                triggered_at=self.clock.monotonic() if first else h.triggered_at,
                sent_at=self.clock.time() if first else h.sent_at,
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
            if error.path != shown_path(path, params) or sent[0].sent_at is None:
                error.took_no_effect = True
                raise  # the token request failed: no execute went out
            if error.status == 409 and type(error) is ApiError:
                if after_unclear:
                    # The run it refuses for is the one our unclear POST started.
                    bound.warning("api.execute_refused_running", attempts=sent[0].attempts)
                    return sent[0]
                status = self.job_status(handle.pool_id, handle.job_id)
                raise JobBusyError(status, pool_id=handle.pool_id, refused=True) from None
            if not _outcome_unknown(error):
                error.took_no_effect = True  # a definite answer: refused, not started
                raise
            return self._resolve_unclear(sent[0], error)
        bound.debug("api.executed", attempts=sent[0].attempts, before=handle.before.markers())
        return sent[0]

    def _resolve_unclear(self, handle: ExecutionHandle, error: ApiError) -> ExecutionHandle:
        """Read the status for the short settle window: the handle, a re-send, or UnclearExecuteError."""
        bound = log.bind(pool=handle.pool_id, job=handle.job_id)
        bound.warning(
            "api.execute_outcome_unknown", error=error_kind(error), attempts=handle.attempts
        )
        deadline = self.clock.monotonic() + self.retry.execute_settle
        while True:
            settlement = self.settle(handle)
            if settlement is Settlement.STARTED:
                bound.info("api.execute_started_anyway", attempts=handle.attempts)
                return handle
            if settlement is Settlement.NOT_STARTED:
                if handle.attempts >= self.retry.max_attempts:
                    error.took_no_effect = True  # the status shows it did not start
                    raise error
                bound.warning("api.execute_resend", attempt=handle.attempts + 1)
                return self._post_execute(handle, after_unclear=True)
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0 or not self.transport.wait(min(self.retry.settle_poll, remaining)):
                bound.warning("api.execute_unclear", attempts=handle.attempts)
                raise UnclearExecuteError(handle, error)

    def settle(self, handle: ExecutionHandle) -> Settlement:
        """One round of reads (never sleeps): did the unclear execute of `handle` start?

        STARTED when the job's status or pool entry is QUEUED/RUNNING/unknown, a
        before-marker moved, or the execution history's newest entry is running
        or started at or after `sent_at - clock_skew` (and is not the run seen
        before the send). NOT_STARTED only on positive evidence that the
        answers are fresher than the send and show no run of ours: the newest
        execution started before `sent_at - clock_skew` and ended at or after
        `sent_at + clock_skew` (a run that was still going when ours was sent,
        which Celonis refuses with 409, seen finished: the resources have moved
        past the send). Anything else, including a status that merely stayed
        the same for a while (it can be stale for minutes), is UNCLEAR. The
        skew is the handle's `clock_skew` (from RetryPolicy.clock_skew).
        """
        status, _ = self._snapshot(handle.pool_id, handle.job_id)
        if handle.shows_start(status):
            return Settlement.STARTED
        latest = self.latest_execution(handle.pool_id, handle.job_id)
        if latest is None or handle.sent_at is None:
            return Settlement.UNCLEAR
        if _is_previous_run(handle, latest):
            return Settlement.UNCLEAR
        if latest.status not in FINISHED_STATUSES or handle.started_since_sent(latest.start_date):
            return Settlement.STARTED  # running, unknown, or begun since the send
        fresh_after = (handle.sent_at + handle.clock_skew) * 1000
        if latest.end_date is not None and latest.end_date >= fresh_after:
            return Settlement.NOT_STARTED
        return Settlement.UNCLEAR

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

    def task_results(self, pool_id: str, job_id: str) -> JobTasks:
        """The job's task list and the tasks of its newest execution: status, dates, ERROR
        lines (issue 12)."""
        from runner.api.tasks import TaskReader  # the task module builds on this one

        return TaskReader(self).results(pool_id, job_id)

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


def _is_previous_run(handle: ExecutionHandle, latest: ExecutionInfo) -> bool:
    """`latest` is the run the before-markers already showed (so it says nothing of ours)."""
    if not handle.before_known:
        return False
    before = handle.before
    if latest.execution_id is not None and latest.execution_id in (
        before.current_execution_id,
        before.latest_execution_item_id,
    ):
        return True
    return latest.start_date is not None and latest.start_date == before.last_execution_start


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
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= 20 else None
    if not text.isascii():
        return None  # fromisoformat would read other scripts' digits
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        return None
