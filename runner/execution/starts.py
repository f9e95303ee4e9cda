"""Starting jobs: the pool read before a batch of executes, the executes, and what their
answers do (running, unclear, someone else's run: wait or adopt, refused)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING

import structlog

from runner.api.client import statuses_in
from runner.api.errors import ApiError, AuthError, JobBusyError, NotFoundError, UnclearExecuteError
from runner.api.types import ExecutionHandle, JobStatus
from runner.execution import policy
from runner.execution.context import RunContext
from runner.execution.io import (
    START,
)
from runner.execution.runstate import JobRun, JobState

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from runner.execution.settling import Settling
    from runner.execution.watching import Watching


class Starts:
    """Sends executes and acts on their answers."""

    def __init__(self, ctx: RunContext, settling: Settling, watching: Watching) -> None:
        self.ctx = ctx
        self.settling = settling
        self.watching = watching

    def execute_all(self, jobs: list[JobRun]) -> None:
        """Read each pool's `logs/status` once for its batch (the executes compare what it
        says before the trigger), then send the batch's executes with it."""
        batches: dict[str, list[JobRun]] = {}
        for job in jobs:
            batches.setdefault(job.planned.job.pool_id, []).append(job)
        for pool_id, batch in batches.items():
            pool = batch[0].planned.job.pool
            watched = list(self.ctx.index.polled.get(pool, {}).values())
            self.ctx.flight.reading_before.update(job.name for job in batch)
            done = functools.partial(self._read_before_executes, pool, watched, batch)
            self.ctx.calls.submit(
                functools.partial(self.ctx.api.pool_entries, pool_id), done, START
            )

    def _read_before_executes(
        self,
        pool: str,
        watched: list[JobRun],
        batch: list[JobRun],
        future: Future[Mapping[str, JobStatus] | None],
    ) -> None:
        """The read also answers for the pool's jobs being polled when it was sent: observed
        like a poll's answer (a status read before an execute cannot pass for that execute's
        end: ExecutionHandle.observe), it pushes the pool's next poll back. When it failed,
        each execute reads the pool for itself."""
        self.ctx.flight.reading_before.difference_update(job.name for job in batch)
        error = future.exception()
        if error is not None and not isinstance(error, ApiError):
            raise error
        entries = future.result() if error is None else None
        if entries is not None and watched:
            ids = [job.planned.job.job_id for job in watched]
            self.watching.apply_statuses(pool, watched, statuses_in(entries, ids))
        for job in batch:
            if self.ctx.stopping.reason is not None:  # stopped meanwhile: nothing was sent
                job.error = f"not started: {self.ctx.stopping.reason}"
                self.ctx.set(job, JobState.NOT_STARTED)
            else:
                self._execute(job, entries)

    def _execute(self, job: JobRun, entries: Mapping[str, JobStatus] | None) -> None:
        spec = job.planned.job
        ids = job.planned.task_ids

        resend_of = job.handle if job.resend_allowed else None

        def execute() -> ExecutionHandle:
            if ids is None:  # the whole job: the documented endpoint
                return self.ctx.api.execute(
                    spec.pool_id, spec.job_id, spec.mode, pool_entries=entries, resend_of=resend_of
                )
            return self.ctx.api.execute(
                spec.pool_id,
                spec.job_id,
                spec.mode,
                pool_entries=entries,
                subset=ids.body(),
                resend_of=resend_of,
            )

        def done(future: Future[ExecutionHandle]) -> None:
            error = future.exception()
            if error is None:
                self._executed(job, future.result())
            elif isinstance(error, ApiError):
                self._execute_failed(job, error)
            else:
                raise error

        self.ctx.calls.submit(execute, done, START)

    def _executed(self, job: JobRun, handle: ExecutionHandle) -> None:
        if not job.resend_allowed:
            job.attempts += 1
        job.resend_allowed = False
        self.ctx.executes_out = True
        self.ctx.watch(job, handle, self.ctx.clock.time())
        job.started_mono = handle.triggered_at
        job.next_poll = self.ctx.clock.monotonic() + job.planned.job.poll_interval
        self.ctx.set(job, JobState.RUNNING, posts=handle.attempts)
        if self.ctx.stopping.reason is not None and self.ctx.cancel_on_stop:
            policy.cancel(self.ctx, job, self.ctx.stopping.reason)

    def _execute_failed(self, job: JobRun, error: ApiError) -> None:
        if isinstance(error, UnclearExecuteError):
            if not job.resend_allowed:
                job.attempts += 1
            job.resend_allowed = False
            self.ctx.executes_out = True
            self.ctx.emit(job, note=f"the execute's outcome is unclear ({error}); settling it")
            self.settling.begin(job, error.handle)
        elif isinstance(error, JobBusyError):
            self._found_running(job, error)
        elif isinstance(error, AuthError) and (not self.ctx.executes_out or error.status == 401):
            # refused, so this one did not start; before any execute of ours went out nothing
            # may be running and the run ends at once, later the API is unusable for the rest
            job.error = f"not started: the credential was refused ({error})"
            self.ctx.set(job, JobState.NOT_STARTED)
            self.ctx.stopping.abort(
                error, now=self.ctx.clock.monotonic(), hard=self.ctx.executes_out
            )
        elif isinstance(error, NotFoundError | AuthError) and error.status in (403, 404):
            policy.finish_job(self.ctx, job, JobState.FAILED, str(error))
        elif error.took_no_effect:
            # nothing was sent, or Celonis refused it for certain: this job did not start, and
            # the API is unusable for the rest of the run
            job.error = f"not started: {error}"
            self.ctx.set(job, JobState.NOT_STARTED)
            self.ctx.stopping.abort(
                error, now=self.ctx.clock.monotonic(), hard=self.ctx.executes_out
            )
            self.ctx.wake.set()
        else:
            # The request may have reached Celonis before the API failed: the job stays
            # "starting" (in the state file too), and a resume settles it before acting.
            self.ctx.executes_out = True
            job.error = (
                "may be running in Celonis: the execute request failed with an unclear outcome"
                f" ({error}); run --resume checks it"
            )
            self.ctx.stopping.abort(error, now=self.ctx.clock.monotonic(), hard=True)
            self.ctx.wake.set()

    def _found_running(self, job: JobRun, error: JobBusyError) -> None:
        """Celonis runs the job already (not this run's execution): the job's `if_running`."""
        spec = job.planned.job
        if spec.if_running == "fail":
            status = error.job_status.status
            policy.finish_job(
                self.ctx,
                job,
                JobState.FAILED,
                f"already {status} in Celonis (an execution this run did not start);"
                " if_running: fail",
            )
        elif spec.if_running == "adopt":
            self._adopt(job, error)
        else:
            self._wait_for_other(job, error)

    def _adopt(self, job: JobRun, error: JobBusyError) -> None:
        """Watch the execution someone else started as this job's run; nothing is sent."""
        spec = job.planned.job
        now = self.ctx.clock.monotonic()
        self.ctx.watch(job, self._other_run(job, error), self.ctx.clock.time())
        job.remote_status = error.job_status.status
        job.next_poll = now + spec.poll_interval
        self.ctx.set(
            job,
            JobState.RUNNING,
            note="already running in Celonis (started outside this run); adopted as this run's",
        )

    def _other_run(self, job: JobRun, error: JobBusyError) -> ExecutionHandle:
        """The claim on the execution that made our execute wait: the one running at the
        moment Celonis showed it busy (its start, or the refusal's bounds, on Celonis' clock)."""
        return error.claim(job.planned.job.mode, self.ctx.clock.monotonic())

    def _wait_for_other(self, job: JobRun, error: JobBusyError) -> None:
        now = self.ctx.clock.monotonic()
        job.waiting_since = job.waiting_since or now
        job.remote_status = error.job_status.status
        job.handle = self._other_run(job, error)
        job.interval = job.planned.job.poll_interval
        job.next_poll = now + job.interval
        self.ctx.set(
            job,
            JobState.WAITING,
            remote_status=error.job_status.status,
            note="already running in Celonis (started by someone else); ours starts when it ends",
        )
