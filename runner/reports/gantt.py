"""A run's timeline as a Mermaid `gantt` chart: one bar per job, a section per pool.

Bars are tagged by outcome: `done` succeeded, `crit` ended badly (failed,
timed out, cancelled), `active` may still be running (running, unclear);
jobs that never ran (skipped, not started) are milestones at the run's end.
Times are epoch milliseconds (`dateFormat x`), so the chart needs no time zone.
Names are written as Mermaid entity codes wherever a character could end a
task's name or start a comment, so no name can break or inject into the chart.
"""

from __future__ import annotations

import re
from typing import TextIO

from runner.runresult.model import JobResult, RunResult

TAGS = {
    "succeeded": "done",
    "failed": "crit",
    "timed_out": "crit",
    "cancelled": "crit",
    "running": "active",
    "unclear": "active",
}

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def escape(text: str) -> str:
    """Text safe as a Mermaid gantt section name or title: every character but letters,
    digits, `_`, `.` and `-` as an entity code (`#58;`), which Mermaid shows as the character."""
    return _UNSAFE.sub(lambda m: f"#{ord(m.group())};", text) or "#160;"


def task_name(text: str) -> str:
    """Text safe as a task's name, which starts a line: its first character is always an
    entity code, or a name such as `gantt`, `topAxis` or `inclusiveEndDates` would be read as
    that keyword, however the line goes on."""
    return f"#{ord(text[0])};{escape(text[1:]) if text[1:] else ''}" if text else "#160;"


def write_gantt(view: RunResult, stream: TextIO) -> None:
    stream.write("gantt\n")
    stream.write(f"  title Run {escape(view.run_id)} {escape(view.status)}\n")
    stream.write("  dateFormat x\n  axisFormat %H:%M:%S\n  todayMarker off\n")
    ids = {job.name: f"j{number}" for number, job in enumerate(view.jobs)}
    end = view.end
    for pool, jobs in view.by_pool().items():
        stream.write(f"  section {escape(pool)}\n")
        for job in jobs:
            stream.write(f"    {_task(job, ids[job.name], end)}\n")


def _task(job: JobResult, task_id: str, end: float) -> str:
    label = task_name(f"{job.name} ({job.report_status.replace('_', ' ')})")
    if job.started_at is None:  # never ran: a marker where the run ended
        return f"{label} :milestone, {task_id}, {_ms(end)}, {_ms(end)}"
    finish = job.finished_at if job.finished_at is not None else end
    # Mermaid draws nothing for a bar of no length: make it at least one millisecond
    stop = max(_ms(finish), _ms(job.started_at) + 1)
    tag = TAGS.get(job.report_status)
    tags = f"{tag}, " if tag else ""
    return f"{label} :{tags}{task_id}, {_ms(job.started_at)}, {stop}"


def _ms(epoch: float) -> int:
    return round(epoch * 1000)
