"""What a run produced, for people (the summary table) and machines (the JSON report)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from runner.durations import format_duration
from runner.execution.runstate import RunState
from runner.reports.tasks import report_fields as task_fields
from runner.reports.tasks import summary_text as tasks_summary
from runner.text import inert

REPORT_VERSION = 1

MAY_BE_RUNNING = frozenset({"running", "unclear"})
"""Report statuses of jobs that may still be running in Celonis (an execute of this run, or of
the run it resumed, may have taken effect and was never seen to end)."""


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def build_report(state: RunState, *, run_id: str) -> dict[str, Any]:
    manifest = state.plan.manifest
    duration = (state.finished_at - state.started_at) if state.finished_at is not None else None
    return {
        "report_version": REPORT_VERSION,
        "run_id": run_id,
        "status": state.status,
        "error": state.error,
        "started_at": iso(state.started_at),
        "finished_at": iso(state.finished_at),
        "duration_seconds": None if duration is None else round(duration, 3),
        "manifest": {"path": manifest.path, "sha256": manifest.sha256},
        "jobs": [
            {
                "name": job.name,
                "pool": job.planned.job.pool,
                "pool_id": job.planned.job.pool_id,
                "job_id": job.planned.job.job_id,
                "mode": job.planned.job.mode,
                "status": job.report_status,
                "allow_failure": job.planned.job.allow_failure,
                "started_at": iso(job.started_at),
                "finished_at": iso(job.finished_at),
                "duration_seconds": None if job.duration is None else round(job.duration, 3),
                "attempts": job.attempts,
                "error": job.error,
                **task_fields(job, iso),
            }
            for job in state.jobs.values()
        ],
    }


def write_summary(state: RunState, stream: TextIO, *, colour: bool = False) -> None:
    """The table of jobs and the verdict; states coloured when `colour` (a terminal)."""
    from runner.logs import colour_state

    jobs = list(state.jobs.values())
    rows = [
        (
            job.name,
            job.planned.job.pool,
            job.report_status
            + (" (allowed)" if job.planned.job.allow_failure and job.state.is_unsuccessful else ""),
            format_duration(job.duration) if job.duration is not None else "-",
            one_line(job.error) if job.state != "succeeded" and job.error else "",
        )
        for job in jobs
    ]
    header = ("JOB", "POOL", "STATUS", "DURATION", "REASON")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    stream.write("\n")
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        if row is not header:
            cells[2] = colour_state(cells[2], colour)
        stream.write(("  ".join(cells) + "  " + row[4]).rstrip() + "\n")
    stream.write(tasks_summary(jobs, one_line))
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.report_status] = counts.get(job.report_status, 0) + 1
    total = (state.finished_at or state.started_at) - state.started_at
    parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
    verdict = colour_state(f"Run {state.status}", colour, state.status)
    stream.write(f"\n{verdict}: {parts} in {format_duration(total)}\n")
    if state.error:
        stream.write(f"{one_line(state.error)}\n")
    unsettled = [job.name for job in jobs if job.report_status in MAY_BE_RUNNING]
    if unsettled:
        stream.write(
            f"May still be running in Celonis: {', '.join(unsettled)} (run --resume takes them up)\n"
        )


def one_line(text: str) -> str:
    """Text from Celonis on one line of the summary (`runner.text.inert`): line breaks and
    control characters escaped (`\\n`, `\\x1b`), so no line of ours can start with `::error`
    and be taken by GitHub Actions as a command (a leading `::` is escaped too), nor move the
    cursor or set the terminal's title."""
    return inert(text)
