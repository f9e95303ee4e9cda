"""The plan: which jobs run, what each waits for, what can run together. Pure: no I/O.

`plan` prints a Plan and `run` executes the very same object.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import PlanError
from runner.manifest.model import Job, Manifest
from runner.plan.state_selection import is_state, state_jobs, unknown_job
from runner.problems import did_you_mean
from runner.task_records import TaskIds, TaskInfo

if TYPE_CHECKING:
    from runner.manifest.diff import ManifestDiff


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    depends_on: tuple[str, ...]
    """Selected dependencies: the run waits for each to succeed."""
    assumed_done: tuple[str, ...]
    """Dependencies outside the selection: assumed done, not waited for."""
    dependents: tuple[str, ...]
    wave: int
    task_ids: TaskIds | None = None
    """The job's subset resolved to ids when a run starts (runner.preflight.task_names); None: the
    whole job, or not resolved yet."""
    resumed_task_list: tuple[TaskInfo, ...] | None = None
    """On a resume limited to the job's unfinished tasks (runner.preflight.resume_tasks): the job's
    tasks in Celonis that subset was taken from. The state file keeps it until the job ends, so
    that a resume of this resume can check them again and run the same subset."""

    @property
    def name(self) -> str:
        return self.job.name


@dataclass(frozen=True)
class Plan:
    manifest: Manifest
    jobs: Mapping[str, PlannedJob]
    """In a dependency order (by wave, then manifest order)."""
    waves: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    critical_path_seconds: float | None
    """Sum of expected durations along the critical path, when every job on it has one."""
    max_parallel: int | None
    pool_limits: Mapping[str, int | None]
    excluded: tuple[str, ...]
    learned_seconds: Mapping[str, float] = field(default_factory=dict)
    """Durations learned from earlier runs, used for the jobs without an expected_duration
    (runner.runresult.history); empty when none was given."""
    remaining: Mapping[str, float] = field(default_factory=dict)
    """Each job's longest chain to the plan's end, itself included (see `_remaining`): when
    more jobs are ready than can start at once, the longest chain starts first."""

    def pools(self) -> list[str]:
        seen: dict[str, None] = {}
        for planned in self.jobs.values():
            seen.setdefault(planned.job.pool, None)
        return list(seen)


def build_plan(
    manifest: Manifest,
    *,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_parallel: int | None = None,
    learned: Mapping[str, float] | None = None,
    changes: ManifestDiff | None = None,
) -> Plan:
    """The plan; `learned` (job name -> seconds, from earlier runs) stands in for a missing
    expected_duration on the critical path; `changes` (against --base) serves `state:`."""
    if max_parallel is not None and max_parallel < 1:
        raise PlanError(f"the limit of jobs running at once must be at least 1, not {max_parallel}")
    names = list(manifest.jobs)
    chosen = _chosen(manifest, select, exclude, changes)
    position = {n: i for i, n in enumerate(names)}
    graph = _graph(manifest, chosen)
    waves = _waves(graph, position)
    jobs = _planned_jobs(manifest, chosen, graph, waves, position)
    used = _learned_used(jobs, learned or {})
    path, seconds = _critical_path(jobs, waves, used)
    return Plan(
        manifest=manifest,
        jobs=jobs,
        waves=tuple(waves),
        critical_path=path,
        critical_path_seconds=seconds,
        max_parallel=max_parallel,
        pool_limits=_pool_limits(manifest, jobs),
        excluded=tuple(n for n in names if n not in chosen),
        learned_seconds=used,
        remaining=_remaining(jobs, waves, used),
    )


def _chosen(
    manifest: Manifest,
    select: Sequence[str],
    exclude: Sequence[str],
    changes: ManifestDiff | None,
) -> set[str]:
    """The selected jobs (all when nothing is selected) but the excluded ones."""
    chosen = set(resolve_selection(manifest, select, changes)) if select else set(manifest.jobs)
    if exclude:
        chosen -= set(resolve_selection(manifest, exclude, changes))
    return chosen


def _graph(manifest: Manifest, chosen: set[str]) -> dict[str, set[str]]:
    """Each chosen job (in manifest order) -> its chosen dependencies."""
    return {
        n: {d for d in job.depends_on if d in chosen}
        for n, job in manifest.jobs.items()
        if n in chosen
    }


def _learned_used(jobs: Mapping[str, PlannedJob], learned: Mapping[str, float]) -> dict[str, float]:
    """The learned durations of the planned jobs that have no expected_duration."""
    return {n: s for n, s in learned.items() if n in jobs and jobs[n].job.expected_duration is None}


def _planned_jobs(
    manifest: Manifest,
    chosen: set[str],
    graph: Mapping[str, set[str]],
    waves: Sequence[Sequence[str]],
    position: Mapping[str, int],
) -> dict[str, PlannedJob]:
    """The chosen jobs in dependency order (by wave, then manifest order)."""
    dependents: dict[str, list[str]] = {n: [] for n in graph}
    for n, deps in graph.items():
        for d in deps:
            dependents[d].append(n)
    jobs = {}
    for i, wave in enumerate(waves):
        for n in wave:
            depends_on = manifest.jobs[n].depends_on
            jobs[n] = PlannedJob(
                job=manifest.jobs[n],
                depends_on=tuple(d for d in depends_on if d in chosen),
                assumed_done=tuple(d for d in depends_on if d not in chosen),
                dependents=tuple(sorted(dependents[n], key=position.__getitem__)),
                wave=i + 1,
            )
    return jobs


def _pool_limits(manifest: Manifest, jobs: Mapping[str, PlannedJob]) -> dict[str, int | None]:
    """The limits of the pools the planned jobs use, in the manifest's order."""
    used = {j.job.pool for j in jobs.values()}
    return {p.name: p.max_parallel for p in manifest.pools.values() if p.name in used}


def _waves(graph: Mapping[str, set[str]], position: Mapping[str, int]) -> list[tuple[str, ...]]:
    """The jobs in waves: each wave's jobs depend only on earlier waves (manifest order within)."""
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    waves: list[tuple[str, ...]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        waves.append(tuple(ready))
        sorter.done(*ready)
    return waves


def downstream(plan: Plan, name: str) -> list[str]:
    """Every selected job that depends on `name`, directly or not."""
    return closure(name, lambda n: plan.jobs[n].dependents)


def upstream(plan: Plan, name: str) -> list[str]:
    """Every selected job that `name` depends on, directly or not."""
    return closure(name, lambda n: plan.jobs[n].depends_on)


def resolve_selection(
    manifest: Manifest, specs: Iterable[str], changes: ManifestDiff | None = None
) -> list[str]:
    """Job names for selectors `name`, `+name`, `name+`, `+name+`, `pool:NAME` and, with
    `changes` (against --base), `state:modified` with the same `+`s (commas allowed)."""
    selected: dict[str, None] = {}
    children = _children(manifest)
    for spec in (s.strip() for raw in specs for s in raw.split(",")):
        if spec:
            selected.update((n, None) for n in _spec_jobs(manifest, spec, changes, children))
    return list(selected)


def _spec_jobs(
    manifest: Manifest,
    spec: str,
    changes: ManifestDiff | None,
    children: Mapping[str, list[str]],
) -> list[str]:
    """The jobs one selector names, first named first."""
    if spec.startswith("pool:"):
        return _pool_jobs(manifest, spec)
    if is_state(spec):
        return state_jobs(manifest, spec, changes, children.__getitem__)
    name = spec.strip("+")
    if name not in manifest.jobs:
        raise PlanError(unknown_job(manifest, name, spec, changes))
    jobs = [name]
    if spec.startswith("+"):
        jobs += closure(name, lambda n: manifest.jobs[n].depends_on)
    if spec.endswith("+") and len(spec) > 1:
        jobs += closure(name, children.__getitem__)
    return jobs


def _pool_jobs(manifest: Manifest, spec: str) -> list[str]:
    pool = spec[len("pool:") :]
    if pool not in manifest.pools:
        hint = did_you_mean(pool, manifest.pools) or (
            f" (the pools are: {', '.join(sorted(manifest.pools))})"
        )
        raise PlanError(f"unknown pool '{pool}' in '{spec}'{hint}")
    return [n for n, j in manifest.jobs.items() if j.pool == pool]


def _children(manifest: Manifest) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {n: [] for n in manifest.jobs}
    for name, job in manifest.jobs.items():
        for dep in job.depends_on:
            children[dep].append(name)
    return children


def closure(start: str, edges: Callable[[str], Iterable[str]]) -> list[str]:
    """Every node reachable from `start` along `edges` (not `start` itself), first seen first."""
    seen: dict[str, None] = {}
    stack = [start]
    while stack:
        for nxt in edges(stack.pop()):
            if nxt not in seen:
                seen[nxt] = None
                stack.append(nxt)
    return list(seen)


def _expected_seconds(
    jobs: Mapping[str, PlannedJob], learned: Mapping[str, float]
) -> dict[str, float | None]:
    """Each job's expected duration, else its learned one, else None."""
    return {
        n: p.job.expected_duration if p.job.expected_duration is not None else learned.get(n)
        for n, p in jobs.items()
    }


def _remaining(
    jobs: Mapping[str, PlannedJob],
    waves: Sequence[Sequence[str]],
    learned: Mapping[str, float],
) -> dict[str, float]:
    """Each job's longest chain to the end, itself included, in seconds: a job's expected
    duration, else its learned one, else the median of those known (1 s each when none is).
    The scheduler starts the ready jobs with the longest chain first: a critical-path-first
    list schedule, so a burst of ready jobs delays the jobs that hold the least up."""
    expected = _expected_seconds(jobs, learned)
    known = sorted(s for s in expected.values() if s is not None)
    fallback = known[len(known) // 2] if known else 1.0
    chain: dict[str, float] = {}
    for wave in reversed(waves):
        for name in wave:
            own = expected[name]
            longest = max((chain[c] for c in jobs[name].dependents), default=0.0)
            chain[name] = (own if own is not None else fallback) + longest
    return chain


def _critical_path(
    jobs: Mapping[str, PlannedJob],
    waves: Sequence[Sequence[str]],
    learned: Mapping[str, float],
) -> tuple[tuple[str, ...], float | None]:
    """Longest chain by expected (else learned) duration; by job count when one is missing."""
    expected = _expected_seconds(jobs, learned)
    timed = all(seconds is not None for seconds in expected.values())
    best: dict[str, tuple[float, str | None]] = {}
    for wave in waves:
        for name in wave:
            weight = (expected[name] or 0.0) if timed else 1.0
            before = max(
                ((best[d][0], d) for d in jobs[name].depends_on),
                default=(0.0, None),
                key=lambda item: item[0],
            )
            best[name] = (before[0] + weight, before[1])
    if not best:
        return ((), 0.0 if timed else None)
    end = max(best, key=lambda n: best[n][0])
    return (_back_from(end, best), best[end][0] if timed else None)


def _back_from(end: str, best: Mapping[str, tuple[float, str | None]]) -> tuple[str, ...]:
    """The chain that ends at `end`, following each job's heaviest dependency, first job first."""
    path: list[str] = []
    current: str | None = end
    while current is not None:
        path.append(current)
        current = best[current][1]
    return tuple(reversed(path))
