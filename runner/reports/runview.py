"""One run as the timeline and the HTML report see it, from a live RunState or a saved state file.

Both sources become the same `RunView` (jobs with their pool, report status,
wall-clock start and end, error, dependencies, wave and, when the state has
them, task results), so the Gantt chart and the HTML report are drawn once.
"""

from __future__ import annotations

import dataclasses
import graphlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.execution.runstate import JobState, RunState
from runner.execution.stateread import SavedRun
from runner.logs import Redactor
from runner.text import encodable


@dataclass(frozen=True)
class TaskView:
    """One task of a job's execution, as the state file keeps it (issue 12)."""

    name: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class JobView:
    name: str
    pool: str
    status: str
    """The report status (succeeded, failed, running, skipped, ...)."""
    started_at: float | None
    finished_at: float | None
    error: str | None
    depends_on: tuple[str, ...]
    wave: int
    allow_failure: bool = False
    tasks: tuple[TaskView, ...] = ()

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class RunView:
    run_id: str
    status: str
    manifest: str
    started_at: float
    finished_at: float | None
    """The run's end; for a run still going, when its state was last written."""
    error: str | None
    jobs: tuple[JobView, ...]
    pools: tuple[str, ...] = field(default=())

    def by_pool(self) -> dict[str, list[JobView]]:
        """The jobs grouped by pool, pools in their order (one pass over the jobs)."""
        groups: dict[str, list[JobView]] = {pool: [] for pool in self.pools}
        for job in self.jobs:
            groups.setdefault(job.pool, []).append(job)
        return groups

    @property
    def end(self) -> float:
        """Where the timeline ends: the run's end, else the last time anything happened."""
        times = [self.started_at, self.finished_at or self.started_at]
        times += [t for j in self.jobs for t in (j.started_at, j.finished_at) if t is not None]
        return max(times)


def from_state(state: RunState, *, run_id: str) -> RunView:
    """The view of a run that just ended (or is going)."""
    jobs = tuple(
        JobView(
            name=job.name,
            pool=job.planned.job.pool,
            status=job.report_status,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            depends_on=job.planned.depends_on,
            wave=job.planned.wave,
            allow_failure=job.planned.job.allow_failure,
            tasks=task_views(getattr(job, "tasks", None)),
        )
        for job in state.jobs.values()
    )
    return RunView(
        run_id=run_id,
        status=state.status or "running",
        manifest=state.plan.manifest.path,
        started_at=state.started_at,
        finished_at=state.finished_at,
        error=state.error,
        jobs=jobs,
        pools=tuple(state.plan.pools()),
    )


def from_saved(saved: SavedRun, pool_names: Mapping[str, str] | None = None) -> RunView:
    """The view of a saved run; pools are named by `pool_names` (pool id -> manifest name) where
    known, else by their ids (the state file keeps ids, not names)."""
    data = saved.data
    records: dict[str, Any] = data["jobs"]
    fingerprint: dict[str, Any] = data.get("fingerprint") or {}
    depends = {
        name: tuple(d for d in (fingerprint.get(name) or {}).get("depends_on", []) if d in records)
        for name in records
    }
    waves = _waves(depends)
    names = pool_names or {}
    jobs = tuple(
        JobView(
            name=name,
            pool=names.get(str(record["pool_id"]).lower(), str(record["pool_id"])),
            status=_report_status(record["state"]),
            started_at=_number(record.get("started_at")),
            finished_at=_number(record.get("finished_at")),
            error=record.get("error"),
            depends_on=depends[name],
            wave=waves[name],
            tasks=task_views(record.get("tasks")),
        )
        for name, record in records.items()
    )
    status = str(data.get("status") or "running")
    finished = _number(data.get("updated_at")) if status != "running" else None
    return RunView(
        run_id=saved.run_id,
        status=status,
        manifest=str(data["manifest"]["path"]),
        started_at=float(data["started_at"]),
        finished_at=finished,
        error=data.get("error"),
        jobs=jobs,
        pools=tuple(dict.fromkeys(job.pool for job in jobs)),
    )


def scrubbed(view: RunView, redactor: Redactor) -> RunView:
    """The view with every text scrubbed of the run's secrets (before anything escapes or cuts
    it) and of lone surrogates (which no output could encode)."""

    def scrub(text: str) -> str:
        return encodable(str(redactor.scrub(text)))

    jobs = tuple(
        JobView(
            name=scrub(j.name),
            pool=scrub(j.pool),
            status=j.status,
            started_at=j.started_at,
            finished_at=j.finished_at,
            error=scrub(j.error) if j.error else j.error,
            depends_on=tuple(scrub(d) for d in j.depends_on),
            wave=j.wave,
            allow_failure=j.allow_failure,
            tasks=tuple(TaskView(scrub(t.name), scrub(t.status), scrub(t.detail)) for t in j.tasks),
        )
        for j in view.jobs
    )
    return RunView(
        run_id=scrub(view.run_id),
        status=view.status,
        manifest=scrub(view.manifest),
        started_at=view.started_at,
        finished_at=view.finished_at,
        error=scrub(view.error) if view.error else view.error,
        jobs=jobs,
        pools=tuple(scrub(p) for p in view.pools),
    )


def task_views(records: Any) -> tuple[TaskView, ...]:
    """Task results in whatever shape the state keeps them: a list of records (mappings or
    dataclasses) with a name (or id) and a status, and optionally an error or message, or a
    mapping of task name to such a record or to a status; anything else is left out."""
    if isinstance(records, Mapping):
        records = [
            {"name": name, **value}
            if isinstance(value, Mapping)
            else {"name": name, "status": value}
            for name, value in records.items()
        ]
    if not isinstance(records, Sequence) or isinstance(records, str):
        return ()
    views = (_task_view(item) for item in records)
    return tuple(view for view in views if view is not None)


def _task_view(item: Any) -> TaskView | None:
    is_record = dataclasses.is_dataclass(item) and not isinstance(item, type)
    record = dataclasses.asdict(item) if is_record else item
    if not isinstance(record, Mapping):
        return None
    name = record.get("name") or record.get("task") or record.get("id")
    status = record.get("status") or record.get("state")
    if name is None or status is None:
        return None
    detail = record.get("error") or record.get("message") or ""
    return TaskView(str(name), str(status), str(detail))


def _report_status(state: str) -> str:
    try:
        return JobState(state).report_status
    except ValueError:
        return state


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _waves(depends: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each job's wave (1 = no dependency), as the plan layers them."""
    sorter = graphlib.TopologicalSorter(depends)
    wave: dict[str, int] = {}
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError:  # a damaged fingerprint: draw everything in one wave
        return dict.fromkeys(depends, 1)
    for name in order:
        wave[name] = 1 + max((wave[d] for d in depends[name]), default=0)
    return wave
