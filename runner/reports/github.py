"""GitHub Actions: workflow-command annotations for failed jobs, and the run's Markdown step summary.

On (`--github`, or by default when `GITHUB_ACTIONS=true`) `run` prints one
`::error file=…,line=…,title=…::` per failed job (`::warning` when the job
may fail) and appends a summary (status table, failures with Celonis'
reasons, the graph as Mermaid with each job's final status, the timeline as a Mermaid
gantt chart) to the file
named by `GITHUB_STEP_SUMMARY`. The environment is passed in, never read here.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from runner.durations import format_duration
from runner.reports import mermaid
from runner.reports.plan_output import MERMAID_STATUS_STYLES, part_text
from runner.reports.report import MAY_BE_RUNNING, status_counts
from runner.reports.tasks import markdown as tasks_markdown
from runner.runresult.model import JobResult, RunResult
from runner.text import inert_lines, printable

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
TABLE_REASON_LIMIT = 200
TIMELINE_MAX_JOBS = 1000
"""Above this many jobs the step summary has no timeline (about 60 bytes a job)."""

_ICONS = {
    "succeeded": "✅",
    "failed": "❌",
    "timed_out": "⏱️",
    "cancelled": "🚫",
    "skipped": "⏭️",
    "not_started": "⏸️",
    "running": "🔄",
    "unclear": "❓",
}


def enabled(flag: bool | None, environ: Mapping[str, str]) -> bool:
    """`--github` / `--no-github` if given, else whether we run in GitHub Actions."""
    return flag if flag is not None else environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(
    level: str, message: str, *, title: str, file: str | None = None, line: int | None = None
) -> str:
    """`::error file=…,line=…,title=…::message` (one line, escaped as GitHub wants)."""
    props = []
    if file:
        props.append(f"file={escape_property(file)}")
        if line:
            props.append(f"line={line}")
    props.append(f"title={escape_property(printable(title))}")
    # Celonis' text: its lines kept (GitHub shows %0A as a line break), each one inert
    return f"::{level} {','.join(props)}::{escape_data(inert_lines(message))}\n"


def report_run(run: RunResult, *, stream: TextIO, environ: Mapping[str, str]) -> None:
    """Annotations on `stream`; the step summary appended where `GITHUB_STEP_SUMMARY` says."""
    write_annotations(run, stream)
    if environ.get(STEP_SUMMARY_ENV):
        append_step_summary(step_summary(run), environ, stream)


def append_step_summary(text: str, environ: Mapping[str, str], stream: TextIO) -> None:
    """`text` appended to the file `GITHUB_STEP_SUMMARY` names (a warning on `stream` when it
    cannot be: the summary is a nicety and never changes the exit code)."""
    target = environ.get(STEP_SUMMARY_ENV)
    if not target:
        return
    try:
        with Path(target).open("a", encoding="utf-8") as summary:
            summary.write(text)
    except OSError as exc:
        stream.write(
            f"celonis-runner: warning: cannot append the step summary to ${STEP_SUMMARY_ENV}"
            f" ({target}): {exc.strerror or exc}\n"
        )


def write_annotations(run: RunResult, stream: TextIO) -> None:
    for job in run.jobs:
        if not (job.state.is_unsuccessful or job.report_status == "unclear"):
            continue
        allowed = job.allowed_failure
        verb = job.state.verb
        stream.write(
            command(
                "warning" if allowed else "error",
                job.error or verb,
                title=f"celonis-runner: {job.name} {verb}" + (" (allowed)" if allowed else ""),
                file=run.manifest,
                line=job.line,
            )
        )
    if run.status in ("api_error", "state_error") and run.error:
        stream.write(
            command("error", run.error, title="celonis-runner: the Celonis API could not be used")
        )


def step_summary(run: RunResult) -> str:
    out = io.StringIO()
    out.write(_summary_head(run))
    out.write("| Job | Pool | Mode | Status | Duration | Reason |\n")
    out.write("|---|---|---|---|---|---|\n")
    out.writelines(_summary_row(job) for job in run.jobs)
    _write_unsettled_and_failures(out, run)
    out.write("\n### Graph\n\n```mermaid\n")
    write_graph(run, out)
    out.write("```\n")
    _write_timeline(out, run)
    if run.status != "succeeded":
        out.write(
            f"\nResume with `celonis-runner run {run.manifest} --resume {run.run_id}`"
            " (keep the state directory, e.g. as an artifact).\n"
        )
    out.write("\n")
    return out.getvalue()


def _write_unsettled_and_failures(out: TextIO, run: RunResult) -> None:
    unsettled = [j.name for j in run.jobs if j.report_status in MAY_BE_RUNNING]
    if unsettled:
        out.write(f"\n**May still be running in Celonis:** {_cell(', '.join(unsettled))}\n")
    out.write(tasks_markdown(run.jobs, _cell))
    failures = [j for j in run.jobs if j.state.is_unsuccessful or j.report_status == "unclear"]
    if failures:
        out.write("\n### Failures\n")
        for job in failures:
            _write_failure(out, job, job.report_status, run.manifest)


def _summary_head(run: RunResult) -> str:
    total = (run.finished_at or run.started_at) - run.started_at
    parts = status_counts(run)
    head = (
        f"## celonis-runner: run {run.status}\n\n"
        f"Run `{run.run_id}` of `{run.manifest}` (sha256 `{(run.manifest_sha256 or '')[:12]}`): "
        f"{parts} in {format_duration(total)}.\n\n"
    )
    return head + (f"**Error:** {_cell(run.error)}\n\n" if run.error else "")


def _summary_row(job: JobResult) -> str:
    status = job.report_status
    shown = f"{_ICONS.get(status, '')} {status.replace('_', ' ')}".strip()
    if job.allowed_failure:
        shown += " (allowed)"
    reason = job.error if status != "succeeded" and job.error else ""
    duration = format_duration(job.duration) if job.duration is not None else "-"
    return (
        f"| {job.name} | {job.pool} | {job.mode} | {shown} "
        f"| {duration} | {_cell(reason, TABLE_REASON_LIMIT)} |\n"
    )


def write_graph(run: RunResult, stream: TextIO) -> None:
    """The run's graph as a Mermaid flowchart (runner.reports.mermaid): a node per job with
    its pool, mode, its part of the data job and its final status (as text and colour)."""
    nodes = [
        mermaid.Node(
            job.name,
            (
                job.name,
                f"{job.mode} in {job.pool}",
                *_part(job),
                job.report_status.replace("_", " "),
            ),
            job.report_status,
        )
        for job in run.jobs
    ]
    edges = [(dep, job.name) for job in run.jobs for dep in job.depends_on]
    stream.write(mermaid.flowchart(nodes, edges, MERMAID_STATUS_STYLES))


def _part(job: JobResult) -> tuple[str, ...]:
    """How much of the job runs, in counts (task names could break the syntax)."""
    return () if job.subset is None else (part_text(job.subset),)


def _write_timeline(out: TextIO, run: RunResult) -> None:
    """The run as a Gantt chart: a bar per job, a section per pool (runner.reports.gantt)."""
    from runner.reports.gantt import write_gantt

    out.write("\n### Timeline\n\n")
    if len(run.jobs) > TIMELINE_MAX_JOBS:  # GitHub refuses a step summary over 1 MiB
        out.write(
            f"{len(run.jobs)} jobs: too many for a chart here; see "
            f"`celonis-runner report {run.run_id} --format html`.\n"
        )
        return
    out.write("```mermaid\n")
    write_gantt(run, out)
    out.write("```\n")


def _write_failure(out: TextIO, job: JobResult, status: str, manifest: str) -> None:
    where = f"`{manifest}` line {job.line}" if job.line else f"`{manifest}`"
    allowed = " (allowed to fail)" if job.allow_failure else ""
    out.write(
        f"\n**{job.name}** {status.replace('_', ' ')}{allowed}: pool `{job.pool}`, {where}\n\n"
    )
    reason = inert_lines(job.error or "no reason given")
    fence = "`" * max(3, _longest_backtick_run(reason) + 1)
    out.write(f"{fence}text\n{reason}\n{fence}\n")


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall("`+", text)), default=0)


def _cell(text: str, limit: int | None = None) -> str:
    """Text safe in one Markdown table cell: one line, no pipes, no HTML, no code span (inside
    one GitHub would show `&gt;` as it is written: backticks are escaped)."""
    one_line = printable(" ".join(line.strip() for line in text.splitlines() if line.strip()))
    if limit is not None and len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    return (
        one_line.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("`", "\\`")
    )
