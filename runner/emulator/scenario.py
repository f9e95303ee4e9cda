"""The emulator's scenario: what it serves (pools, jobs, timing, auth, faults), and its loader.

A scenario comes from a YAML file (`load_scenario`), from a mapping of the
same shape (`Scenario.from_dict`) or from a manifest (`Scenario.from_manifest`).
Anything wrong raises `ScenarioError` naming the field (and the file, line and
column when there is a file), every problem at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from runner.durations import DurationRangeError, parse_duration
from runner.errors import UsageError
from runner.manifest import yamlio
from runner.manifest.model import Job, Manifest
from runner.problems import Problem, format_path, sort_problems
from runner.schema import schema_issues

SCENARIO_SCHEMA = "scenario.schema.json"

Outcome = Literal["SUCCESS", "FAIL", "CANCEL", "SKIPPED"]
WhileRunning = Literal["reject", "queue", "ignore"]
FaultAction = Literal["status", "delay", "drop_before", "drop_after"]

OUTCOMES: tuple[Outcome, ...] = ("SUCCESS", "FAIL", "CANCEL", "SKIPPED")

_FROM_DICT = "scenario"
PathT = tuple[str | int, ...]


class ScenarioError(UsageError):
    """The scenario has problems; `problems` holds every one of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


TaskType = Literal["EXTRACTION", "TRANSFORMATION", "DATA_MODEL_LOAD"]
TASK_TYPES: dict[str, TaskType] = {
    "extraction": "EXTRACTION",
    "transformation": "TRANSFORMATION",
    "data_model_load": "DATA_MODEL_LOAD",
}
_TASK_NAMESPACE = uuid.UUID("6f1b3c2e-8a44-4d1e-9f0a-2b7c5d9e1a30")


def stable_id(*parts: str) -> str:
    """An id that is the same for the same parts on every start, so it looks like a real one."""
    return str(uuid.uuid5(_TASK_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class ScenarioTask:
    """A task instance of a job: an extraction (with tables), a transformation or a data model load."""

    id: str
    name: str
    type: TaskType
    duration: float | None = None
    """None: the job's default tasks share the job's duration."""
    outcomes: tuple[Outcome, ...] = ("SUCCESS",)
    message: str | None = None
    tables: tuple[str, ...] = ()
    disabled: bool = False
    order: int = 0

    def outcome_of(self, index: int) -> Outcome:
        return self.outcomes[min(index, len(self.outcomes) - 1)]


def default_tasks(job_id: str, name: str) -> tuple[ScenarioTask, ...]:
    """One extraction and one transformation, for jobs that declare no tasks."""
    return (
        ScenarioTask(
            id=stable_id(job_id, "extraction"),
            name=f"{name} extraction",
            type="EXTRACTION",
            tables=("DATA",),
            order=0,
        ),
        ScenarioTask(
            id=stable_id(job_id, "transformation"),
            name=f"{name} transformation",
            type="TRANSFORMATION",
            order=1,
        ),
    )


@dataclass(frozen=True)
class ScenarioJob:
    id: str
    name: str
    duration: float | None = None
    """None: the scenario's `default_duration`."""
    outcomes: tuple[Outcome, ...] = ("SUCCESS",)
    message: str | None = None
    running_at_start: float | None = None
    last_run: Outcome | None = None
    odd_status: str | None = None
    tasks: tuple[ScenarioTask, ...] = ()
    """Declared tasks, each with its own duration and outcome; empty: `default_tasks`."""

    def outcome_of(self, index: int) -> Outcome:
        """The outcome of this job's `index`-th execution (0-based); the last one repeats."""
        return self.outcomes[min(index, len(self.outcomes) - 1)]

    @property
    def task_list(self) -> tuple[ScenarioTask, ...]:
        return self.tasks or default_tasks(self.id, self.name)


@dataclass(frozen=True)
class ScenarioPool:
    id: str
    name: str
    jobs: tuple[ScenarioJob, ...] = ()


@dataclass(frozen=True)
class RateLimit:
    requests: int
    per: float


@dataclass(frozen=True)
class Fault:
    path: str
    action: FaultAction
    method: str | None = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: object = None
    has_body: bool = False
    delay: float = 0.0
    times: int | None = None
    skip: int = 0
    probability: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class Scenario:
    time_scale: float = 1.0
    default_duration: float = 60.0
    queued_for: float = 1.0
    stale_status_for: float = 0.0
    status_lag: float = 0.0
    """The status views show each job as it was this long ago (virtual seconds)."""
    clock_offset: float = 0.0
    """Celonis' clock minus this machine's (virtual seconds, may be negative)."""
    on_execute_while_running: WhileRunning = "reject"
    token_lifetime: float = 3600.0
    rate_limit: RateLimit | None = None
    forbidden_pools: tuple[str, ...] = ()
    logs_status_unavailable: bool = False
    pools: tuple[ScenarioPool, ...] = ()
    faults: tuple[Fault, ...] = ()
    description: str | None = None

    def duration_of(self, job: ScenarioJob) -> float:
        """A whole execution: QUEUED time and, for declared tasks, every enabled task's time."""
        if job.tasks:
            return self.queued_for + sum(t.duration or 0.0 for t in job.tasks if not t.disabled)
        return self.default_duration if job.duration is None else job.duration

    @classmethod
    def from_dict(cls, data: object) -> Scenario:
        """The scenario for a mapping shaped like the YAML file; ScenarioError when invalid."""
        return _Loader(_FROM_DICT, None).load(data)

    @classmethod
    def from_manifest(cls, manifest: Manifest, base: Scenario | None = None) -> Scenario:
        """Pools and jobs of a manifest; `base`'s settings, faults and jobs win over them.

        Jobs only in the manifest run for their `expected_duration` (else
        `base.default_duration`) and succeed.
        """
        base = base if base is not None else Scenario()
        scenario = replace(base, pools=_merged_pools(manifest, base))
        problems = [
            Problem(manifest.path, 0, 0, format_path(path), message)
            for path, message in _duplicate_ids(scenario.pools)
        ]
        if problems:
            raise ScenarioError(problems)
        return scenario


def _served_pool_ids(manifest: Manifest, base: Scenario) -> dict[str, str]:
    """The id each manifest pool is served under: its own; for a pool given by its Celonis
    name, the base scenario's pool of that name, else an id made from the name."""
    by_name = {pool.name: pool.id for pool in base.pools}
    return {
        pool.name: pool.pool_id.lower()
        or by_name.get(pool.celonis_name or "", "")
        or stable_id("pool", pool.celonis_name or pool.name)
        for pool in manifest.pools.values()
    }


def _merged_pools(manifest: Manifest, base: Scenario) -> tuple[ScenarioPool, ...]:
    """`base`'s pools and jobs, then the manifest's jobs and pools that `base` has not."""
    pools: dict[str, tuple[str, list[ScenarioJob]]] = {
        pool.id: (pool.name, list(pool.jobs)) for pool in base.pools
    }
    ids = _served_pool_ids(manifest, base)
    pool_names = {ids[p.name]: p.celonis_name or p.name for p in manifest.pools.values()}
    for pool_id, pool, job in _served_jobs(manifest, base, ids):
        entry = pools.setdefault(pool_id, (pool_names.get(pool_id, pool), []))
        entry[1].append(job)
    for pool_id, name in pool_names.items():
        pools.setdefault(pool_id, (name, []))
    return tuple(
        ScenarioPool(id=pool_id, name=name, jobs=tuple(jobs))
        for pool_id, (name, jobs) in pools.items()
    )


def _base_keys(base: Scenario) -> tuple[set[str], set[tuple[str, str]]]:
    """The job ids `base` serves, and its (pool id, job name) pairs."""
    jobs = [(pool.id, job) for pool in base.pools for job in pool.jobs]
    return {job.id for _, job in jobs}, {(pool_id, job.name) for pool_id, job in jobs}


def _served_as(job: Job, ids: Mapping[str, str]) -> tuple[str, str, str]:
    """(pool id, name, job id) a manifest job is served under."""
    pool_id = job.pool_id.lower() or ids.get(job.pool, "")
    name = job.celonis_name or job.name
    return pool_id, name, job.job_id.lower() or stable_id("job", pool_id, name)


def _served_jobs(
    manifest: Manifest, base: Scenario, ids: Mapping[str, str]
) -> list[tuple[str, str, ScenarioJob]]:
    """(pool id, manifest pool, job) of each manifest job `base` does not serve already. A job
    given by its Celonis name is served under that name, with an id of its own; its
    expected_duration, when the manifest has one, is how long it runs here."""
    base_ids, base_named = _base_keys(base)
    served = []
    for job in manifest.jobs.values():
        pool_id = job.pool_id.lower() or ids.get(job.pool, "")
        name = job.celonis_name or job.name
        job_id = job.job_id.lower() or stable_id("job", pool_id, name)
        known = job_id in base_ids or ((pool_id, name) in base_named and bool(job.celonis_name))
        if not known:
            scenario_job = ScenarioJob(id=job_id, name=name, duration=job.expected_duration)
            served.append((pool_id, job.pool, scenario_job))
    return served


def load_scenario(path: Path, *, display: str | None = None) -> Scenario:
    """The scenario in a YAML file; ScenarioError naming file, line and field when invalid."""
    shown = display if display is not None else str(path)
    if path.is_dir():
        raise ScenarioError([Problem(shown, 0, 0, "", "is a directory, not a scenario file")])
    try:
        doc = yamlio.load(path, display=shown)
    except yamlio.YamlError as exc:
        raise ScenarioError([exc.problem]) from None
    if doc.problems:
        raise ScenarioError(sort_problems(doc.problems))
    if doc.root is None:
        raise ScenarioError(
            [Problem(shown, 0, 0, "", "the file is empty; a scenario is a mapping of fields")]
        )
    return _Loader(shown, doc).load(doc.data)


class _Loader:
    def __init__(self, file: str, doc: yamlio.Document | None) -> None:
        self.file = file
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, path: PathT, message: str, *, key: bool = False) -> None:
        if self.doc is not None:
            self.problems.append(self.doc.problem(path, message, key=key))
        else:
            self.problems.append(Problem(self.file, 0, 0, format_path(path), message))

    def load(self, data: object) -> Scenario:
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
            self.add((), f"the scenario must be a mapping of fields, not {kind}")
            raise ScenarioError(self.problems)
        for issue in schema_issues(data, SCENARIO_SCHEMA):
            self.add(issue.path, issue.message, key=issue.key)
        try:
            if not self.problems:
                self._check(data)
            if not self.problems:
                return _build(data)
        except DurationRangeError as exc:  # a NaN, infinite or over-long duration
            self.add((), str(exc))
        raise ScenarioError(sort_problems(self.problems))

    def _check(self, data: Mapping[str, Any]) -> None:
        """What the schema can't say: durations in range, unique ids, fields that go together."""
        self._check_settings(data)
        for p, pool in enumerate(data.get("pools", [])):
            for j, job in enumerate(pool.get("jobs", [])):
                self._check_job(("pools", p, "jobs", j), job)
        for path, message in _duplicate_ids(_build_pools(data.get("pools", []))):
            self.add(path, message)
        for f, fault in enumerate(data.get("faults", [])):
            self._check_fault(("faults", f), fault)

    def _check_settings(self, data: Mapping[str, Any]) -> None:
        """The durations of the top-level settings."""
        token = data.get("token_lifetime")
        if token is not None and parse_duration(token) <= 0:
            self.add(("token_lifetime",), f"must be more than 0, got {token!r}")
        offset = data.get("clock_offset")
        if offset is not None:
            try:
                parse_signed_duration(offset)
            except DurationRangeError:
                self.add(("clock_offset",), f"must be within 30 days either way, got {offset!r}")
        rate = data.get("rate_limit")
        if isinstance(rate, dict) and parse_duration(rate["per"]) <= 0:
            self.add(("rate_limit", "per"), f"must be more than 0, got {rate['per']!r}")

    def _check_job(self, path: PathT, job: Mapping[str, Any]) -> None:
        if "outcome" in job and "outcomes" in job:
            self.add((*path, "outcomes"), "give either 'outcome' or 'outcomes', not both", key=True)
        tasks = job.get("tasks", [])
        if tasks:
            for key in ("duration", "outcome", "outcomes", "message"):
                if key in job:
                    self.add(
                        (*path, key),
                        f"'{key}' goes on each task when the job declares 'tasks'",
                        key=True,
                    )
        seen: set[object] = set()
        for t, task in enumerate(tasks):
            self._check_task((*path, "tasks", t), task, seen)

    def _check_task(self, path: PathT, task: Mapping[str, Any], seen: set[object]) -> None:
        """One declared task; `seen` holds the (type, name) pairs and ids of the ones before."""
        if "outcome" in task and "outcomes" in task:
            self.add((*path, "outcomes"), "give either 'outcome' or 'outcomes', not both", key=True)
        if "tables" in task and task["type"] == "transformation":
            self.add((*path, "tables"), "a transformation has no tables", key=True)
        name = (task["type"], task["name"])
        if name in seen:
            self.add(
                (*path, "name"), f"the job already has a {task['type']} named {task['name']!r}"
            )
        task_id = str(task.get("id", "")).lower()
        if task_id and task_id in seen:
            self.add((*path, "id"), f"task id {task_id} is already used by another task of the job")
        seen |= {name, task_id} - {""}

    def _check_fault(self, path: PathT, fault: Mapping[str, Any]) -> None:
        action = fault["action"]
        if action == "status" and "status" not in fault:
            self.add(path, "action 'status' needs 'status': the HTTP status to answer with")
        if action == "delay" and "delay" not in fault:
            self.add(path, "action 'delay' needs 'delay': how long to wait (real time)")
        self._check_unused_keys(path, fault)
        glob = fault["path"]
        if not glob.startswith(("/", "*", "?", "[")):
            self.add(
                (*path, "path"),
                f"must start with '/' (it is matched against the request path), got {glob!r}",
            )

    def _check_unused_keys(self, path: PathT, fault: Mapping[str, Any]) -> None:
        """Keys of a fault that its action, or its lack of 'probability', does not use."""
        only_for = {"status": "status", "headers": "status", "body": "status", "delay": "delay"}
        for key, wanted in only_for.items():
            if key in fault and fault["action"] != wanted:
                self.add((*path, key), f"'{key}' is only used with action: {wanted}", key=True)
        if "seed" in fault and "probability" not in fault:
            self.add((*path, "seed"), "'seed' is only used with 'probability'", key=True)


def _duplicate_ids(pools: Sequence[ScenarioPool]) -> list[tuple[PathT, str]]:
    problems: list[tuple[PathT, str]] = []
    seen_pools: dict[str, int] = {}
    seen_jobs: dict[str, tuple[int, int]] = {}
    for p, pool in enumerate(pools):
        if pool.id in seen_pools:
            problems.append(
                (
                    ("pools", p, "id"),
                    f"pool id {pool.id} is already used by pools[{seen_pools[pool.id]}]",
                )
            )
        seen_pools.setdefault(pool.id, p)
        for j, job in enumerate(pool.jobs):
            if job.id in seen_jobs:
                fp, fj = seen_jobs[job.id]
                problems.append(
                    (
                        ("pools", p, "jobs", j, "id"),
                        f"job id {job.id} is already used by pools[{fp}].jobs[{fj}]",
                    )
                )
            seen_jobs.setdefault(job.id, (p, j))
    return problems


# -- building the model from data that validated -----------------------------------


def _duration(value: object, default: float | None) -> float | None:
    return default if value is None else parse_duration(value)


def _seconds(value: object, default: float) -> float:
    return default if value is None else parse_duration(value)


def parse_signed_duration(value: object) -> float:
    """Seconds for a duration that may be negative: `-2m`, `-90`, `+30s`, `1h`."""
    if isinstance(value, str) and value.strip()[:1] in ("-", "+"):
        text = value.strip()
        seconds = parse_duration(text[1:])
        return -seconds if text[0] == "-" else seconds
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return -parse_duration(-value)
    return parse_duration(value)


def _outcomes(data: Mapping[str, Any]) -> tuple[Outcome, ...]:
    if "outcomes" in data:
        return tuple(cast(list[Outcome], data["outcomes"]))
    return (cast(Outcome, data.get("outcome", "SUCCESS")),)


def _build_task(job_id: str, order: int, data: Mapping[str, Any]) -> ScenarioTask:
    name = str(data["name"])
    kind = TASK_TYPES[data["type"]]
    return ScenarioTask(
        id=str(data["id"]).lower() if "id" in data else stable_id(job_id, kind, name),
        name=name,
        type=kind,
        duration=_seconds(data.get("duration"), 10.0),
        outcomes=_outcomes(data),
        message=data.get("message"),
        tables=tuple(str(t) for t in data.get("tables", [])),
        disabled=bool(data.get("disabled", False)),
        order=order,
    )


def _build_job(data: Mapping[str, Any]) -> ScenarioJob:
    job_id = str(data["id"]).lower()
    outcomes = _outcomes(data)
    return ScenarioJob(
        id=job_id,
        name=str(data.get("name", job_id)),
        duration=_duration(data.get("duration"), None),
        outcomes=outcomes,
        message=data.get("message"),
        running_at_start=_duration(data.get("running_at_start"), None),
        last_run=cast("Outcome | None", data.get("last_run")),
        odd_status=data.get("odd_status"),
        tasks=tuple(_build_task(job_id, i, t) for i, t in enumerate(data.get("tasks", []))),
    )


def _build_pools(data: Sequence[Mapping[str, Any]]) -> tuple[ScenarioPool, ...]:
    return tuple(
        ScenarioPool(
            id=str(pool["id"]).lower(),
            name=str(pool.get("name", str(pool["id"]).lower())),
            jobs=tuple(_build_job(job) for job in pool.get("jobs", [])),
        )
        for pool in data
    )


def _build_fault(data: Mapping[str, Any]) -> Fault:
    method = data.get("method")
    return Fault(
        path=data["path"],
        action=data["action"],
        method=method.upper() if isinstance(method, str) else None,
        status=data.get("status"),
        headers={str(k): _header_value(v) for k, v in data.get("headers", {}).items()},
        body=data.get("body"),
        has_body="body" in data and data["body"] is not None,
        delay=_seconds(data.get("delay"), 0.0),
        times=data.get("times"),
        skip=int(data.get("skip", 0)),
        probability=None if data.get("probability") is None else float(data["probability"]),
        seed=int(data.get("seed", 0)),
    )


def _header_value(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _build(data: Mapping[str, Any]) -> Scenario:
    rate = data.get("rate_limit")
    return Scenario(
        time_scale=float(data.get("time_scale", 1.0)),
        default_duration=_seconds(data.get("default_duration"), 60.0),
        queued_for=_seconds(data.get("queued_for"), 1.0),
        stale_status_for=_seconds(data.get("stale_status_for"), 0.0),
        status_lag=_seconds(data.get("status_lag"), 0.0),
        clock_offset=parse_signed_duration(data.get("clock_offset", 0)),
        on_execute_while_running=data.get("on_execute_while_running", "reject"),
        token_lifetime=_seconds(data.get("token_lifetime"), 3600.0),
        rate_limit=(
            RateLimit(requests=int(rate["requests"]), per=parse_duration(rate["per"]))
            if rate is not None
            else None
        ),
        forbidden_pools=tuple(str(p).lower() for p in data.get("forbidden_pools", [])),
        logs_status_unavailable=bool(data.get("logs_status_unavailable", False)),
        pools=_build_pools(data.get("pools", [])),
        faults=tuple(_build_fault(f) for f in data.get("faults", [])),
        description=data.get("description"),
    )
