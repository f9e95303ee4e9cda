"""Executing a Plan: start each job as soon as its dependencies succeeded, poll, apply the failure policy.

One scheduling thread owns all job state; HTTP calls run on a small thread
pool and hand their results back to it. Polling reads one pool's statuses
with one request per round. Time comes from the injected clock.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import structlog

from runner.api.client import ExecutionHandle, ExecutionInfo, JobStatus, Observation
from runner.api.errors import ApiError, AuthError, JobBusyError, NotFoundError
from runner.clock import Clock
from runner.execution.runstate import (
    Checkpoint,
    JobRun,
    JobState,
    Listener,
    ResumeFrom,
    RunState,
)
from runner.manifest.durations import format_duration
from runner.manifest.model import Mode
from runner.plan.build import Plan

log = structlog.get_logger(__name__)

RESUME_CLOCK_SKEW = 300.0
"""Seconds of clock difference to Celonis tolerated when a resume decides whether an execute whose
outcome was unknown started an execution."""

BACKOFF_FRACTION = 0.05
"""A running job is polled at least every BACKOFF_FRACTION of its elapsed time (within limits)."""


class JobsApi(Protocol):
    """What the executor needs of `runner.api.CelonisClient`."""

    def execute(
        self,
        pool_id: str,
        job_id: str,
        mode: Mode,
        *,
        pool_entries: Mapping[str, JobStatus] | None = None,
    ) -> ExecutionHandle: ...

    def pool_entries(self, pool_id: str) -> dict[str, JobStatus] | None: ...

    def latest_execution(self, pool_id: str, job_id: str) -> ExecutionInfo | None: ...

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]: ...

    def cancel(self, pool_id: str, job_id: str) -> None: ...

    def failure_reason(self, pool_id: str, job_id: str) -> str | None: ...


class Executor:
    def __init__(
        self,
        plan: Plan,
        api: JobsApi,
        clock: Clock,
        *,
        fail_fast: bool = False,
        stop: threading.Event | None = None,
        cancel_on_stop: bool = True,
        grace: float = 60.0,
        listeners: Sequence[Listener] = (),
        checkpoint: Checkpoint | None = None,
        io_workers: int = 8,
        resume: ResumeFrom | None = None,
        run_id: str = "",
    ) -> None:
        self.plan = plan
        self.api = api
        self.clock = clock
        self.fail_fast = fail_fast
        self.stop = stop or threading.Event()
        self.hard_stop = threading.Event()
        self.cancel_on_stop = cancel_on_stop
        self.grace = grace
        self.listeners = list(listeners)
        self.checkpoint = checkpoint
        self.io_workers = io_workers
        self._wake = threading.Event()
        self._inflight: dict[Future[Any], Callable[[Future[Any]], None]] = {}
        self._finished: collections.deque[Future[Any]] = collections.deque()
        self._changed = False
        self._save_due: float | None = None
        # Indexes kept by _set_state_only, so that a pass of the loop costs what changed, not
        # the number of jobs: jobs by state (in plan order), active jobs per pool, the jobs
        # each pool poll reads, when each pool is next due, and a heap of timeout deadlines.
        self._by_state: dict[str, dict[str, JobRun]] = {s: {} for s in JobState}
        self._active_per_pool: collections.Counter[str] = collections.Counter()
        self._polled: dict[str, dict[str, JobRun]] = {}
        self._pool_due: dict[str, float] = {}
        self._deadlines: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._polling: set[str] = set()
        self._stopping: str | None = None
        self._grace_deadline: float | None = None
        self._aborted: ApiError | None = None
        self.state = RunState(
            plan=plan,
            jobs={name: JobRun(planned) for name, planned in plan.jobs.items()},
            started_at=clock.time(),
            run_id=run_id,
        )
        self._by_state[JobState.PENDING].update(self.state.jobs)
        self._resume_from = resume or ResumeFrom()

    # -- the loop ----------------------------------------------------------------

    def run(self) -> RunState:
        pool = ThreadPoolExecutor(max_workers=self.io_workers, thread_name_prefix="celonis-io")
        self._pool = pool
        try:
            self._resume(self._resume_from)
            self._loop()
        finally:
            self._drain()
            # after a hard stop, requests still in flight are abandoned, not waited for
            pool.shutdown(wait=not self.hard_stop.is_set(), cancel_futures=True)
        self._finish()
        self._save(force=True)
        return self.state

    def request_stop(self, reason: str) -> None:
        """Start nothing new; cancel running jobs (unless told not to) and end after the grace period."""
        if self._stopping is None:
            self._stopping = reason
        self.stop.set()
        self._wake.set()

    def _save(self, *, force: bool) -> None:
        """Checkpoint the state; a deferred write is retried before the loop sleeps."""
        if self.checkpoint is None:
            return
        again = self.checkpoint(self.state, force)
        if again is None:
            self._changed = False
            self._save_due = None
        else:
            self._save_due = self.clock.monotonic() + again

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            self._collect()
            if self.hard_stop.is_set():
                return
            now = self.clock.monotonic()
            if self.stop.is_set() and self._grace_deadline is None:
                self._begin_stop(now, self._stopping or "interrupted")
            if self._grace_deadline is not None and now >= self._grace_deadline:
                return
            self._check_timeouts(now)
            if self._stopping is None:
                self._start_ready(now)
            self._poll_due(now)
            if not sum(self._active_per_pool.values()) and not self._inflight:
                return
            if self._any_done():
                continue
            if self._changed:  # every change reaches the state file before the loop sleeps
                self._save(force=False)
            # a job whose execute is in flight has nothing to poll yet: only its result wakes us
            wake_at = min(
                (
                    self._pool_due[pool]
                    for pool, jobs in self._polled.items()
                    if jobs and pool not in self._polling
                ),
                default=None,
            )
            timeout_at = self._deadlines[0][0] if self._deadlines else None
            deadlines = [
                t
                for t in (wake_at, self._grace_deadline, self._save_due, timeout_at)
                if t is not None
            ]
            delay = max(0.0, min(deadlines) - now) if deadlines else 3600.0
            self.clock.wait(self._wake, delay)

    def _any_done(self) -> bool:
        return bool(self._finished)

    def _submit(self, call: Callable[[], Any], on_done: Callable[[Future[Any]], None]) -> None:
        future = self._pool.submit(call)
        self._inflight[future] = on_done
        future.add_done_callback(self._on_future_done)

    def _on_future_done(self, future: Future[Any]) -> None:
        # runs on the I/O thread: hand the future over; only the scheduling thread touches state
        self._finished.append(future)
        self._wake.set()

    def _collect(self) -> bool:
        """Apply the results that came back since the last call (a queue, not a scan)."""
        collected = False
        while self._finished:
            future = self._finished.popleft()
            on_done = self._inflight.pop(future)
            on_done(future)
            collected = True
        return collected

    def _drain(self) -> None:
        """Let in-flight requests finish so that no result is lost (unless stopping hard)."""
        while self._inflight and not self.hard_stop.is_set():
            self._wake.clear()
            self._collect()
            if self._inflight and not self._any_done():
                self._wake.wait(0.05)

    # -- starting ------------------------------------------------------------------

    def _start_ready(self, now: float) -> None:
        to_start: list[JobRun] = []
        per_pool = dict(self._active_per_pool)
        running_total = sum(per_pool.values())
        for job in self._by_state[JobState.PENDING].values():
            if not self._dependencies_done(job):
                continue
            pool = job.planned.job.pool
            limit = self.plan.pool_limits.get(pool)
            if self.plan.max_parallel is not None and running_total >= self.plan.max_parallel:
                break
            if limit is not None and per_pool.get(pool, 0) >= limit:
                continue
            running_total += 1
            per_pool[pool] = per_pool.get(pool, 0) + 1
            to_start.append(job)
        self._start_all(to_start)

    def _start_all(self, jobs: list[JobRun]) -> None:
        if not jobs:
            return
        for job in jobs:
            job.attempts += 1
            job.intent_at = self.clock.time()
            self._set(job, JobState.STARTING)
        self._save(force=True)  # a crash after this point is seen as "uncertain" on resume
        reads: dict[str, _SharedRead] = {}
        for job in jobs:
            pool_id = job.planned.job.pool_id
            read = reads.setdefault(
                pool_id, _SharedRead(functools.partial(self.api.pool_entries, pool_id))
            )
            self._start(job, read)

    def _dependencies_done(self, job: JobRun) -> bool:
        for dep in job.planned.depends_on:
            other = self.state.jobs[dep]
            if other.state == JobState.SUCCEEDED:
                continue
            if other.state.is_unsuccessful and other.planned.job.allow_failure:
                continue
            return False
        return True

    def _start(self, job: JobRun, pool_read: _SharedRead) -> None:
        spec = job.planned.job

        def done(future: Future[ExecutionHandle]) -> None:
            error = future.exception()
            if error is None:
                handle = future.result()
                job.handle = handle
                job.started_mono = handle.triggered_at
                job.started_at = self.clock.time()
                job.interval = spec.poll_interval
                job.next_poll = self.clock.monotonic() + spec.poll_interval
                self._set(job, JobState.RUNNING, attempt=job.attempts, posts=handle.attempts)
                if self._stopping is not None:
                    self._cancel(job, self._stopping)
            elif isinstance(error, JobBusyError):
                job.waiting_since = job.waiting_since or self.clock.monotonic()
                job.remote_status = error.job_status.status
                job.interval = spec.poll_interval
                job.next_poll = self.clock.monotonic() + spec.poll_interval
                self._set(
                    job,
                    JobState.WAITING,
                    remote_status=error.job_status.status,
                    note="already running in Celonis (started by someone else); ours starts when it ends",
                )
            elif isinstance(error, NotFoundError | AuthError) and error.status in (403, 404):
                self._finish_job(job, JobState.FAILED, str(error))
            elif isinstance(error, ApiError):
                # The request may have reached Celonis before the API failed: the job stays
                # "starting" (in the state file too), and a resume checks Celonis before acting.
                job.error = (
                    "may be running in Celonis: the execute request failed with an unclear outcome"
                    f" ({error}); run --resume checks it"
                )
                self._abort(error)
            else:
                raise error

        self._submit(
            lambda: self.api.execute(
                spec.pool_id, spec.job_id, spec.mode, pool_entries=pool_read.get()
            ),
            done,
        )

    # -- polling -------------------------------------------------------------------

    def _poll_due(self, now: float) -> None:
        for pool, polled in self._polled.items():
            if not polled or pool in self._polling or self._pool_due.get(pool, now) > now:
                continue
            self._polling.add(pool)
            jobs = list(polled.values())
            pool_id = jobs[0].planned.job.pool_id
            ids = [j.planned.job.job_id for j in jobs]

            def done(
                future: Future[dict[str, JobStatus]], pool: str = pool, jobs: list[JobRun] = jobs
            ) -> None:
                self._polling.discard(pool)
                error = future.exception()
                if error is None:
                    statuses = future.result()
                    for job in jobs:
                        status = statuses.get(job.planned.job.job_id)
                        if status is not None and job.state in (JobState.RUNNING, JobState.WAITING):
                            self._observe(job, status)
                    self._pool_due[pool] = min(
                        (j.next_poll for j in self._polled[pool].values()), default=now
                    )
                elif isinstance(error, ApiError):
                    self._abort(error)
                else:
                    raise error

            self._submit(functools.partial(self.api.pool_statuses, pool_id, ids), done)

    def _observe(self, job: JobRun, status: JobStatus) -> None:
        now = self.clock.monotonic()
        spec = job.planned.job
        if status.status != job.remote_status:
            if status.is_unknown:
                log.warning(
                    "job_status_unknown", job=job.name, pool=spec.pool, status=status.status
                )
            job.remote_status = status.status
        if job.state == JobState.WAITING:
            if not status.in_progress:
                log.info(
                    "job_external_run_ended", job=job.name, pool=spec.pool, status=status.status
                )
                self._set(job, JobState.PENDING)
                self._wake.set()
            else:
                job.next_poll = now + job.interval
            return
        assert job.handle is not None
        seen = job.handle.observe(status, seen_active=job.seen_active)
        if seen is Observation.ACTIVE:
            job.seen_active = True
        if seen is Observation.FINISHED:
            if status.status == "SUCCESS":
                self._finish_job(job, JobState.SUCCEEDED, None)
            elif status.status == "FAIL":
                self._failed_with_reason(job)
            else:
                self._finish_job(job, JobState.CANCELLED, f"ended as {status.status} in Celonis")
            return
        elapsed = now - (job.started_mono or now)
        job.interval = min(
            spec.max_poll_interval, max(spec.poll_interval, elapsed * BACKOFF_FRACTION)
        )
        job.next_poll = now + job.interval

    def _failed_with_reason(self, job: JobRun) -> None:
        spec = job.planned.job
        job.finished_at = self.clock.time()
        self._set_state_only(job, JobState.FAILED)
        self._after_failure(job)

        def done(future: Future[str | None]) -> None:
            error = future.exception()
            reason = None if error is not None else future.result()
            if isinstance(error, ApiError):
                log.warning("job_failure_reason_unavailable", job=job.name, error=str(error))
            elif error is not None:
                raise error
            job.error = f"FAIL: {reason}" if reason else "FAIL (Celonis gave no reason)"
            self._emit(job)

        self._submit(lambda: self.api.failure_reason(spec.pool_id, spec.job_id), done)

    # -- timeouts, failures, stopping ----------------------------------------------

    def _check_timeouts(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, name = heapq.heappop(self._deadlines)
            job = self.state.jobs[name]  # the entry may be stale: check the job as it is now
            limit = job.planned.job.timeout
            if (
                job.state == JobState.RUNNING
                and job.started_mono is not None
                and now - job.started_mono >= limit
            ):
                self._cancel(job, None)
                self._finish_job(
                    job,
                    JobState.TIMED_OUT,
                    f"timed out after {format_duration(limit)}; cancelled in Celonis",
                )
            elif (
                job.state == JobState.WAITING
                and job.waiting_since is not None
                and now - job.waiting_since >= limit
            ):
                self._finish_job(
                    job,
                    JobState.TIMED_OUT,
                    f"an execution started outside this run was still running after {format_duration(limit)}",
                )

    def _cancel(self, job: JobRun, reason: str | None) -> None:
        spec = job.planned.job

        def done(future: Future[None]) -> None:
            error = future.exception()
            if error is not None:
                log.warning("job_cancel_failed", job=job.name, pool=spec.pool, error=str(error))

        self._submit(lambda: self.api.cancel(spec.pool_id, spec.job_id), done)
        if reason is not None:
            log.info("job_cancel_requested", job=job.name, pool=spec.pool, reason=reason)

    def _finish_job(
        self, job: JobRun, state: JobState, error: str | None, *, propagate: bool = True
    ) -> None:
        """End a job; an unsuccessful end skips its dependents (unless `propagate` is off)."""
        job.error = error
        job.finished_at = self.clock.time()
        self._set(job, state)
        if propagate and state.is_unsuccessful:
            self._after_failure(job)

    def _after_failure(self, job: JobRun) -> None:
        if job.planned.job.allow_failure or self.stop.is_set():
            return  # when interrupted, what did not run is "not started", not a failure's fallout
        for name in self._downstream(job.name):
            other = self.state.jobs[name]
            if other.state == JobState.PENDING:
                other.error = f"skipped: {job.name} {job.state.verb}"
                self._set(other, JobState.SKIPPED)
        if self.fail_fast and self._stopping is None:
            self._stopping = f"--fail-fast after {job.name} {job.state.verb}"
            for other in self.state.jobs.values():
                if other.state == JobState.RUNNING:
                    self._cancel(other, self._stopping)
                    self._finish_job(
                        other, JobState.CANCELLED, f"cancelled: {self._stopping}", propagate=False
                    )
            self._stop_waiting(f"not started: {self._stopping}")

    def _stop_waiting(self, reason: str) -> None:
        """Jobs waiting for someone else's execution to end will not start: no need to wait on."""
        for job in self.state.jobs.values():
            if job.state == JobState.WAITING:
                job.error = reason
                self._set(job, JobState.NOT_STARTED)

    def _downstream(self, name: str) -> list[str]:
        seen: dict[str, None] = {}
        stack = [name]
        while stack:
            for child in self.plan.jobs[stack.pop()].dependents:
                if child not in seen:
                    seen[child] = None
                    stack.append(child)
        return list(seen)

    def _abort(self, error: ApiError) -> None:
        if self._aborted is None:
            self._aborted = error
            log.error("api_unusable", error=str(error))
        self._stopping = self._stopping or "the API could not be used"
        self.hard_stop.set()
        self._wake.set()

    def _begin_stop(self, now: float, reason: str) -> None:
        self._grace_deadline = now + self.grace
        log.warning("run_stopping", reason=reason, grace=self.grace, cancel=self.cancel_on_stop)
        for job in self.state.jobs.values():
            if job.state == JobState.RUNNING and self.cancel_on_stop:
                self._cancel(job, reason)
        self._stop_waiting(f"not started: {reason}")
        if not self.cancel_on_stop:
            self._grace_deadline = now  # leave remote jobs running; stop at once

    def _finish(self) -> None:
        reason = self._stopping
        for job in self.state.jobs.values():
            if job.state == JobState.STARTING and job.error is None:
                job.error = (
                    "may be running in Celonis: stopped while its execute request was in flight"
                )
            if job.state == JobState.PENDING:
                job.error = job.error or (f"not started: {reason}" if reason else "not started")
                self._set(job, JobState.NOT_STARTED)
            elif job.state == JobState.WAITING:
                job.error = "not started: an execution started elsewhere was still running"
                self._set(job, JobState.NOT_STARTED)
        state = self.state
        state.finished_at = self.clock.time()
        state.stop_reason = reason
        if self._aborted is not None:
            state.status, state.error = "api_error", str(self._aborted)
        elif self.stop.is_set():
            state.status = "interrupted"
        elif any(
            (j.state.is_unsuccessful and not j.planned.job.allow_failure)
            or j.state in (JobState.SKIPPED, JobState.NOT_STARTED)
            for j in state.jobs.values()
        ):
            state.status = "failed"
        else:
            state.status = "succeeded"
        log.info("run_finished", status=state.status, **state.counts())

    # -- resume ----------------------------------------------------------------------

    def _resume(self, resume: ResumeFrom) -> None:
        for name in resume.succeeded:
            if name in self.state.jobs:
                job = self.state.jobs[name]
                job.started_at = resume.started_at.get(name)
                job.finished_at = resume.finished_at.get(name)
                self._set(
                    job, JobState.SUCCEEDED, note="succeeded in the earlier run; not run again"
                )
        for name, handle in resume.running.items():
            if name in self.state.jobs:
                self._take_up(self.state.jobs[name], handle, resume.started_at.get(name))
        for name, intent in resume.uncertain.items():
            if name in self.state.jobs:
                self._settle_uncertain(self.state.jobs[name], intent, resume.started_at.get(name))

    def _take_up(self, job: JobRun, handle: ExecutionHandle, started_at: float | None) -> None:
        now = self.clock.monotonic()
        job.handle = handle
        job.started_mono = now
        job.started_at = started_at or self.clock.time()
        job.interval = job.planned.job.poll_interval
        job.next_poll = now
        self._set(job, JobState.RUNNING, note="taken up from the earlier run; not triggered again")

    def _settle_uncertain(self, job: JobRun, intent: float, started_at: float | None) -> None:
        """The runner died while this job's execute was in flight: did it start?"""
        spec = job.planned.job
        status = self.api.pool_statuses(spec.pool_id, [spec.job_id]).get(spec.job_id)
        if status is None:
            return
        began = status.last_execution_start
        if began is None and not status.in_progress:  # no pool endpoint: ask the history
            latest = self.api.latest_execution(spec.pool_id, spec.job_id)
            began = latest.start_date if latest is not None else None
        # Taken as ours when it began after we decided to start it, give or take the clock
        # skew between this machine and Celonis: erring this way never starts a job twice.
        ours = status.in_progress or (
            began is not None and began >= (intent - RESUME_CLOCK_SKEW) * 1000
        )
        if not ours:
            log.info("job_resume_not_started", job=job.name, pool=spec.pool)
            return
        before = JobStatus(job_id=spec.job_id, status=None)
        handle = ExecutionHandle(
            spec.pool_id, spec.job_id, spec.mode, before, self.clock.monotonic(), 1
        )
        job.seen_active = True
        self._take_up(job, handle, started_at or intent)

    # -- events ------------------------------------------------------------------------

    def _set(self, job: JobRun, state: JobState, **extra: Any) -> None:
        self._set_state_only(job, state)
        self._emit(job, **extra)

    def _set_state_only(self, job: JobRun, state: JobState) -> None:
        old, name, pool = job.state, job.name, job.planned.job.pool
        del self._by_state[old][name]
        self._by_state[state][name] = job
        if old.is_active != state.is_active:
            self._active_per_pool[pool] += 1 if state.is_active else -1
        polled = self._polled.setdefault(pool, {})
        if state in (JobState.RUNNING, JobState.WAITING):
            polled[name] = job
            due = self._pool_due.get(pool, job.next_poll) if len(polled) > 1 else job.next_poll
            self._pool_due[pool] = min(due, job.next_poll)
            since = job.started_mono if state == JobState.RUNNING else job.waiting_since
            if since is not None and old != state:
                deadline = since + job.planned.job.timeout
                heapq.heappush(self._deadlines, (deadline, next(self._sequence), name))
        else:
            polled.pop(name, None)
        job.state = state
        self._changed = True

    def _emit(self, job: JobRun, **extra: Any) -> None:
        spec = job.planned.job
        now = self.clock.monotonic()
        elapsed = round(now - job.started_mono, 3) if job.started_mono is not None else None
        fields: dict[str, Any] = {
            "job": job.name,
            "pool": spec.pool,
            "mode": spec.mode,
            "status": job.state,
            "elapsed": elapsed,
            "attempt": job.attempts,
        }
        if job.error:
            fields["reason"] = job.error
        fields.update(extra)
        level = "warning" if job.state.is_unsuccessful or job.state == JobState.SKIPPED else "info"
        getattr(log, level)(f"job_{job.state}", **fields)
        for listener in self.listeners:
            listener(self.state, job)


class _SharedRead:
    """One pool's `logs/status`, read once for a batch of executes by whichever needs it first."""

    def __init__(self, read: Callable[[], dict[str, JobStatus] | None]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._done = False
        self._value: dict[str, JobStatus] | None = None

    def get(self) -> dict[str, JobStatus] | None:
        with self._lock:  # the others wait for the first read instead of repeating it
            if not self._done:
                self._value = self._read()
                self._done = True
            return self._value
