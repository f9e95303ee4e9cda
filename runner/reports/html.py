"""A run as one self-contained HTML page: timeline, dependency graph, and every job's outcome.

The page needs no network and no JavaScript: the charts are inline SVG drawn
here, the style is inline CSS. It is HTML5 that is also well-formed XML (so
tests, and any XML tool, can parse it). Every text from the run is escaped,
control characters included; the caller scrubs secrets first (`RunResult.redacted`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

from runner.durations import format_duration
from runner.files import REPORT_MODE, write_text_atomic
from runner.reports.report import MAY_BE_RUNNING, iso, status_counts
from runner.runresult.model import JobResult, RunResult
from runner.text import replaced

GRAPH_MAX_JOBS = 300
"""Above this many jobs the dependency graph is a list: a drawing that large helps nobody."""

COLOURS = {
    "succeeded": "#2da44e",
    "failed": "#cf222e",
    "timed_out": "#cf222e",
    "cancelled": "#bf3989",
    "running": "#0969da",
    "unclear": "#bf8700",
}
NOT_RUN_COLOUR = "#8c959f"
ALLOWED_COLOUR = "#d4a72c"
"""A failure the manifest allows (`allow_failure`): it did not fail the run."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2328; }
h1, p, li { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
td.name { white-space: normal; overflow-wrap: anywhere; min-width: 10em; max-width: 24em; }
td.reason { white-space: pre-wrap; overflow-wrap: anywhere; font-family: monospace; min-width: 20em; max-width: 50em; }
.failed-run { border: 2px solid #cf222e; border-radius: 6px; padding: 0 1em; }
.failed-run h2 { color: #cf222e; }
.status { font-weight: bold; }
ul.tasks { margin: 0.2em 0; padding-left: 1.2em; }
svg text { font-size: 12px; font-family: system-ui, sans-serif; }
"""


ROW = 20
LABEL_WIDTH = 280
CHART_WIDTH = 720


def text(value: object) -> str:
    """Escaped for HTML text or a quoted attribute; characters XML forbids shown as U+FFFD."""
    return html.escape(replaced(str(value)), quote=True)


def colour(status: str) -> str:
    return COLOURS.get(status, NOT_RUN_COLOUR)


def job_colour(job: JobResult) -> str:
    """The job's status colour; a failure the manifest allows has its own."""
    return ALLOWED_COLOUR if job.allowed_failure else colour(job.report_status)


def write_html(path: Path, view: RunResult) -> None:
    write_text_atomic(path, render(view), mode=REPORT_MODE)


def render(view: RunResult) -> str:
    title = f"celonis-runner: run {view.run_id} {view.status}"
    parts = [
        "<!DOCTYPE html>\n",
        '<html lang="en"><head><meta charset="utf-8"/>',
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>\n",
        f"<h1>{text(title)}</h1>\n",
        _overview(view),
        _what_failed(view),
        "<h2>Timeline</h2>\n",
        _legend(view),
        _scroll(timeline_svg(view)),
        "<h2>Jobs</h2>\n",
        _scroll(_jobs_table(view)),
        "<h2>Dependencies</h2>\n",
        _scroll(graph_svg(view)) if len(view.jobs) <= GRAPH_MAX_JOBS else _graph_list(view),
        "</body></html>\n",
    ]
    return "".join(parts)


def _overview(view: RunResult) -> str:
    summary = status_counts(view) or "no jobs"
    took = format_duration(view.end - view.started_at)
    lines = [
        f"<p>Manifest <code>{text(view.manifest)}</code>; started {text(iso(view.started_at))}"
        + (f", ended {text(iso(view.finished_at))}" if view.finished_at is not None else "")
        + f" ({text(took)}).</p>\n",
        f"<p>{text(summary)}.</p>\n",
    ]
    if view.error:
        lines.append(f'<p class="status">Error: {text(view.error)}</p>\n')
    return "".join(lines)


def _scroll(part: str) -> str:
    """A wide part in its own scroll box: the page itself never scrolls sideways."""
    return f'<div class="scroll">{part}</div>\n'


def _what_failed(view: RunResult) -> str:
    """The jobs that failed the run (and those that may still be running), first thing on the
    page; failures the manifest allows follow in their own colour."""
    failed = [j for j in view.jobs if _fails_the_run(j)]
    allowed = [j for j in view.jobs if j.allowed_failure]
    parts = []
    if failed:
        parts.append(
            f'<section class="failed-run"><h2>What failed the run ({len(failed)})</h2>'
            f"<ul>{_failure_items(failed)}</ul></section>\n"
        )
    if allowed:
        parts.append(
            f"<p>Allowed to fail ({len(allowed)}):</p><ul>{_failure_items(allowed)}</ul>\n"
        )
    return "".join(parts)


def _failure_items(jobs: Sequence[JobResult]) -> str:
    return "".join(_failure_item(j) for j in jobs)


def _fails_the_run(job: JobResult) -> bool:
    unsettled = job.report_status in MAY_BE_RUNNING
    return (job.state.is_unsuccessful and not job.allow_failure) or unsettled


def _failure_item(job: JobResult) -> str:
    status = job.report_status.replace("_", " ")
    reason = f": {text(_short(job.error, 300))}" if job.error else ""
    return (
        f'<li><a href="#job-{text(job.name)}">{text(job.name)}</a>'
        f' <b style="color: {job_colour(job)}">{text(status)}</b>{reason}</li>'
    )


def _legend(view: RunResult) -> str:
    """What each colour means, for the statuses this run has."""
    shown = dict.fromkeys(
        (job_colour(job), job.report_status + (" (allowed)" if job.allowed_failure else ""))
        for job in view.jobs
    )
    items = "".join(
        f'<span style="color: {c}">\u25a0</span> {text(s.replace("_", " "))} ' for c, s in shown
    )
    return f"<p>{items}</p>\n"


def _jobs_table(view: RunResult) -> str:
    rows = [
        "<table><thead><tr><th>Job</th><th>Pool</th><th>Status</th><th>Started</th>"
        "<th>Duration</th><th>Reason and tasks</th></tr></thead><tbody>\n"
    ]
    for job in view.jobs:
        status = job.report_status.replace("_", " ") + (" (allowed)" if job.allowed_failure else "")
        duration = format_duration(job.duration) if job.duration is not None else "-"
        rows.append(
            f'<tr id="job-{text(job.name)}"><td class="name">{text(job.name)}</td>'
            f"<td>{text(job.pool)}</td>"
            f'<td class="status" style="color: {job_colour(job)}">{text(status)}</td>'
            f"<td>{text(iso(job.started_at) or '-')}</td><td>{text(duration)}</td>"
            f'<td class="reason">{_reason(job)}</td></tr>\n'
        )
    rows.append("</tbody></table>\n")
    return "".join(rows)


def _reason(job: JobResult) -> str:
    reason = text(job.error) if job.error and job.report_status != "succeeded" else ""
    if not job.tasks:
        return reason
    items = "".join(
        f"<li>{text(t.name)}: {text(t.status)}"
        + (f" ({text(t.error)})" if t.error else "")
        + "</li>"
        for t in job.tasks
    )
    return f'{reason}<ul class="tasks">{items}</ul>'


def timeline_svg(view: RunResult) -> str:
    """A bar per job on one time axis, the jobs grouped under their pool."""
    start, span = view.started_at, max(view.end - view.started_at, 1e-3)
    scale = CHART_WIDTH / span
    rows: list[str] = []
    y = ROW * 2
    for pool, jobs in view.by_pool().items():
        rows.append(f'<text x="4" y="{y + 14}" font-weight="bold">{text(pool)}</text>')
        y += ROW
        for job in jobs:
            rows.append(_bar(job, y, start, scale, view.end))
            y += ROW
    width = LABEL_WIDTH + CHART_WIDTH + 20
    return (
        f'<svg role="img" aria-label="timeline" width="{width}" height="{y + ROW}"'
        f' viewBox="0 0 {width} {y + ROW}">' + "".join(_axis(span, y)) + "".join(rows) + "</svg>\n"
    )


_TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_TICK_STEPS_LONG = (3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 5 * 86400, 10 * 86400)
MAX_TICKS = 8


def tick_step(span: float) -> float:
    """The smallest round step (1s, 5m, 15m, 1h, ...) that puts at most MAX_TICKS ticks on
    `span` seconds."""
    steps = (*_TICK_STEPS, *_TICK_STEPS_LONG)
    return next((step for step in steps if span / step <= MAX_TICKS), steps[-1])


def _axis(span: float, bottom: int) -> Iterable[str]:
    """A tick at every round step from the run's start (`+15m`, `+30m`, ...)."""
    step = tick_step(span)
    for tick in range(int(span / step + 1e-9) + 1):
        x = LABEL_WIDTH + CHART_WIDTH * tick * step / span
        anchor = "end" if x > LABEL_WIDTH + CHART_WIDTH - 30 else "middle"  # inside the picture
        yield (
            f'<line x1="{x:.1f}" y1="{ROW}" x2="{x:.1f}" y2="{bottom}" stroke="#d0d7de"/>'
            f'<text x="{x:.1f}" y="{ROW - 4}" text-anchor="{anchor}">'
            f"+{text(format_duration(tick * step))}</text>"
        )


def _bar(job: JobResult, y: int, start: float, scale: float, end: float) -> str:
    label = f'<text x="16" y="{y + 14}">{text(_short(job.name, 36))}</text>'
    if job.started_at is None:
        return label + (
            f'<text x="{LABEL_WIDTH}" y="{y + 14}" fill="{NOT_RUN_COLOUR}">'
            f"{text(job.report_status.replace('_', ' '))}</text>"
        )
    finish = job.finished_at if job.finished_at is not None else end
    x = LABEL_WIDTH + (job.started_at - start) * scale
    width = max((finish - job.started_at) * scale, 2.0)
    duration = format_duration(job.duration) if job.duration is not None else "still running"
    tip = f"{job.name}: {job.report_status.replace('_', ' ')}, {duration}"
    return label + (
        f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW - 6}" rx="2"'
        f' fill="{job_colour(job)}"><title>{text(tip)}</title></rect>'
    )


def graph_svg(view: RunResult) -> str:
    """The dependency graph: a column per wave, an arrow from each dependency to its dependent."""
    node_w, node_h, col_w, row_h = 190, 26, 240, 36
    place: dict[str, tuple[float, float]] = {}
    height: dict[int, int] = {}
    for job in view.jobs:
        row = height.get(job.wave, 0)
        height[job.wave] = row + 1
        place[job.name] = (10 + (job.wave - 1) * col_w, 10 + row * row_h)
    edges = [
        f'<line x1="{place[d][0] + node_w:.0f}" y1="{place[d][1] + node_h / 2:.0f}"'
        f' x2="{place[j.name][0]:.0f}" y2="{place[j.name][1] + node_h / 2:.0f}"'
        ' stroke="#57606a" marker-end="url(#arrow)"/>'
        for j in view.jobs
        for d in j.depends_on
        if d in place
    ]
    nodes = [
        f'<rect x="{place[j.name][0]}" y="{place[j.name][1]}" width="{node_w}" height="{node_h}"'
        f' rx="4" fill="#ffffff" stroke="{job_colour(j)}" stroke-width="2">'
        f"<title>{text(f'{j.name} ({j.pool}): {j.report_status}')}</title></rect>"
        f'<text x="{place[j.name][0] + 6}" y="{place[j.name][1] + 17}">{text(_short(j.name, 26))}</text>'
        for j in view.jobs
    ]
    width = 20 + max(height, default=1) * col_w
    tall = 20 + max(height.values(), default=1) * row_h
    arrow = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6"'
        ' markerHeight="6" orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/>'
        "</marker></defs>"
    )
    return (
        f'<svg role="img" aria-label="dependency graph" width="{width}" height="{tall}"'
        f' viewBox="0 0 {width} {tall}">{arrow}{"".join(edges)}{"".join(nodes)}</svg>\n'
    )


def _graph_list(view: RunResult) -> str:
    items = "".join(
        f"<li>{text(j.name)} (wave {j.wave})"
        + (f" after {text(', '.join(j.depends_on))}" if j.depends_on else "")
        + "</li>\n"
        for j in view.jobs
    )
    return f"<p>{len(view.jobs)} jobs: too many to draw; each with what it waits for:</p><ul>{items}</ul>\n"


def _short(name: str, limit: int) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
