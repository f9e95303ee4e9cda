"""The state file's typed records (a saved run, each saved job) and the `RunResult` of a saved run.

Read tolerantly: `load_saved` has checked the document against the schema, but
`read_unchecked` has not, so each field is taken only when it has its type.
Files of state_version 1 and 2 written before the `plan` section and the run's
`finished_at` were kept still read: their pools are named by `pool_names`
(pool id -> name) or by their ids, waves come from the fingerprint, and the
run's end is when its state was last written.
"""

from __future__ import annotations

import graphlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from runner.runresult.model import JobResult, JobState, RunResult, TaskOutcome

T = TypeVar("T")


def _time(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object, default: T) -> int | T:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _dicts(value: object) -> tuple[Mapping[str, Any], ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(item for item in value if isinstance(item, Mapping))


@dataclass(frozen=True)
class SavedJob:
    """One job as the state file keeps it."""

    state: str
    pool_id: str = ""
    job_id: str = ""
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    intent_at: float | None = None
    sent_at: float | None = None
    error: str | None = None
    handle: Mapping[str, Any] | None = None
    """This run's claim on the job's execution (`ExecutionHandle.to_dict`)."""
    cancel_requested: bool = False
    task_ids: tuple[str, ...] | None = None
    tasks: tuple[TaskOutcome, ...] | None = None
    task_list: tuple[Mapping[str, Any], ...] | None = None
    """The job's tasks in Celonis (`TaskInfo.to_dict` each)."""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SavedJob:
        ids, tasks, handle = (
            record.get("task_ids"),
            _dicts(record.get("tasks")),
            record.get("handle"),
        )
        return cls(
            state=str(record.get("state")),
            pool_id=str(record.get("pool_id") or ""),
            job_id=str(record.get("job_id") or ""),
            attempts=_int(record.get("attempts"), 0),
            started_at=_time(record.get("started_at")),
            finished_at=_time(record.get("finished_at")),
            intent_at=_time(record.get("intent_at")),
            sent_at=_time(record.get("sent_at")),
            error=_text(record.get("error")),
            handle=handle if isinstance(handle, Mapping) else None,
            cancel_requested=record.get("cancel_requested") is True,
            task_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else None,
            tasks=None if tasks is None else tuple(TaskOutcome.from_dict(t) for t in tasks),
            task_list=_dicts(record.get("task_list")),
        )

    @property
    def job_state(self) -> JobState | None:
        try:
            return JobState(self.state)
        except ValueError:
            return None


@dataclass(frozen=True)
class PlannedRecord:
    """What the plan said of a job, kept in the state's `plan` section so that a report of the
    saved run shows what the run's own outputs showed."""

    pool: str
    wave: int
    depends_on: tuple[str, ...]
    allow_failure: bool = False
    line: int | None = None
    subset: Mapping[str, Any] | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PlannedRecord:
        wave, line, subset = record.get("wave"), record.get("line"), record.get("subset")
        depends = record.get("depends_on")
        return cls(
            pool=str(record.get("pool") or ""),
            wave=_int(wave, 1),
            depends_on=tuple(str(d) for d in depends) if isinstance(depends, list) else (),
            allow_failure=record.get("allow_failure") is True,
            line=_int(line, None),
            subset=subset if isinstance(subset, Mapping) else None,
        )


@dataclass(frozen=True)
class SavedRun:
    """A saved run: `data` is the document as read (snapshot with its journal applied); the
    properties are its typed records."""

    path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id", ""))

    @property
    def status(self) -> str:
        return str(self.data.get("status") or "running")

    @property
    def error(self) -> str | None:
        return _text(self.data.get("error"))

    @property
    def select(self) -> list[str]:
        return list(self._selection.get("select", []))

    @property
    def exclude(self) -> list[str]:
        return list(self._selection.get("exclude", []))

    @property
    def tasks(self) -> list[str]:
        """The run's --tasks options; none in files from before they were saved."""
        return list(self._selection.get("tasks", []))

    @property
    def _selection(self) -> Mapping[str, Any]:
        return _mapping(self.data.get("selection"))

    @property
    def target(self) -> str | None:
        """Where the run went (a base URL or "emulator"); None in files from before it was saved."""
        return _text(self.data.get("target"))

    @property
    def environment(self) -> str | None:
        """The environment the run ran in (`--env`); None: the top-level connection."""
        return _text(self.data.get("environment"))

    @property
    def resolved(self) -> dict[str, str]:
        """The ids the run's Celonis names stood for (`pools.NAME` / `jobs.NAME` -> id)."""
        found = _mapping(self.data.get("resolved"))
        return {str(k): str(v) for k, v in found.items() if isinstance(v, str)}

    @property
    def started_at(self) -> float:
        return _time(self.data.get("started_at")) or 0.0

    @property
    def finished_at(self) -> float | None:
        """When the run ended (None: still going, or killed). Files from before the run's end
        was kept: when their state was last written."""
        if self.status == "running":
            return None
        if "finished_at" in self.data:
            return _time(self.data["finished_at"])
        return _time(self.data.get("updated_at"))

    @property
    def _manifest(self) -> Mapping[str, Any]:
        return _mapping(self.data.get("manifest"))

    @property
    def manifest_path(self) -> str:
        """The manifest's path as the run was given it (relative to where it ran)."""
        return str(self._manifest.get("path", ""))

    @property
    def manifest_resolved(self) -> str | None:
        """The manifest's absolute path; None in files from before it was kept."""
        return _text(self._manifest.get("resolved"))

    @property
    def manifest_sha256(self) -> str | None:
        return _text(self._manifest.get("sha256"))

    @cached_property
    def fingerprint(self) -> Mapping[str, Mapping[str, Any]]:
        found = _mapping(self.data.get("fingerprint"))
        return {n: f for n, f in found.items() if isinstance(f, Mapping)}

    @cached_property
    def jobs(self) -> Mapping[str, SavedJob]:
        records = self.data.get("jobs")
        if not isinstance(records, Mapping):
            return {}
        return {n: SavedJob.from_record(r) for n, r in records.items() if isinstance(r, Mapping)}

    @cached_property
    def planned(self) -> Mapping[str, PlannedRecord] | None:
        """The `plan` section's jobs; None in files from before it was kept."""
        jobs = _mapping(self.data.get("plan")).get("jobs")
        if not isinstance(jobs, Mapping):
            return None
        return {n: PlannedRecord.from_record(r) for n, r in jobs.items() if isinstance(r, Mapping)}

    @property
    def pools(self) -> tuple[str, ...] | None:
        pools = _mapping(self.data.get("plan")).get("pools")
        return tuple(str(p) for p in pools) if isinstance(pools, list) else None


def result_of(saved: SavedRun, pool_names: Mapping[str, str] | None = None) -> RunResult:
    """The `RunResult` of a saved run. `pool_names` (pool id, lower case -> name) names the
    pools of a file that does not keep their names; else their ids stand."""
    planned = saved.planned or _planned_from_fingerprint(saved, pool_names or {})
    jobs = tuple(
        _job_result(name, job, saved, planned.get(name)) for name, job in saved.jobs.items()
    )
    pools = saved.pools if saved.pools is not None else tuple(dict.fromkeys(j.pool for j in jobs))
    return RunResult(
        run_id=saved.run_id,
        status=saved.status,
        manifest=saved.manifest_path,
        manifest_sha256=saved.manifest_sha256,
        started_at=saved.started_at,
        finished_at=saved.finished_at,
        error=saved.error,
        jobs=jobs,
        pools=pools,
        environment=saved.environment,
        resolved=saved.resolved,
    )


def _job_result(
    name: str, job: SavedJob, saved: SavedRun, planned: PlannedRecord | None
) -> JobResult:
    plan = planned or PlannedRecord(pool=job.pool_id, wave=1, depends_on=())
    mode = saved.fingerprint.get(name, {}).get("mode")
    return JobResult(
        name=name,
        pool=plan.pool,
        pool_id=job.pool_id,
        job_id=job.job_id,
        mode=str(mode) if mode is not None else "",
        state=job.job_state or JobState.NOT_STARTED,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        attempts=job.attempts,
        depends_on=plan.depends_on,
        wave=plan.wave,
        allow_failure=plan.allow_failure,
        line=plan.line,
        subset=plan.subset,
        task_ids=job.task_ids,
        tasks=job.tasks,
        sent_at=job.sent_at,
        intent_at=job.intent_at,
    )


def _planned_from_fingerprint(
    saved: SavedRun, pool_names: Mapping[str, str]
) -> dict[str, PlannedRecord]:
    """For a file without a `plan` section: dependencies from the fingerprint (those in the
    run), waves as the plan layers them, pools by name where `pool_names` knows them."""
    records = saved.jobs
    fingerprint = saved.fingerprint
    depends = {
        name: tuple(str(d) for d in fingerprint.get(name, {}).get("depends_on", []) if d in records)
        for name in records
    }
    waves = _waves(depends)
    return {
        name: PlannedRecord(
            pool=pool_names.get(job.pool_id.lower(), job.pool_id),
            wave=waves[name],
            depends_on=depends[name],
        )
        for name, job in records.items()
    }


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
