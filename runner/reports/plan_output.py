"""Printing a Plan: text for people, JSON for machines, Mermaid and Graphviz for pictures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sized
from typing import Any, TextIO

from runner.durations import format_duration
from runner.manifest.model import Job
from runner.manifest.task_subset import SUBSET_KEYS
from runner.plan.build import Plan, PlannedJob
from runner.reports import mermaid

PLAN_FORMAT_VERSION = 1


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The machine-readable dry run; documented in the README, stable across releases."""
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "manifest": plan.manifest.path,
        "sha256": plan.manifest.sha256,
        "jobs": [
            {
                "name": p.name,
                "pool": p.job.pool,
                "pool_id": p.job.pool_id,
                "job_id": p.job.job_id,
                "mode": p.job.mode,
                "wave": p.wave,
                "depends_on": list(p.depends_on),
                "assumed_done": list(p.assumed_done),
                "allow_failure": p.job.allow_failure,
                "timeout_seconds": p.job.timeout,
                "expected_seconds": p.job.expected_duration,
                "learned_seconds": plan.learned_seconds.get(p.name),
                "tasks": p.job.tasks.to_dict() if p.job.tasks is not None else None,
            }
            for p in plan.jobs.values()
        ],
        "waves": [list(w) for w in plan.waves],
        "critical_path": {
            "jobs": list(plan.critical_path),
            "expected_seconds": plan.critical_path_seconds,
            "learned": [n for n in plan.critical_path if n in plan.learned_seconds],
        },
        "limits": {"max_parallel": plan.max_parallel, "pools": dict(plan.pool_limits)},
        "excluded": list(plan.excluded),
    }


def write_json(plan: Plan, stream: TextIO) -> None:
    json.dump(plan_to_dict(plan), stream, indent=2)
    stream.write("\n")


def write_text(plan: Plan, stream: TextIO) -> None:
    stream.write(_headline(plan))
    stream.write(_limits_line(plan))
    stream.writelines(_wave_lines(plan))
    stream.write(_tail(plan))


def write_summary(plan: Plan, stream: TextIO) -> None:
    """`plan -q`: the text's headline and its critical path line, nothing else."""
    stream.write(_headline(plan))
    stream.write(_critical_path_line(plan))


def _headline(plan: Plan) -> str:
    jobs = plan.jobs
    pools = plan.pools()
    return (
        f"Plan for {plan.manifest.path}: {len(jobs)} job{_s(len(jobs))} in {len(pools)} "
        f"pool{_s(len(pools))}, {len(plan.waves)} wave{_s(len(plan.waves))}\n"
    )


def _limits_line(plan: Plan) -> str:
    limits = [
        f"{pool} at most {limit} at once" if limit else f"{pool} no limit"
        for pool, limit in plan.pool_limits.items()
    ]
    overall = f"at most {plan.max_parallel} at once" if plan.max_parallel else "no overall limit"
    return "Limits: " + "; ".join([overall, *limits]) + "\n"


def _wave_lines(plan: Plan) -> list[str]:
    jobs = plan.jobs
    width = max((len(n) for n in jobs), default=0)
    pool_width = max((len(p) for p in plan.pools()), default=0)
    lines = []
    for number, wave in enumerate(plan.waves, start=1):
        lines.append(f"\nWave {number}\n")
        for name in wave:
            planned = jobs[name]
            notes = "; ".join(_notes(plan, planned))
            line = f"  {name:<{width}}  {planned.job.pool:<{pool_width}}  {planned.job.mode:<5}"
            lines.append((f"{line}  {notes}" if notes else line).rstrip() + "\n")
    return lines


def _tail(plan: Plan) -> str:
    """The critical path, what was learned, what was not selected."""
    out = "\n" + _critical_path_line(plan) if plan.critical_path else ""
    if plan.learned_seconds:
        out += _learned_note(plan)
    if plan.excluded:
        out += f"Not selected: {', '.join(plan.excluded)}\n"
    return out


def _critical_path_line(plan: Plan) -> str:
    if not plan.critical_path:
        return ""
    what = (
        f"expected {format_duration(plan.critical_path_seconds)}"
        if plan.critical_path_seconds is not None
        else f"{len(plan.critical_path)} job{_s(len(plan.critical_path))}"
    )
    return f"Critical path ({what}): {' -> '.join(plan.critical_path)}\n"


def _notes(plan: Plan, planned: PlannedJob) -> list[str]:
    """What the text plan says beside a job."""
    notes = []
    if planned.depends_on:
        notes.append("after " + ", ".join(planned.depends_on))
    if planned.assumed_done:
        notes.append("assumed done: " + ", ".join(planned.assumed_done))
    if planned.job.allow_failure:
        notes.append("may fail")
    if planned.name in plan.learned_seconds:
        notes.append(f"took {format_duration(plan.learned_seconds[planned.name])} before*")
    if planned.job.tasks is not None:
        notes.append("only " + planned.job.tasks.describe())
    return notes


def _learned_note(plan: Plan) -> str:
    """The footnote of the jobs marked `*`: where their duration comes from, and whether the
    critical path could use it (only when every job has a duration)."""
    note = (
        "* no expected_duration: the median of its successful executions in earlier runs"
        " of this manifest (their state files)"
    )
    if plan.critical_path_seconds is not None:
        return note + ", used for the critical path\n"
    unknown = [n for n, p in plan.jobs.items() if p.job.expected_duration is None]
    unknown = [n for n in unknown if n not in plan.learned_seconds]
    return (
        note + "; the critical path counts jobs until every job has a duration"
        f" (none yet for {', '.join(unknown)}: give them expected_duration)\n"
    )


MERMAID_STATUS_STYLES = {
    "succeeded": "fill:#d3f3d8,stroke:#1a7f37",
    "failed": "fill:#ffd8d3,stroke:#cf222e",
    "timed_out": "fill:#ffd8d3,stroke:#cf222e",
    "cancelled": "fill:#ffd8d3,stroke:#cf222e",
    "running": "fill:#ddf4ff,stroke:#0969da",
    "skipped": "fill:#eaeef2,stroke:#6e7781,stroke-dasharray:4",
    "not_started": "fill:#eaeef2,stroke:#6e7781,stroke-dasharray:4",
}


def write_mermaid(plan: Plan, stream: TextIO, *, statuses: Mapping[str, str] | None = None) -> None:
    """A flowchart (runner.reports.mermaid): a node per job with its pool, mode and, when
    `statuses` (job name -> report status) is given, its final status as text and colour."""
    nodes = []
    for name, planned in plan.jobs.items():
        lines = [name, f"{planned.job.mode} in {planned.job.pool}", *_part(planned.job)]
        status = statuses.get(name) if statuses is not None else None
        if status is not None:
            lines.append(status.replace("_", " "))
        nodes.append(mermaid.Node(name, tuple(lines), status))
    edges = [(dep, name) for name, planned in plan.jobs.items() for dep in planned.depends_on]
    stream.write(mermaid.flowchart(nodes, edges, MERMAID_STATUS_STYLES))


def write_dot(plan: Plan, stream: TextIO) -> None:
    stream.write("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n")
    for pool_number, pool in enumerate(plan.pools()):
        stream.write(f'  subgraph cluster_{pool_number} {{\n    label="{pool}";\n')
        for name, planned in plan.jobs.items():
            if planned.job.pool == pool:
                part = "".join(f"\\n{line}" for line in _part(planned.job))
                stream.write(f'    "{name}" [label="{name}\\n{planned.job.mode}{part}"];\n')
        stream.write("  }\n")
    for name, planned in plan.jobs.items():
        for dep in planned.depends_on:
            stream.write(f'  "{dep}" -> "{name}";\n')
    stream.write("}\n")


def _part(job: Job) -> list[str]:
    """For pictures: the line saying how much of the job runs, if it runs part of it."""
    return [] if job.tasks is None else [part_text(job.tasks.to_dict())]


def part_text(subset: Mapping[str, Sized]) -> str:
    """How much of a job runs, in counts (task names could break a picture's syntax);
    `subset`: the kinds that are limited, as TaskSubset.to_dict() has them."""
    counts = [
        f"{len(subset[key])} {kind}{_s(len(subset[key]))}" if key in subset else f"all {kind}s"
        for key, kind in zip(
            SUBSET_KEYS, ("extraction", "transformation", "data model"), strict=True
        )
    ]
    return f"part: {', '.join(counts)}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
