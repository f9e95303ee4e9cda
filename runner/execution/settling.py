"""Settling executes whose outcome is unclear: a live one the client could not settle, or a
resumed job whose execute was in flight when the earlier runner died. Both take one path.

The executor asks `settle(handle)` once per poll round until it says STARTED
(watch the job as running), NOT_STARTED (it may be started again) or the
job's timeout passes (the job ends UNCLEAR with what to check in Celonis).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from runner.api.client import ExecutionHandle, ExecutionInfo, JobStatus, Settlement
from runner.execution.runstate import JobRun
from runner.manifest.durations import format_duration

Settle = Callable[[ExecutionHandle], Settlement]

RESUME_CLOCK_SKEW = 300.0
"""Seconds of clock difference to Celonis tolerated when reads decide whether an execute whose
outcome was unknown started an execution."""


class StatusReads(Protocol):
    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]: ...

    def latest_execution(self, pool_id: str, job_id: str) -> ExecutionInfo | None: ...


def settler_for(api: object, reads: StatusReads) -> Settle:
    """`api.settle` (contract 1); a client without it gets the read-based stand-in below."""
    settle: Settle | None = getattr(api, "settle", None)
    if settle is not None:
        return settle
    return lambda handle: settle_by_reads(reads, handle)


def settle_by_reads(reads: StatusReads, handle: ExecutionHandle) -> Settlement:
    """One round of reads: the stand-in for `CelonisClient.settle` until the client has it.

    STARTED when the job is active or an execution began after the execute was sent (give or
    take the clock skew); NOT_STARTED when the status is final and nothing began since; UNCLEAR
    when the pool does not list the job.
    """
    status = reads.pool_statuses(handle.pool_id, [handle.job_id]).get(handle.job_id)
    if status is None:
        return Settlement.UNCLEAR
    if status.in_progress or handle.marker_moved(status):
        return Settlement.STARTED
    began = status.last_execution_start
    if began is None:  # no pool endpoint field: ask the history
        latest = reads.latest_execution(handle.pool_id, handle.job_id)
        began = latest.start_date if latest is not None else None
    sent_at = handle.sent_at
    if began is not None and sent_at is not None and began >= (sent_at - RESUME_CLOCK_SKEW) * 1000:
        return Settlement.STARTED
    return Settlement.NOT_STARTED


def unclear_message(job: JobRun) -> str:
    spec = job.planned.job
    return (
        f"unclear: whether its execute took effect could not be settled within"
        f" {format_duration(spec.timeout)}; check the execution history of job {spec.job_id}"
        f" in pool {spec.pool_id} in Celonis before running it again"
    )
