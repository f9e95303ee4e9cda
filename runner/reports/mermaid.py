"""The one Mermaid flowchart writer (`plan --format mermaid`, the step summary's graph,
`diff --format mermaid` and the diff's Markdown graph), and the
limits every Mermaid text this tool writes keeps so that GitHub (and mermaid-cli) render it.

No subgraphs: Mermaid's default layout (dagre, the only one GitHub has) fails on flowcharts
with subgraphs from a few dozen nodes ("Cannot set properties of undefined (setting
'order')"), depending on the edges. Each node names its pool instead. Mermaid refuses a
chart with 500 edges or more (`maxEdges`, which a diagram cannot raise) and a text over
50,000 characters (`maxTextSize`): above those the edges implied by others are left out,
then all of them, with a comment that says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_TEXT = 50_000
"""Mermaid's default `maxTextSize`: a longer text is not drawn."""
MAX_EDGES = 499
"""Mermaid's default `maxEdges` is 500, and 500 edges are refused."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- :,/()]")


def label_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: every character but letters, digits, space
    and `_.-:,/()` as an entity code (`#58;`), which Mermaid shows as the character."""
    return _UNSAFE.sub(lambda m: f"#{ord(m.group())};", text)


@dataclass(frozen=True)
class Node:
    name: str
    lines: tuple[str, ...]
    """The label's lines, plain text (escaped here)."""
    status: str | None = None


def fits(text: str) -> bool:
    """True when Mermaid (with GitHub's defaults) draws a chart of this text."""
    return len(text) <= MAX_TEXT


ARROWS = {"added": "==>", "removed": "-.-x"}
"""Arrow kinds besides the plain `-->`: a dependency added (thick) and one removed (dotted,
crossed), as `diff --format mermaid` draws them."""


def flowchart(
    nodes: Sequence[Node],
    edges: Iterable[tuple[str, str]],
    styles: Mapping[str, str],
    *,
    kinds: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """A left-to-right flowchart: a node per entry, an arrow per (from, to) of known nodes,
    nodes coloured by status with `styles` (status -> Mermaid style); `kinds`: an edge's
    kind in ARROWS (any other edge is a plain arrow)."""
    ids = {node.name: f"j{number}" for number, node in enumerate(nodes)}
    arrows = [(a, b) for a, b in dict.fromkeys(edges) if a in ids and b in ids]
    out = ["flowchart LR\n"]
    for node in nodes:
        label = "<br/>".join(label_text(line) for line in node.lines)
        out.append(f'  {ids[node.name]}["{label}"]\n')
    out += _arrows(arrows, ids, kinds or {})
    out += _classes(nodes, ids, styles)
    return "".join(out)


def _arrows(
    arrows: Sequence[tuple[str, str]],
    ids: Mapping[str, str],
    kinds: Mapping[tuple[str, str], str],
) -> list[str]:
    """The arrows Mermaid can draw: all, or those no other path implies, or none (with a note)."""
    drawn = arrows if len(arrows) <= MAX_EDGES else _reduced(arrows)
    out = []
    if len(drawn) > MAX_EDGES:
        out.append(f"  %% {len(arrows)} dependencies: more than Mermaid draws; none shown\n")
        drawn = []
    elif len(drawn) < len(arrows):
        out.append(f"  %% {len(arrows) - len(drawn)} dependencies implied by others not drawn\n")
    return out + [
        f"  {ids[a]} {ARROWS.get(kinds.get((a, b), ''), '-->')} {ids[b]}\n" for a, b in drawn
    ]


def _classes(nodes: Sequence[Node], ids: Mapping[str, str], styles: Mapping[str, str]) -> list[str]:
    """Nodes coloured by status."""
    out = []
    for status, style in styles.items():
        members = [ids[n.name] for n in nodes if n.status == status]
        if members:
            out.append(f"  classDef {status} {style}\n")
            out.append(f"  class {','.join(members)} {status}\n")
    return out


def _reduced(edges: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges without those another path already implies (the transitive reduction of a
    graph without cycles)."""
    after: dict[str, list[str]] = {}
    for a, b in edges:
        after.setdefault(a, []).append(b)
    kept = []
    for a, b in edges:
        others = [c for c in after[a] if c != b]
        if not _reaches(others, b, after):
            kept.append((a, b))
    return kept


def _reaches(start: list[str], goal: str, after: Mapping[str, list[str]]) -> bool:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(after.get(node, ()))
    return False
