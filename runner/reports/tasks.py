"""Task-level results in every output: the JSON report, the summary, JUnit and the
GitHub step summary. One place decides how a task's outcome reads, so the outputs agree.

JUnit: a job stays one test case (suite and test counts do not change); each task is a
`<property name="JOB.task.N" value="NAME: STATUS DURATION[: ERROR]">` of the pool's suite
(the JUnit schema Jenkins and GitLab check allows properties only there), and its line is in
the job's test case's system-out too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runner.durations import format_duration
from runner.runresult.model import JobResult, JobState, TaskOutcome
from runner.text import inert

_WORDS = {
    "SUCCESS": "succeeded",
    "FAIL": "failed",
    "SKIPPED": "skipped",
    "CANCEL": "cancelled",
    "QUEUED": "not run",
    "RUNNING": "running",
}


def status_word(task: TaskOutcome) -> str:
    """Celonis' status in the words the job statuses use."""
    return _WORDS.get(task.status, task.status.lower())


def duration_text(task: TaskOutcome) -> str:
    return format_duration(task.duration) if task.duration is not None else "-"


def first_error_line(task: TaskOutcome) -> str:
    lines = (task.error or "").splitlines()
    return lines[0].strip() if lines else ""


def report_fields(job: JobResult, when: Callable[[float | None], str | None]) -> dict[str, Any]:
    """The job's subset (as the manifest or --tasks named it) and its tasks, for the report;
    `when` writes a time as the report does."""
    subset = job.subset
    tasks = None
    if job.tasks is not None:
        tasks = [
            {
                **t.to_dict(),
                "started_at": when(t.started_at),
                "finished_at": when(t.finished_at),
            }
            for t in job.tasks
        ]
    return {"subset": dict(subset) if subset is not None else None, "tasks": tasks}


def task_line(task: TaskOutcome) -> str:
    """`SAP customers: failed 1m: ORA-00942 ...` (one line)."""
    error = first_error_line(task)
    return f"{task.name}: {status_word(task)} {duration_text(task)}" + (
        f": {error}" if error else ""
    )


def with_tasks(jobs: Iterable[JobResult]) -> list[JobResult]:
    return [job for job in jobs if job.tasks]


def _worth_listing(job: JobResult) -> bool:
    """A job's tasks are listed in the summary when it did not succeed or ran only part of its
    data job; a whole job that succeeded is one line of the job table (the report has all)."""
    return job.state != JobState.SUCCEEDED or job.partial


def summary_text(jobs: Iterable[JobResult], one_line: Any) -> str:
    """The summary's task table: a block per job that failed or ran a part, a row per task."""
    out = []
    for job in with_tasks(jobs):
        if not _worth_listing(job):
            continue
        tasks = job.tasks or ()
        names = [inert(t.name) for t in tasks]  # Celonis' names: data, never a command
        width = max(len(name) for name in names)
        out.append(f"\nTasks of {job.name}:\n")
        for name, task in zip(names, tasks, strict=True):
            row = f"  {name:<{width}}  {inert(status_word(task)):<9}  {duration_text(task):<8}"
            out.append((row + "  " + one_line(first_error_line(task))).rstrip() + "\n")
    return "".join(out)


def markdown(jobs: Iterable[JobResult], cell: Any) -> str:
    """The GitHub step summary's task table (only jobs whose tasks were read)."""
    ran = with_tasks(jobs)
    if not ran:
        return ""
    out = ["\n### Tasks\n\n| Job | Task | Status | Duration | Error |\n|---|---|---|---|---|\n"]
    for job in ran:
        for task in job.tasks or ():
            out.append(
                f"| {cell(job.name)} | {cell(task.name)} | {cell(status_word(task))} "
                f"| {duration_text(task)} | {cell(first_error_line(task), 200)} |\n"
            )
    return "".join(out)
