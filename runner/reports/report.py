"""What a run produced, for people (the summary table) and machines (the JSON report)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from runner.durations import format_duration
from runner.reports.tasks import report_fields as task_fields
from runner.reports.tasks import summary_text as tasks_summary
from runner.runresult.model import JobResult, RunResult
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


def build_report(run: RunResult) -> dict[str, Any]:
    """The JSON report (schema/report.schema.json)."""
    duration = run.duration
    return {
        "report_version": REPORT_VERSION,
        "run_id": run.run_id,
        "status": run.status,
        "error": run.error,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": None if duration is None else round(duration, 3),
        "manifest": {"path": run.manifest, "sha256": run.manifest_sha256},
        **({"environment": run.environment} if run.environment else {}),
        **({"resolved": dict(run.resolved)} if run.resolved else {}),
        "jobs": [
            {
                "name": job.name,
                "pool": job.pool,
                "pool_id": job.pool_id,
                "job_id": job.job_id,
                "mode": job.mode,
                "status": job.report_status,
                "allow_failure": job.allow_failure,
                "started_at": iso(job.started_at),
                "finished_at": iso(job.finished_at),
                "duration_seconds": None if job.duration is None else round(job.duration, 3),
                "attempts": job.attempts,
                "error": job.error,
                **task_fields(job, iso),
            }
            for job in run.jobs
        ],
    }


def report_text(run: RunResult) -> str:
    """The JSON report as `run --report` writes it."""
    return json.dumps(build_report(run), indent=2) + "\n"


def write_summary(
    run: RunResult, stream: TextIO, *, colour: bool = False, quiet: bool = False
) -> None:
    """The table of jobs and the verdict; states coloured when `colour` (a terminal).
    `quiet`: only the jobs that did not succeed (no table when all did) and the verdict."""
    if quiet:
        failed = [job for job in run.jobs if job.state != "succeeded"]
        if failed:
            stream.writelines(_table(run, colour, failed))
        stream.write(_verdict(run, colour).lstrip("\n"))
        return
    stream.write("\n")
    stream.writelines(_table(run, colour))
    stream.write(tasks_summary(run.jobs, one_line))
    stream.write(_verdict(run, colour))


def _row(job: JobResult) -> tuple[str, str, str, str, str]:
    return (
        job.name,
        job.pool,
        job.report_status + (" (allowed)" if job.allowed_failure else ""),
        format_duration(job.duration) if job.duration is not None else "-",
        one_line(job.error) if job.state != "succeeded" and job.error else "",
    )


def _table(run: RunResult, colour: bool, jobs: Sequence[JobResult] | None = None) -> list[str]:
    """JOB, POOL, STATUS, DURATION, REASON: a line each (of `jobs`, default all), the status
    coloured on a terminal."""
    from runner.logs import colour_state

    header = ("JOB", "POOL", "STATUS", "DURATION", "REASON")
    rows = [_row(job) for job in (run.jobs if jobs is None else jobs)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        if row is not header:
            cells[2] = colour_state(cells[2], colour)
        lines.append(("  ".join(cells) + "  " + row[4]).rstrip() + "\n")
    return lines


def _verdict(run: RunResult, colour: bool) -> str:
    """How the run ended, in what time, where, and what may still be running."""
    from runner.logs import colour_state

    total = (run.finished_at or run.started_at) - run.started_at
    parts = status_counts(run)
    verdict = colour_state(f"Run {run.status}", colour, run.status)
    out = f"\n{verdict}: {parts} in {format_duration(total)}\n"
    if run.environment:
        out += f"Environment: {run.environment}\n"
    if run.error:
        out += f"{one_line(run.error)}\n"
    unsettled = [job.name for job in run.jobs if job.report_status in MAY_BE_RUNNING]
    if unsettled:
        out += f"May still be running in Celonis: {', '.join(unsettled)} (run --resume takes them up)\n"
    return out


def status_counts(run: RunResult) -> str:
    """`3 succeeded, 1 failed`: how many jobs have each report status (the summary, the step
    summary and the HTML page say it alike)."""
    return ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in run.counts().items())


def one_line(text: str) -> str:
    """Text from Celonis on one line of the summary (`runner.text.inert`): line breaks and
    control characters escaped (`\\n`, `\\x1b`), so no line of ours can start with `::error`
    and be taken by GitHub Actions as a command (a leading `::` is escaped too), nor move the
    cursor or set the terminal's title."""
    return inert(text)
