"""What a job whose execute's outcome stayed unclear says (the rules: runner.lifecycle.settle).

The executor reads the job's execution history once per poll round until it
shows our execution (STARTED: watched as running) or the job's settle window
has passed: then the job ends UNCLEAR, with what to check in Celonis. Within
a run an execute is never sent again; `run --resume` settles it once more and
sends it again only when the history shows no execution since the send.
"""

from __future__ import annotations

from runner.execution.runstate import JobRun
from runner.manifest.durations import format_duration


def unclear_message(job: JobRun) -> str:
    spec = job.planned.job
    return (
        f"unclear: whether its execute took effect could not be settled within"
        f" {format_duration(spec.settle_window)}; check the execution history of job"
        f" {spec.job_id} in pool {spec.pool_id} in Celonis; run --resume settles it again"
        " and executes it only if Celonis shows no execution since the send"
    )


def no_execution_message(job: JobRun) -> str:
    spec = job.planned.job
    return (
        f"unclear: its execute got no clear answer and, {format_duration(spec.settle_window)}"
        f" later, the execution history of job {spec.job_id} in pool {spec.pool_id} shows no"
        " execution since it: it most likely did not take effect; run --resume executes it"
        " again (never within this run)"
    )
