"""Watching running jobs: one status read per pool and round, each status judged by the
lifecycle against the job's claim, the history read where a status cannot tell, and the end:
the outcome, a failure's reason and the task results of our own execution."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from concurrent.futures import Future

import structlog

from runner import lifecycle
from runner.api.errors import ApiError
from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus
from runner.durations import format_duration
from runner.execution import policy
from runner.execution.context import RunContext
from runner.execution.io import (
    BACKGROUND,
    URGENT,
)
from runner.execution.runstate import JobRun, JobState
from runner.lifecycle import Verdict
from runner.task_records import JobTasks, failure_text

log = structlog.get_logger(__name__)


class Watching:
    """Polls and ends running (and waiting) jobs."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def poll_due(self, now: float) -> None:
        for pool, polled in self.ctx.index.polled.items():
            if (
                not polled
                or pool in self.ctx.flight.polling
                or self.ctx.index.pool_due.get(pool, now) > now
            ):
                continue
            self.ctx.flight.polling.add(pool)
            jobs = list(polled.values())
            pool_id = jobs[0].planned.job.pool_id
            ids = [j.planned.job.job_id for j in jobs]
            done = functools.partial(self._polled, pool, jobs)
            self.ctx.calls.submit(functools.partial(self.ctx.api.pool_statuses, pool_id, ids), done)

    def _polled(self, pool: str, jobs: list[JobRun], future: Future[dict[str, JobStatus]]) -> None:
        self.ctx.flight.polling.discard(pool)
        error = future.exception()
        if isinstance(error, ApiError):
            self.ctx.stopping.abort(error, now=self.ctx.clock.monotonic(), hard=True)
            self.ctx.wake.set()
            return
        if error is not None:
            raise error
        self.apply_statuses(pool, jobs, future.result())

    def apply_statuses(
        self, pool: str, jobs: list[JobRun], statuses: Mapping[str, JobStatus]
    ) -> None:
        for job in jobs:
            status = statuses.get(job.planned.job.job_id)
            if status is None or job.name in self.ctx.flight.reason_pending:
                continue
            if job.state in (JobState.RUNNING, JobState.WAITING):
                self._observe(job, status)
        self.ctx.index.pool_due[pool] = min(
            (j.next_poll for j in self.ctx.index.polled.get(pool, {}).values()),
            default=self.ctx.clock.monotonic(),
        )

    def _observe(self, job: JobRun, status: JobStatus) -> None:
        spec = job.planned.job
        if status.status != job.remote_status:
            if status.is_unknown:
                log.warning(
                    "job_status_unknown", job=job.name, pool=spec.pool, status=status.status
                )
            job.remote_status = status.status
        assert job.handle is not None
        self._judged(job, lifecycle.judge_status(job.handle, status), status.status)

    def _judged(
        self, job: JobRun, verdict: Verdict, outcome: str | None, ours: str | None = None
    ) -> None:
        """Act on what an observation says of the run `job.handle` claims (`ours`: its execution
        id, when the observation was a history read that showed it)."""
        if verdict is Verdict.NEEDS_HISTORY:
            self._read_history(job)
            return
        if verdict is Verdict.FINISHED:
            if job.state == JobState.WAITING:
                self._other_run_ended(job, outcome)
            else:
                self._ended(job, outcome, ours)
            return
        if job.state == JobState.WAITING and verdict is Verdict.NOT_YET:
            self._other_run_ended(job, None)  # nothing running any more
            return
        self._poll_later(job)

    def _poll_later(self, job: JobRun) -> None:
        spec = job.planned.job
        now = self.ctx.clock.monotonic()
        if job.state == JobState.WAITING:
            job.next_poll = now + job.interval
            return
        elapsed = now - (job.started_mono or now)
        job.interval = lifecycle.poll_interval(
            elapsed, spec.poll_interval, spec.max_poll_interval, cancelling=bool(job.cancel_reason)
        )
        job.next_poll = now + job.interval

    def _read_history(self, job: JobRun) -> None:
        """A status showed an end it cannot tie to our execution: the history tells."""
        if job.name in self.ctx.flight.history_pending:
            return
        self.ctx.flight.history_pending.add(job.name)
        spec = job.planned.job
        read = functools.partial(
            self.ctx.api.execution_history, spec.pool_id, spec.job_id, lifecycle.HISTORY_LIMIT
        )

        def done(future: Future[list[ExecutionInfo]]) -> None:
            self.ctx.flight.history_pending.discard(job.name)
            error = future.exception()
            if error is not None and not isinstance(error, ApiError):
                raise error
            if job.state not in (JobState.RUNNING, JobState.WAITING) or job.handle is None:
                return
            if error is not None:
                log.warning("job_history_unavailable", job=job.name, error=str(error))
                self._poll_later(job)
                return
            history = future.result()
            verdict = lifecycle.judge_history(job.handle, history)
            if verdict is Verdict.NOT_YET and job.state == JobState.WAITING:
                verdict = Verdict.ACTIVE  # its end is not in the history yet: keep waiting
            found = lifecycle.ours_in_history(job.handle, history)
            outcome = lifecycle.outcome_in_history(job.handle, history)
            self._judged(job, verdict, outcome, found.execution_id if found else None)

        self.ctx.calls.submit(read, done, URGENT)

    def _other_run_ended(self, job: JobRun, outcome: str | None) -> None:
        log.info(
            "job_external_run_ended",
            job=job.name,
            pool=job.planned.job.pool,
            status=outcome,
        )
        job.handle = None
        self.ctx.set(job, JobState.PENDING)
        self.ctx.wake.set()

    def _ended(self, job: JobRun, outcome: str | None, ours: str | None) -> None:
        """Celonis shows our execution ended: the only way a job gets a final remote outcome.
        `ours`: its execution id when a history read showed it (else read for the reads after)."""
        if outcome == "FAIL":
            self._fetch_failure_reason(job, ours)
            return
        self._conclude(job, outcome)
        self._fetch_task_results(job, ours)

    def _conclude(self, job: JobRun, outcome: str | None) -> None:
        """The final state of a job whose execution ended other than FAIL."""
        if outcome == "CANCEL" and job.cancelled_before and job.cancel_reason is None:
            self._run_again(job)
        elif outcome == "SUCCESS":
            policy.finish_job(self.ctx, job, JobState.SUCCEEDED, None)
        elif job.name in self.ctx.flight.timed_out:
            limit = format_duration(job.planned.job.timeout)
            policy.finish_job(
                self.ctx, job, JobState.TIMED_OUT, f"timed out after {limit}; cancelled in Celonis"
            )
        elif job.cancel_reason is not None:
            # fail-fast's and a stop's cancellations: what waited on it is "not started"
            policy.finish_job(
                self.ctx,
                job,
                JobState.CANCELLED,
                f"cancelled: {job.cancel_reason}",
                propagate=False,
            )
        else:
            policy.finish_job(self.ctx, job, JobState.CANCELLED, f"ended as {outcome} in Celonis")

    def _run_again(self, job: JobRun) -> None:
        """The earlier run's stop cancelled this job's execution: this run executes it anew
        (after its dependencies, which succeeded, as any job)."""
        job.cancelled_before = False
        job.handle = None
        log.info(
            "job_cancelled_by_earlier_stop",
            job=job.name,
            pool=job.planned.job.pool,
            note="the earlier run cancelled it when it was stopped; executing it again",
        )
        self.ctx.set(job, JobState.PENDING)
        self.ctx.wake.set()

    def _fetch_failure_reason(self, job: JobRun, ours: str | None) -> None:
        """Read why it failed (with its tasks' results), then end it: its failure is logged
        before its dependents' skips."""
        spec = job.planned.job
        self.ctx.flight.reason_pending.add(job.name)

        handle = job.handle

        def read() -> tuple[JobTasks | None, str | None]:
            execution_id = ours or self._our_execution_id(handle)
            if execution_id is None:
                return None, None  # the history does not show our execution: no one else's
            job_tasks = self._read_task_results(job, execution_id)
            if job_tasks is not None:
                return job_tasks, failure_text(job_tasks.results)
            return None, self.ctx.api.failure_reason(
                spec.pool_id, spec.job_id, execution_id=execution_id
            )

        def done(future: Future[tuple[JobTasks | None, str | None]]) -> None:
            self.ctx.flight.reason_pending.discard(job.name)
            error = future.exception()
            if isinstance(error, ApiError):
                log.warning("job_failure_reason_unavailable", job=job.name, error=str(error))
            elif error is not None:
                raise error
            job_tasks, reason = (None, None) if error is not None else future.result()
            if job_tasks is not None:
                job.tasks, job.task_list = job_tasks.results, job_tasks.task_list
            message = f"FAIL: {reason}" if reason else "FAIL (Celonis gave no reason)"
            policy.finish_job(self.ctx, job, JobState.FAILED, message)

        self.ctx.calls.submit(read, done, URGENT)

    def _our_execution_id(self, handle: ExecutionHandle | None) -> str | None:
        """The id of the execution `handle` claims, from the history (the status that showed
        its end has no id); None when the history does not show it (yet), so that nothing of
        another execution (its task results, its ERROR lines) is reported as this run's."""
        if handle is None:
            return None
        try:
            history = self.ctx.api.execution_history(
                handle.pool_id, handle.job_id, lifecycle.HISTORY_LIMIT
            )
        except ApiError as error:
            log.warning("job_history_unavailable", job=handle.job_id, error=str(error))
            return None
        ours = lifecycle.ours_in_history(handle, history)
        if ours is None or ours.execution_id is None:
            log.info("job_execution_not_in_history", job=handle.job_id, pool=handle.pool_id)
            return None
        return ours.execution_id

    def _read_task_results(self, job: JobRun, execution_id: str) -> JobTasks | None:
        """The task results of our execution, or None when they cannot be read: a client without
        them (a test double), or an API error (logged; the job's outcome stands)."""
        reader = getattr(self.ctx.api, "task_results", None)
        if reader is None:
            return None
        spec = job.planned.job
        try:
            found: JobTasks = reader(spec.pool_id, spec.job_id, execution_id=execution_id)
            return found
        except ApiError as error:
            log.warning("job_task_results_unavailable", job=job.name, error=str(error))
            return None

    def _fetch_task_results(self, job: JobRun, ours: str | None) -> None:
        """After the job's final state: read its tasks' results without holding anything up;
        the run waits for the read before it ends, and the state file gets the results."""
        if getattr(self.ctx.api, "task_results", None) is None:
            return
        handle = job.handle

        def read() -> JobTasks | None:
            execution_id = ours or self._our_execution_id(handle)
            return None if execution_id is None else self._read_task_results(job, execution_id)

        def done(future: Future[JobTasks | None]) -> None:
            error = future.exception()
            if error is not None:
                raise error
            job_tasks = future.result()
            if job_tasks is not None:
                job.tasks, job.task_list = job_tasks.results, job_tasks.task_list
                for listener in self.ctx.listeners:  # the state file notes the job again
                    listener(self.ctx.state, job)

        # A background read: at 10,000 jobs these reads were a quarter of the runner's CPU,
        # and taken first come first served they held up the executes of ready jobs.
        self.ctx.calls.submit(read, done, BACKGROUND)
