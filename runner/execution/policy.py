"""The failure and stop policy: what a job's end does to the others, timeouts, cancels.

A cancel is only a request: the job keeps `cancel_reason` and stays RUNNING,
polled at CANCEL_POLL_INTERVAL, until Celonis shows it ended; only an end
read from Celonis makes it CANCELLED (or TIMED_OUT, or SUCCEEDED if it
finished first).
"""

from __future__ import annotations

from concurrent.futures import Future

import structlog

from runner.durations import format_duration
from runner.execution.base import ExecutorBase
from runner.execution.io import URGENT
from runner.execution.runstate import JobRun, JobState
from runner.lifecycle import CANCEL_POLL_INTERVAL, timed_out
from runner.plan.build import downstream

log = structlog.get_logger(__name__)


class FailurePolicy(ExecutorBase):
    cancel_on_stop: bool = True

    def _finish_job(
        self, job: JobRun, state: JobState, error: str | None, *, propagate: bool = True
    ) -> None:
        """End a job; an unsuccessful end skips its dependents (unless `propagate` is off)."""
        job.error = error
        job.finished_at = self.clock.time()
        self._settling.pop(job.name, None)
        self._set(job, state)
        if propagate and (state.is_unsuccessful or state == JobState.UNCLEAR):
            self._after_failure(job)

    def _after_failure(self, job: JobRun) -> None:
        if self.stopping.requested:
            return  # when interrupted, what did not run is "not started", not a failure's fallout
        if job.state == JobState.UNCLEAR or not job.planned.job.allow_failure:
            for name in downstream(self.plan, job.name):
                other = self.state.jobs[name]
                if other.state == JobState.PENDING:
                    other.error = f"skipped: {job.name} {job.state.verb}"
                    self._set(other, JobState.SKIPPED)
        if self.fail_fast and self.stopping.reason is None and not job.planned.job.allow_failure:
            reason = f"--fail-fast after {job.name} {job.state.verb}"
            self.stopping.begin(self.clock.monotonic(), reason)
            self._cancel_running(reason)
            self._stop_waiting(f"not started: {reason}")

    def _cancel_running(self, reason: str) -> None:
        for job in list(self.index.by_state[JobState.RUNNING].values()):
            if job.name not in self._reason_pending:
                self._cancel(job, reason)

    def _stop_waiting(self, reason: str) -> None:
        """Jobs waiting for someone else's execution to end will not start: no need to wait on."""
        for job in list(self.index.by_state[JobState.WAITING].values()):
            job.error = reason
            self._set(job, JobState.NOT_STARTED)

    def _begin_stop(self, now: float, reason: str) -> None:
        self.stopping.begin(now, reason, grace=self.cancel_on_stop)
        log.warning("run_stopping", reason=reason, grace=self.grace, cancel=self.cancel_on_stop)
        if self.cancel_on_stop:
            self._cancel_running(reason)
        self._stop_waiting(f"not started: {reason}")

    def _cancel(self, job: JobRun, reason: str) -> None:
        """Ask Celonis to cancel; watch the job closely until it shows an end (or the grace ends)."""
        if job.cancel_reason is not None:
            return
        spec = job.planned.job
        job.cancel_reason = reason
        job.interval = CANCEL_POLL_INTERVAL
        job.next_poll = self.clock.monotonic() + CANCEL_POLL_INTERVAL
        self.index.poll_by(spec.pool, job.next_poll)
        log.info("job_cancel_requested", job=job.name, pool=spec.pool, reason=reason)

        def done(future: Future[None]) -> None:
            error = future.exception()
            if error is not None:  # the job stays watched: it may still end any way
                log.warning("job_cancel_failed", job=job.name, pool=spec.pool, error=str(error))

        def cancel() -> None:
            self.api.cancel(spec.pool_id, spec.job_id)

        self.calls.submit(cancel, done, URGENT)

    def _check_timeouts(self, now: float) -> None:
        deadlines = self.index.deadlines
        while deadlines and deadlines[0][0] <= now:
            name = self.index.pop_deadline()
            job = self.state.jobs[name]  # the entry may be stale: check the job as it is now
            if job.state == JobState.RUNNING and name not in self._reason_pending:
                self._running_too_long(job, now)
            elif job.state == JobState.WAITING and job.waiting_since is not None:
                limit = job.planned.job.timeout
                if now - job.waiting_since >= limit:
                    self._finish_job(
                        job,
                        JobState.TIMED_OUT,
                        "an execution started outside this run was still running after"
                        f" {format_duration(limit)}",
                    )

    def _running_too_long(self, job: JobRun, now: float) -> None:
        limit = job.planned.job.timeout
        if job.started_mono is None or not timed_out(now - job.started_mono, limit):
            return
        if job.name not in self._timed_out:
            self._timed_out.add(job.name)
            self._cancel(job, f"timed out after {format_duration(limit)}")
            self.index.push_deadline(now + self.grace, job.name)
        elif now - job.started_mono >= limit + self.grace:
            self._finish_job(
                job,
                JobState.UNCLEAR,
                f"timed out after {format_duration(limit)}; Celonis did not confirm the cancel"
                f" within {format_duration(self.grace)}: check whether it is still running",
            )
