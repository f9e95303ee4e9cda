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
from runner.execution.context import RunContext
from runner.execution.io import (
    URGENT,
)
from runner.execution.runstate import JobRun, JobState
from runner.lifecycle import CANCEL_POLL_INTERVAL, timed_out
from runner.plan.build import downstream

log = structlog.get_logger(__name__)


def finish_job(
    ctx: RunContext, job: JobRun, state: JobState, error: str | None, *, propagate: bool = True
) -> None:
    """End a job; an unsuccessful end skips its dependents (unless `propagate` is off)."""
    job.error = error
    job.finished_at = ctx.clock.time()
    ctx.flight.settling.pop(job.name, None)
    ctx.set(job, state)
    if propagate and (state.is_unsuccessful or state == JobState.UNCLEAR):
        after_failure(ctx, job)


def after_failure(ctx: RunContext, job: JobRun) -> None:
    if ctx.stopping.requested:
        return  # when interrupted, what did not run is "not started", not a failure's fallout
    if job.state == JobState.UNCLEAR or not job.planned.job.allow_failure:
        for name in downstream(ctx.plan, job.name):
            other = ctx.state.jobs[name]
            if other.state == JobState.PENDING:
                other.error = f"skipped: {job.name} {job.state.verb}"
                ctx.set(other, JobState.SKIPPED)
    if ctx.fail_fast and ctx.stopping.reason is None and not job.planned.job.allow_failure:
        reason = f"--fail-fast after {job.name} {job.state.verb}"
        ctx.stopping.begin(ctx.clock.monotonic(), reason)
        cancel_running(ctx, reason)
        stop_waiting(ctx, f"not started: {reason}")


def cancel_running(ctx: RunContext, reason: str) -> None:
    for job in list(ctx.index.by_state[JobState.RUNNING].values()):
        if job.name not in ctx.flight.reason_pending:
            cancel(ctx, job, reason)


def stop_waiting(ctx: RunContext, reason: str) -> None:
    """Jobs waiting for someone else's execution to end will not start: no need to wait on."""
    for job in list(ctx.index.by_state[JobState.WAITING].values()):
        job.error = reason
        ctx.set(job, JobState.NOT_STARTED)


def begin_stop(ctx: RunContext, now: float, reason: str) -> None:
    ctx.stopping.begin(now, reason, grace=ctx.cancel_on_stop)
    log.warning("run_stopping", reason=reason, grace=ctx.grace, cancel=ctx.cancel_on_stop)
    if ctx.cancel_on_stop:
        cancel_running(ctx, reason)
    stop_waiting(ctx, f"not started: {reason}")


def cancel(ctx: RunContext, job: JobRun, reason: str) -> None:
    """Ask Celonis to cancel; watch the job closely until it shows an end (or the grace ends)."""
    if job.cancel_reason is not None:
        return
    spec = job.planned.job
    job.cancel_reason = reason
    job.interval = CANCEL_POLL_INTERVAL
    job.next_poll = ctx.clock.monotonic() + CANCEL_POLL_INTERVAL
    ctx.index.poll_by(spec.pool, job.next_poll)
    log.info("job_cancel_requested", job=job.name, pool=spec.pool, reason=reason)

    def done(future: Future[None]) -> None:
        error = future.exception()
        if error is not None:  # the job stays watched: it may still end any way
            log.warning("job_cancel_failed", job=job.name, pool=spec.pool, error=str(error))

    def cancel() -> None:
        ctx.api.cancel(spec.pool_id, spec.job_id)

    ctx.calls.submit(cancel, done, URGENT)


def check_timeouts(ctx: RunContext, now: float) -> None:
    deadlines = ctx.index.deadlines
    while deadlines and deadlines[0][0] <= now:
        name = ctx.index.pop_deadline()
        job = ctx.state.jobs[name]  # the entry may be stale: check the job as it is now
        if job.state == JobState.RUNNING and name not in ctx.flight.reason_pending:
            running_too_long(ctx, job, now)
        elif job.state == JobState.WAITING and job.waiting_since is not None:
            limit = job.planned.job.timeout
            if now - job.waiting_since >= limit:
                finish_job(
                    ctx,
                    job,
                    JobState.TIMED_OUT,
                    "an execution started outside this run was still running after"
                    f" {format_duration(limit)}",
                )


def running_too_long(ctx: RunContext, job: JobRun, now: float) -> None:
    limit = job.planned.job.timeout
    if job.started_mono is None or not timed_out(now - job.started_mono, limit):
        return
    if job.name not in ctx.flight.timed_out:
        ctx.flight.timed_out.add(job.name)
        cancel(ctx, job, f"timed out after {format_duration(limit)}")
        ctx.index.push_deadline(now + ctx.grace, job.name)
    elif now - job.started_mono >= limit + ctx.grace:
        finish_job(
            ctx,
            job,
            JobState.UNCLEAR,
            f"timed out after {format_duration(limit)}; Celonis did not confirm the cancel"
            f" within {format_duration(ctx.grace)}: check whether it is still running",
        )
