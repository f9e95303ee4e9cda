"""Settling executes whose outcome is unclear: a live one the client could not settle, or a
resumed job whose execute was in flight when the earlier runner died. Both take one path.

The executor asks `settle(handle)` once per poll round until it says STARTED
(watch the job as running), NOT_STARTED (it may be started again) or the
job's timeout passes (the job ends UNCLEAR with what to check in Celonis).
"""

from __future__ import annotations

from collections.abc import Callable

from runner.api.client import ExecutionHandle, Settlement
from runner.execution.runstate import JobRun
from runner.manifest.durations import format_duration

Settle = Callable[[ExecutionHandle], Settlement]


def unclear_message(job: JobRun) -> str:
    spec = job.planned.job
    return (
        f"unclear: whether its execute took effect could not be settled within"
        f" {format_duration(spec.timeout)}; check the execution history of job {spec.job_id}"
        f" in pool {spec.pool_id} in Celonis before running it again"
    )
