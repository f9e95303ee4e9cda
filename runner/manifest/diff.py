"""What changed between two manifests: pools and jobs added, removed and changed (field by
field), dependency edges, and the jobs a change reaches downstream. Pure: two models in.

The models are compared, not the YAML: order, comments, anchors, a duration written `2h` or
`120m`, and a `${VAR}` that gives the same value as a literal make no change. A change to
`defaults` shows as a change of every job it reaches, since that is what a run would do.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from runner.manifest.model import Job, Manifest, Pool
from runner.manifest.task_subset import SUBSET_KEYS, TaskSubset

Kind = Literal["pool", "job", "connection"]
_Item = TypeVar("_Item", Pool, Job)
Value = str | int | float | bool | list[str] | dict[str, object] | None
"""A field's value as JSON would hold it (durations in seconds)."""

DURATION_FIELDS = frozenset(
    {"timeout", "poll_interval", "max_poll_interval", "settle_window", "expected_duration"}
)


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Value
    new: Value


@dataclass(frozen=True)
class Entry:
    """A pool or job that is only in one of the two: its line in that file."""

    kind: Kind
    name: str
    line: int


@dataclass(frozen=True)
class Change:
    """A pool, job or the connection in both, with the fields that differ (line: in NEW)."""

    kind: Kind
    name: str
    fields: tuple[FieldChange, ...]
    line: int = 0


Edge = tuple[str, str]
"""(dependency, dependent): the dependent waits for the dependency."""


@dataclass(frozen=True)
class ManifestDiff:
    base: Manifest
    new: Manifest
    added: tuple[Entry, ...] = ()
    removed: tuple[Entry, ...] = ()
    changed: tuple[Change, ...] = ()
    edges_added: tuple[Edge, ...] = ()
    edges_removed: tuple[Edge, ...] = ()
    downstream: tuple[str, ...] = ()
    """Jobs of NEW that depend, directly or not, on an added or changed job, and are
    neither themselves (in NEW's order)."""
    modified_jobs: frozenset[str] = field(default_factory=frozenset)
    """Jobs added or changed: what `state:modified` selects."""

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def removed_jobs(self) -> frozenset[str]:
        return frozenset(e.name for e in self.removed if e.kind == "job")


def compare(base: Manifest, new: Manifest) -> ManifestDiff:
    """What changes from `base` to `new`."""
    added = _only_in(new, base)
    removed = _only_in(base, new)
    changed = _connection_change(base, new)
    changed += _changes("pool", base.pools, new.pools, _pool_fields)
    job_changes = _changes("job", base.jobs, new.jobs, _job_fields)
    changed += job_changes
    changed_jobs = [c.name for c in job_changes]
    modified = frozenset(_names(added, "job") + changed_jobs)
    return ManifestDiff(
        base=base,
        new=new,
        added=tuple(added),
        removed=tuple(removed),
        changed=tuple(changed),
        edges_added=_edges(new, base, modified),
        edges_removed=_edges(base, new, changed_jobs + _names(removed, "job")),
        downstream=tuple(n for n in reached(new, modified) if n not in modified),
        modified_jobs=modified,
    )


def reached(manifest: Manifest, starts: Iterable[str]) -> list[str]:
    """Every job of `manifest` that depends, directly or not, on one of `starts` (the starts
    themselves only when another start reaches them), in the manifest's order."""
    children: dict[str, list[str]] = {}
    for name, job in manifest.jobs.items():
        for dep in job.depends_on:
            children.setdefault(dep, []).append(name)
    seen: set[str] = set()
    stack = [s for s in starts if s in manifest.jobs]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return [n for n in manifest.jobs if n in seen]


def _only_in(one: Manifest, other: Manifest) -> list[Entry]:
    """The pools, then the jobs, of `one` that `other` has not (in `one`'s order)."""
    found = [Entry("pool", n, p.line) for n, p in one.pools.items() if n not in other.pools]
    found += [Entry("job", n, j.line) for n, j in one.jobs.items() if n not in other.jobs]
    return found


def _names(entries: Sequence[Entry], kind: Kind) -> list[str]:
    return [e.name for e in entries if e.kind == kind]


def _edges(one: Manifest, other: Manifest, names: Iterable[str]) -> tuple[Edge, ...]:
    """Edges into `names` that `one` has and `other` does not (in `one`'s order)."""
    found: list[Edge] = []
    wanted = set(names)
    for name, job in one.jobs.items():
        if name not in wanted:
            continue
        theirs = other.jobs.get(name)
        before = set(theirs.depends_on) if theirs is not None else set()
        found.extend((dep, name) for dep in job.depends_on if dep not in before)
    return tuple(found)


def _changes(
    kind: Kind,
    base: Mapping[str, _Item],
    new: Mapping[str, _Item],
    fields_of: Callable[[_Item], dict[str, Value]],
) -> list[Change]:
    """The entries in both whose fields differ, in NEW's order."""
    found: list[Change] = []
    for name, item in new.items():
        before = base.get(name)
        if before is None or _same(before, item):
            continue
        old_fields, new_fields = fields_of(before), fields_of(item)
        diffs = tuple(
            FieldChange(key, old_fields[key], value)
            for key, value in new_fields.items()
            if _differs(key, old_fields[key], value)
        )
        if diffs:
            found.append(Change(kind, name, diffs, item.line))
    return found


def _same(one: Pool | Job, other: Pool | Job) -> bool:
    """Equal but for the line (a quick test: most entries of a large manifest are)."""
    if isinstance(one, Job) and isinstance(other, Job):
        return _compared(one) == _compared(other)
    return False


_compared = operator.attrgetter(*(f.name for f in dataclasses.fields(Job) if f.name != "line"))
"""A job's fields but its line, as a tuple."""


def _differs(key: str, old: Value, new: Value) -> bool:
    if key == "depends_on" and isinstance(old, list) and isinstance(new, list):
        return set(old) != set(new)  # the order of dependencies means nothing
    return old != new


def _pool_fields(pool: Pool) -> dict[str, Value]:
    return {"id": pool.pool_id, "max_parallel": pool.max_parallel}


def _job_fields(job: Job) -> dict[str, Value]:
    fields: dict[str, Value] = {
        "id": job.job_id,
        "pool": job.pool,
        "pool_id": job.pool_id,
        "mode": job.mode,
        "depends_on": list(job.depends_on),
        "allow_failure": job.allow_failure,
        "timeout": job.timeout,
        "poll_interval": job.poll_interval,
        "max_poll_interval": job.max_poll_interval,
        "settle_window": job.settle_window,
        "expected_duration": job.expected_duration,
        "if_running": job.if_running,
    }
    fields.update(_subset_fields(job.tasks))
    return fields


def _subset_fields(tasks: TaskSubset | None) -> dict[str, Value]:
    """The subset keys: "all" for a kind that is not limited (a whole job: all three)."""
    limited = tasks.to_dict() if tasks is not None else {}
    return {kind: limited.get(kind, "all") for kind in SUBSET_KEYS}


def _connection_change(base: Manifest, new: Manifest) -> list[Change]:
    def fields(manifest: Manifest) -> dict[str, Value]:
        conn = manifest.connection
        auth = conn.auth
        return {
            "url": conn.url,
            "auth": auth.type,
            "key_env": auth.key_env,
            "client_id_env": auth.client_id_env,
            "client_secret_env": auth.client_secret_env,
            "scope": auth.scope,
        }

    old, now = fields(base), fields(new)
    diffs = tuple(FieldChange(k, old[k], v) for k, v in now.items() if old[k] != v)
    return [Change("connection", "connection", diffs)] if diffs else []
