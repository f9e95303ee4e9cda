"""A run as one self-contained HTML page: timeline, dependency graph, and every job's outcome.

The page needs no network and no JavaScript: the charts are inline SVG drawn
here, the style is inline CSS. It is HTML5 that is also well-formed XML (so
tests, and any XML tool, can parse it). Every text from the run is escaped,
control characters included; the caller scrubs secrets first (`RunResult.redacted`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from runner.durations import format_duration
from runner.files import write_text_atomic
from runner.reports.report import iso
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2328; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
td.reason { white-space: pre-wrap; font-family: monospace; max-width: 50em; }
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


def write_html(path: Path, view: RunResult) -> None:
    write_text_atomic(path, render(view))


def render(view: RunResult) -> str:
    title = f"celonis-runner: run {view.run_id} {view.status}"
    parts = [
        "<!DOCTYPE html>\n",
        '<html lang="en"><head><meta charset="utf-8"/>',
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>\n",
        f"<h1>{text(title)}</h1>\n",
        _overview(view),
        "<h2>Timeline</h2>\n",
        _legend(view),
        timeline_svg(view),
        "<h2>Jobs</h2>\n",
        _jobs_table(view),
        "<h2>Dependencies</h2>\n",
        graph_svg(view) if len(view.jobs) <= GRAPH_MAX_JOBS else _graph_list(view),
        "</body></html>\n",
    ]
    return "".join(parts)


def _overview(view: RunResult) -> str:
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in view.counts().items()) or "no jobs"
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


def _legend(view: RunResult) -> str:
    """What each colour means, for the statuses this run has."""
    statuses = dict.fromkeys(job.report_status for job in view.jobs)
    items = "".join(
        f'<span style="color: {colour(s)}">\u25a0</span> {text(s.replace("_", " "))} '
        for s in statuses
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
            f'<tr id="job-{text(job.name)}"><td>{text(job.name)}</td><td>{text(job.pool)}</td>'
            f'<td class="status" style="color: {colour(job.report_status)}">{text(status)}</td>'
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


def _axis(span: float, bottom: int) -> Iterable[str]:
    for tick in range(5):
        x = LABEL_WIDTH + CHART_WIDTH * tick / 4
        anchor = "end" if tick == 4 else "middle"  # the last label inside the picture
        yield (
            f'<line x1="{x:.1f}" y1="{ROW}" x2="{x:.1f}" y2="{bottom}" stroke="#d0d7de"/>'
            f'<text x="{x:.1f}" y="{ROW - 4}" text-anchor="{anchor}">'
            f"+{text(format_duration(span * tick / 4))}</text>"
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
        f' fill="{colour(job.report_status)}"><title>{text(tip)}</title></rect>'
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
        f' rx="4" fill="#ffffff" stroke="{colour(j.report_status)}" stroke-width="2">'
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
