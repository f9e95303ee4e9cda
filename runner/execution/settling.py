"""Settling executes whose outcome is unclear: each round the job's execution history is read
until it shows our execution (then the job runs), or the settle window passes (then it ends
unclear; a resumed job is sent again, once, when the history shows no execution since the send).
The rules are `runner.lifecycle.settle`'s."""

from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import Future

import structlog

from runner import lifecycle
from runner.api.errors import ApiError
from runner.api.types import ExecutionHandle, ExecutionInfo
from runner.durations import format_duration
from runner.execution import policy
from runner.execution.context import RunContext
from runner.execution.io import (
    URGENT,
)
from runner.execution.runstate import JobRun, JobState
from runner.lifecycle import Settlement

log = structlog.get_logger(__name__)

SettleRead = tuple[int, list[ExecutionInfo], ExecutionHandle]


class Settling:
    """Unclear executes, live and resumed."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def begin(self, job: JobRun, handle: ExecutionHandle) -> None:
        now = self.ctx.clock.monotonic()
        job.handle = handle
        job.next_poll = now
        self.ctx.flight.settling[job.name] = job
        self.ctx.flight.settle_since[job.name] = now

    def due(self, now: float) -> None:
        for job in list(self.ctx.flight.settling.values()):
            if job.name in self.ctx.flight.settle_busy or job.next_poll > now:
                continue
            self.ctx.flight.settle_busy.add(job.name)
            assert job.handle is not None
            read = functools.partial(self._settle_read, job.handle)

            def done(future: Future[SettleRead], job: JobRun = job) -> None:
                self.ctx.flight.settle_busy.discard(job.name)
                error = future.exception()
                if error is not None and not isinstance(error, ApiError):
                    raise error
                if isinstance(error, ApiError):
                    # its retries are spent: the API is unusable, as when a poll fails; the
                    # job stays "starting" (may be running) for a resume to settle
                    log.warning("job_settle_failed", job=job.name, error=str(error))
                    self.ctx.stopping.abort(error, now=self.ctx.clock.monotonic(), hard=True)
                    self.ctx.wake.set()
                    return
                at, history, job.handle = future.result()
                window = job.planned.job.settle_window
                self._settled(job, lifecycle.settle(job.handle, history, at, window))

            self.ctx.calls.submit(read, done, URGENT)

    def _settle_read(self, handle: ExecutionHandle) -> SettleRead:
        """(a lower bound of the read's time on Celonis' clock, the history, the handle with its
        send bounded). A handle saved without Celonis times (killed while its POST was out) is
        bounded from this run's measured offset: sent at or after its local time, and before
        this run started."""
        local = self.ctx.clock.time()  # before the read: the read is no earlier
        history = self.ctx.api.execution_history(
            handle.pool_id, handle.job_id, lifecycle.HISTORY_LIMIT
        )
        if handle.since_ms is None and handle.running_at_ms is None:
            handle = dataclasses.replace(
                handle,
                since_ms=self.ctx.api.celonis_floor_ms(handle.sent_at),
                until_ms=self.ctx.api.celonis_ceiling_ms(self.ctx.state.started_at),
            )
        return self.ctx.api.celonis_floor_ms(local), history, handle

    def _settled(self, job: JobRun, outcome: Settlement) -> None:
        if job.name not in self.ctx.flight.settling or job.state != JobState.STARTING:
            return
        if outcome is Settlement.STARTED:
            self._took_effect(job)
        elif outcome is Settlement.NO_EXECUTION and job.resend_allowed:
            del self.ctx.flight.settling[job.name]
            self._resend(job)
        elif outcome is Settlement.NO_EXECUTION or self._settle_overdue(job):
            policy.finish_job(self.ctx, job, JobState.UNCLEAR, unclear_message(job))
        else:
            job.next_poll = self.ctx.clock.monotonic() + job.planned.job.poll_interval

    def _settle_overdue(self, job: JobRun) -> bool:
        # a resumed job's window runs from this run's start (its send's bound): twice the
        # window is past it whatever the clocks; a live one ends at its window
        window = job.planned.job.settle_window * (2 if job.resend_allowed else 1)
        return lifecycle.settle_overdue(
            self.ctx.clock.monotonic() - self.ctx.flight.settle_since[job.name], window
        )

    def _took_effect(self, job: JobRun) -> None:
        """The history shows our execution: watch it as running."""
        handle = job.handle
        assert handle is not None
        del self.ctx.flight.settling[job.name]
        job.resend_allowed = False
        self.ctx.watch(job, handle, job.started_at or handle.sent_at or self.ctx.clock.time())
        self.ctx.set(job, JobState.RUNNING, note="its execute took effect")
        if self.ctx.stopping.reason is not None and self.ctx.cancel_on_stop:
            policy.cancel(self.ctx, job, self.ctx.stopping.reason)

    def _resend(self, job: JobRun) -> None:
        """A resumed job whose earlier execute shows no execution a full settle window after
        it: send it again (a 409 now is that earlier execute, taken as ours)."""
        spec = job.planned.job
        log.warning(
            "job_resent_after_unclear",
            job=job.name,
            pool=spec.pool,
            window=format_duration(spec.settle_window),
            note="the execution history shows no execution since the earlier execute",
        )
        self.ctx.set(job, JobState.PENDING)  # starts as any job does; resend_allowed stays
        self.ctx.wake.set()


def unclear_message(job: JobRun) -> str:
    """Why a job ends unclear: its execute got no clear answer and the execution history did
    not show, within its settle window, an execution of ours."""
    spec = job.planned.job
    return (
        f"unclear: its execute got no clear answer and, within {format_duration(spec.settle_window)},"
        f" Celonis showed no execution of it; check the execution history of job {spec.job_id}"
        f" in pool {spec.pool_id} in Celonis. It was not sent again in this run: run --resume"
        " reads the history again and executes it again only if it still shows no execution"
        " since the send"
    )
