"""Printing a ManifestDiff: text for people, JSON for scripts, Markdown for a pull request's
comment or step summary, Mermaid for the new graph with what changed marked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from runner.durations import format_duration
from runner.manifest.diff import (
    DURATION_FIELDS,
    Change,
    Edge,
    Entry,
    ManifestDiff,
    Value,
)
from runner.manifest.model import Job
from runner.reports import mermaid
from runner.text import inert, printable

DIFF_FORMAT_VERSION = 1
MARKDOWN_MAX_ROWS = 200
"""A pull request comment holds 65,536 characters: longer lists end with "... and N more"."""
MARKDOWN_GRAPH_MAX_JOBS = 150
"""Above this many affected jobs the Markdown has no graph (Mermaid gives up, people too)."""

MERMAID_STYLES = {
    "added": "fill:#d3f3d8,stroke:#1a7f37",
    "changed": "fill:#fff1c2,stroke:#9a6700",
    "lost_dependency": "fill:#fff1c2,stroke:#cf222e,stroke-dasharray:4",
    "downstream": "fill:#ddf4ff,stroke:#0969da",
    "removed": "fill:#ffd8d3,stroke:#cf222e,stroke-dasharray:4",
}
"""Node classes: added and changed jobs, changed jobs that lost a dependency, the jobs the
changes reach, and removed jobs (drawn apart, with their former edges dotted)."""


def diff_to_dict(diff: ManifestDiff) -> dict[str, Any]:
    """The machine-readable diff; fields are only added while `format_version` is 1."""
    return {
        "format_version": DIFF_FORMAT_VERSION,
        "base": diff.base.path,
        "new": diff.new.path,
        "has_changes": diff.has_changes,
        "added": [_entry(e) for e in diff.added],
        "removed": [_entry(e) for e in diff.removed],
        "changed": [
            {
                "kind": c.kind,
                "name": c.name,
                "line": c.line or None,
                "fields": {f.field: {"old": f.old, "new": f.new} for f in c.fields},
            }
            for c in diff.changed
        ],
        "edges": {
            "added": [{"from": a, "to": b} for a, b in diff.edges_added],
            "removed": [{"from": a, "to": b} for a, b in diff.edges_removed],
        },
        "downstream": list(diff.downstream),
    }


def _entry(entry: Entry) -> dict[str, Any]:
    return {"kind": entry.kind, "name": entry.name, "line": entry.line or None}


def write_json(diff: ManifestDiff, stream: TextIO) -> None:
    json.dump(diff_to_dict(diff), stream, indent=2)
    stream.write("\n")


def shown(key: str, value: Value) -> str:
    """A field's value for people: durations as `45m`, lists as `[a, b]`, none as `-`."""
    if value is None or isinstance(value, bool):
        return {None: "-", True: "true", False: "false"}[value]
    if key in DURATION_FIELDS and isinstance(value, int | float):
        return format_duration(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(", ", ": "))
    if value == "" and key in ("id", "pool_id"):
        return "(unknown: its variable is not set)"
    return printable(str(value))


def _pair(key: str, old: Value, new: Value) -> tuple[str, str]:
    before, after = shown(key, old), shown(key, new)
    if before == after and key in DURATION_FIELDS:  # 2h and 2h0m10s both print as 2h
        before, after = f"{old}s", f"{new}s"
    return before, after


def summary_line(diff: ManifestDiff) -> str:
    """`1 job added, 1 removed, 3 changed; 1 pool changed; 2 dependencies added, 1 removed`."""
    parts = [
        _counted(one, many, [(v, sum(x.kind == kind for x in xs)) for v, xs in verbs])
        for kind, one, many in (
            ("job", "job", "jobs"),
            ("pool", "pool", "pools"),
            ("connection", "connection", "connection"),
        )
        for verbs in [(("added", diff.added), ("removed", diff.removed), ("changed", diff.changed))]
    ]
    parts.append(
        _counted(
            "dependency",
            "dependencies",
            [("added", len(diff.edges_added)), ("removed", len(diff.edges_removed))],
        )
    )
    found = [p for p in parts if p]
    return "; ".join(found) if found else "no change"


def _counted(one: str, many: str, counts: Sequence[tuple[str, int]]) -> str:
    """`2 jobs added, 1 removed` (the noun after the first number only); "" for none."""
    items = [(verb, n) for verb, n in counts if n]
    if not items:
        return ""
    (verb, n), rest = items[0], items[1:]
    if one == "connection":
        return f"connection {verb}"
    return ", ".join([f"{n} {one if n == 1 else many} {verb}", *(f"{m} {v}" for v, m in rest)])


def write_headline(diff: ManifestDiff, stream: TextIO) -> None:
    """The text's first line alone (`diff -q`): whether anything changed, and how much."""
    base, new = printable(diff.base.path), printable(diff.new.path)
    if not diff.has_changes:
        stream.write(f"No changes: {base} and {new} declare the same pools and jobs.\n")
    else:
        stream.write(f"Changes from {base} to {new}: {summary_line(diff)}\n")


def write_text(diff: ManifestDiff, stream: TextIO) -> None:
    write_headline(diff, stream)
    if not diff.has_changes:
        return
    base = printable(diff.base.path)
    stream.write("\n")
    for entry in diff.added:
        stream.write(f"+ {entry.kind} {entry.name}{_at(entry.line)}\n")
    for entry in diff.removed:
        stream.write(f"- {entry.kind} {entry.name}{_at(entry.line, base)}\n")
    for change in diff.changed:
        name = "" if change.kind == "connection" else f" {change.name}"
        stream.write(f"~ {change.kind}{name}{_at(change.line)}\n")
        for fc in change.fields:
            before, after = _pair(fc.field, fc.old, fc.new)
            stream.write(inert(f"    {fc.field}: {before} -> {after}") + "\n")
    _write_edges_text(diff, stream)


def _write_edges_text(diff: ManifestDiff, stream: TextIO) -> None:
    for title, edges in (("added", diff.edges_added), ("removed", diff.edges_removed)):
        if edges:
            stream.write(f"\nDependencies {title}:\n")
            for dependency, dependent in edges:
                stream.write(f"  {dependency} -> {dependent}\n")
    if diff.downstream:
        stream.write(
            f"\nDownstream of the changes ({len(diff.downstream)}, unchanged themselves):"
            f" {', '.join(diff.downstream)}\n"
        )


def _at(line: int, where: str | None = None) -> str:
    if not line:
        return ""
    return f" ({where} line {line})" if where else f" (line {line})"


def write_markdown(diff: ManifestDiff, stream: TextIO) -> None:
    """A section for a pull request comment or the step summary."""
    stream.write(f"## celonis-runner: changes to `{_code(diff.new.path)}`\n\n")
    if not diff.has_changes:
        stream.write(
            f"No changes against `{_code(diff.base.path)}`: the same pools and jobs,"
            " whatever the order, comments or anchors.\n\n"
        )
        return
    stream.write(f"Against `{_code(diff.base.path)}`: {summary_line(diff)}.\n\n")
    rows = [
        *(("➕ added", e.kind, e.name, _added_note(diff, e)) for e in diff.added),
        *(("➖ removed", e.kind, e.name, "") for e in diff.removed),
        *(("✏️ changed", c.kind, c.name, _fields_cell(c)) for c in diff.changed),
    ]
    stream.write("| | Kind | Name | Change |\n|---|---|---|---|\n")
    for what, kind, name, note in rows[:MARKDOWN_MAX_ROWS]:
        stream.write(f"| {what} | {kind} | `{name}` | {note} |\n")
    if len(rows) > MARKDOWN_MAX_ROWS:
        stream.write(f"\n… and {len(rows) - MARKDOWN_MAX_ROWS} more (see `--format text`).\n")
    for title, edges in (("added", diff.edges_added), ("removed", diff.edges_removed)):
        if edges:
            stream.write(f"\n**Dependencies {title}:** {_edge_list(edges)}\n")
    if diff.downstream:
        stream.write(
            f"\n**Downstream** ({len(diff.downstream)} jobs that run after a change,"
            f" selected by `state:modified+`): {_name_list(diff.downstream)}\n"
        )
    _write_markdown_graph(diff, stream)
    stream.write("\n")


def _write_markdown_graph(diff: ManifestDiff, stream: TextIO) -> None:
    """The part of the new graph the changes touch: the changed jobs, their direct
    dependencies and everything downstream."""
    touched = set(diff.modified_jobs) | set(diff.downstream)
    for name in diff.modified_jobs:
        touched.update(diff.new.jobs[name].depends_on)
    if not touched and not diff.removed_jobs:
        return
    if len(touched) > MARKDOWN_GRAPH_MAX_JOBS:
        stream.write(
            f"\n{len(touched)} jobs are affected: too many for a graph here; see"
            " `celonis-runner diff --format mermaid`.\n"
        )
        return
    stream.write("\n### Graph\n\n```mermaid\n")
    write_mermaid(diff, stream, only=touched)
    stream.write("```\n")


def _added_note(diff: ManifestDiff, entry: Entry) -> str:
    if entry.kind == "pool":
        return f"id `{_code(diff.new.pools[entry.name].pool_id)}`"
    job = diff.new.jobs[entry.name]
    after = f", after {_name_list(job.depends_on)}" if job.depends_on else ""
    return f"pool `{_code(job.pool)}`, {job.mode}{after}"


def _fields_cell(change: Change) -> str:
    parts = []
    for fc in change.fields:
        before, after = _pair(fc.field, fc.old, fc.new)
        parts.append(f"{fc.field}: `{_code(before)}` → `{_code(after)}`")
    return _cell("; ".join(parts))


def _edge_list(edges: Sequence[Edge]) -> str:
    shown_edges = [f"`{a}` → `{b}`" for a, b in edges[:MARKDOWN_MAX_ROWS]]
    more = f" … and {len(edges) - MARKDOWN_MAX_ROWS} more" if len(edges) > MARKDOWN_MAX_ROWS else ""
    return ", ".join(shown_edges) + more


def _name_list(names: Sequence[str]) -> str:
    listed = ", ".join(f"`{n}`" for n in names[:MARKDOWN_MAX_ROWS])
    more = f" … and {len(names) - MARKDOWN_MAX_ROWS} more" if len(names) > MARKDOWN_MAX_ROWS else ""
    return listed + more


def _code(text: str) -> str:
    """Text for inside backticks on one line (no backtick to end it early)."""
    return printable(text).replace("`", "'")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def classes(diff: ManifestDiff) -> dict[str, str]:
    """Each marked job of NEW and its Mermaid class (added first, then changed ...)."""
    lost = {dependent for _, dependent in diff.edges_removed}
    marked = {n: "downstream" for n in diff.downstream}
    for change in diff.changed:
        if change.kind == "job":
            marked[change.name] = "lost_dependency" if change.name in lost else "changed"
    marked.update((e.name, "added") for e in diff.added if e.kind == "job")
    return marked


def write_mermaid(diff: ManifestDiff, stream: TextIO, *, only: Iterable[str] | None = None) -> None:
    """The new graph as a flowchart (runner.reports.mermaid: no subgraphs, each node names its
    pool) with the changes marked: node classes for added, changed and downstream jobs, removed
    jobs as nodes of their own with their former edges dotted and crossed, added edges thick.
    `only`: these jobs of the new graph (every removed job is drawn)."""
    names = _drawn(diff, only)
    removed = [n for n in diff.base.jobs if n in diff.removed_jobs]
    marked = {**classes(diff), **dict.fromkeys(removed, "removed")}
    nodes = [_node(name, diff.new.jobs[name], marked.get(name)) for name in names]
    nodes += [_node(name, diff.base.jobs[name], "removed") for name in removed]
    edges = [(dep, name) for name in names for dep in diff.new.jobs[name].depends_on]
    kinds = dict.fromkeys(diff.edges_added, "added")
    kinds.update(dict.fromkeys(diff.edges_removed, "removed"))
    edges += diff.edges_removed
    stream.write(mermaid.flowchart(nodes, edges, MERMAID_STYLES, kinds=kinds))


def _drawn(diff: ManifestDiff, only: Iterable[str] | None) -> list[str]:
    """The jobs of the new graph to draw, in its order: all, or those of `only`."""
    if only is None:
        return list(diff.new.jobs)
    wanted = set(only)
    return [n for n in diff.new.jobs if n in wanted]


def _node(name: str, job: Job, mark: str | None) -> mermaid.Node:
    """A job's node: its name, mode and pool, and what the diff says of it."""
    lines = (name, f"{job.mode} in {job.pool}")
    return mermaid.Node(name, (*lines, mark.replace("_", " ")) if mark else lines, mark)


def markdown(diff: ManifestDiff) -> str:
    out = io.StringIO()
    write_markdown(diff, out)
    return out.getvalue()


WRITERS = {
    "text": write_text,
    "json": write_json,
    "markdown": write_markdown,
    "mermaid": write_mermaid,
}
