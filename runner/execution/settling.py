"""What a job whose execute's outcome stayed unclear says (the rules: runner.lifecycle.settle).

The executor reads the job's execution history once per poll round until it
shows our execution (STARTED: watched as running) or the job's settle window
has passed: then the job ends UNCLEAR, with what to check in Celonis. Within
a run an execute is never sent again; `run --resume` settles it once more and
sends it again only when the history shows no execution since the send.
"""

from __future__ import annotations

from runner.durations import format_duration
from runner.execution.runstate import JobRun


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
