"""Jobs and their executions in virtual time, and the views the API shows of them.

An execution is a timeline of (virtual time, status) fixed when it starts:
QUEUED at t0, RUNNING at t0 + queued_for, its outcome at t0 + duration
(a cancel cuts it short). Nothing runs in the background: `advance(now)`
journals every transition up to `now` with its exact time, and starts what
an ended execution left queued. The caller holds `lock` around every call.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from runner.emulator.journal import Journal
from runner.emulator.scenario import Scenario, ScenarioJob, ScenarioPool

QUEUED = "QUEUED"
RUNNING = "RUNNING"
CANCEL = "CANCEL"
FINISHED = frozenset({"SUCCESS", "FAIL", "CANCEL", "SKIPPED"})

By = Literal["api", "scenario"]
ExecuteResult = Literal["started", "queued", "ignored", "rejected"]

# How long before the emulator started a scenario's `last_run` ended.
_LAST_RUN_AGE = 3600.0

_TASK_NAMESPACE = uuid.UUID("6f1b3c2e-8a44-4d1e-9f0a-2b7c5d9e1a30")


def task_id_of(job_id: str) -> str:
    """The id of a job's one task: stable for the job, so it looks like a real task id."""
    return str(uuid.uuid5(_TASK_NAMESPACE, job_id))


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Execution:
    execution_id: str
    item_id: str
    task_item_id: str
    pool_id: str
    job: ScenarioJob
    mode: str
    by: By
    began: float
    """When it started (virtual); shown as startDate."""
    timeline: list[tuple[float, str]]
    announce_at: float
    journaled: int = 0
    announced: bool = False

    def status_at(self, now: float) -> str | None:
        status = None
        for t, s in self.timeline:
            if t > now:
                break
            status = s
        return status

    def finished_at(self) -> float | None:
        t, status = self.timeline[-1]
        return t if status in FINISHED else None

    def finished_by(self, now: float) -> bool:
        end = self.finished_at()
        return end is not None and end <= now

    def running_since(self, now: float) -> float | None:
        for t, s in self.timeline:
            if s == RUNNING and t <= now:
                return self.began if self.by == "scenario" and t <= self.announce_at else t
        return None

    def cancel(self, now: float) -> None:
        self.timeline = [(t, s) for t, s in self.timeline if t <= now and s not in FINISHED]
        self.timeline.append((now, CANCEL))


@dataclass
class _Stale:
    until: float
    job: dict[str, Any]
    status: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass
class EmulatedJob:
    pool_id: str
    spec: ScenarioJob
    executions: list[Execution] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """Modes of executes waiting for the current execution to end (queue mode)."""
    started: int = 0
    stale: _Stale | None = None

    @property
    def latest(self) -> Execution | None:
        return self.executions[-1] if self.executions else None


class State:
    def __init__(self, scenario: Scenario, journal: Journal, wall_offset: float) -> None:
        self.scenario = scenario
        self.journal = journal
        self.lock = threading.RLock()
        self._wall_offset = wall_offset
        self._order = itertools.count()
        self._start = 0.0
        self.pools: dict[str, ScenarioPool] = {pool.id: pool for pool in scenario.pools}
        self.jobs: dict[str, EmulatedJob] = {
            job.id: EmulatedJob(pool.id, job) for pool in scenario.pools for job in pool.jobs
        }

    def ms(self, t: float | None) -> int | None:
        """Epoch milliseconds on the virtual wall clock for virtual time `t`."""
        return None if t is None else round((self._wall_offset + t) * 1000)

    # -- time ----------------------------------------------------------------------

    def begin(self, now: float) -> None:
        """Set up what exists when the emulator starts: last runs and running executions."""
        self._start = now
        for job in self.jobs.values():
            spec = job.spec
            duration = self.scenario.duration_of(spec)
            running_began = None
            if spec.running_at_start is not None:
                running_began = now - max(duration - spec.running_at_start, 0.0)
            if spec.last_run is not None:
                ended = (running_began if running_began is not None else now) - _LAST_RUN_AGE
                began = ended - duration
                queued = min(self.scenario.queued_for, duration)
                history = self._execution(
                    job,
                    "DELTA",
                    "scenario",
                    began,
                    [(began, QUEUED), (began + queued, RUNNING), (ended, spec.last_run)],
                    announce_at=began,
                )
                history.journaled = len(history.timeline)
                history.announced = True
            if running_began is not None and spec.running_at_start is not None:
                outcome = spec.outcome_of(job.started)
                job.started += 1
                self._execution(
                    job,
                    "DELTA",
                    "scenario",
                    running_began,
                    [(now, RUNNING), (now + spec.running_at_start, outcome)],
                    announce_at=now,
                )
        self.advance(now)

    def advance(self, now: float) -> None:
        """Journal every transition up to `now` at its own time; start queued executes."""
        events: list[tuple[float, int, dict[str, Any]]] = []
        for job in self.jobs.values():
            while True:
                for execution in job.executions:
                    self._collect(execution, now, events)
                latest = job.latest
                end = latest.finished_at() if latest is not None else None
                if job.pending and end is not None and end <= now:
                    self._start_execution(job, job.pending.pop(0), end)
                    continue
                break
        events.sort(key=lambda e: (e[0], e[1]))
        for t, _, entry in events:
            self.journal.record(t, entry)

    def _collect(
        self, execution: Execution, now: float, events: list[tuple[float, int, dict[str, Any]]]
    ) -> None:
        ids = {
            "pool_id": execution.pool_id,
            "job_id": execution.job.id,
            "execution_id": execution.execution_id,
        }
        if not execution.announced and execution.announce_at <= now:
            execution.announced = True
            entry = {"type": "execution", "event": "started", **ids}
            entry |= {"mode": execution.mode, "by": execution.by}
            events.append((execution.announce_at, next(self._order), entry))
        while execution.journaled < len(execution.timeline):
            t, status = execution.timeline[execution.journaled]
            if t > now:
                break
            execution.journaled += 1
            entry = {"type": "execution", "event": "status", **ids, "status": status}
            events.append((t, next(self._order), entry))

    def _execution(
        self,
        job: EmulatedJob,
        mode: str,
        by: By,
        began: float,
        timeline: list[tuple[float, str]],
        *,
        announce_at: float,
    ) -> Execution:
        execution = Execution(
            execution_id=_new_id(),
            item_id=_new_id(),
            task_item_id=_new_id(),
            pool_id=job.pool_id,
            job=job.spec,
            mode=mode,
            by=by,
            began=began,
            timeline=timeline,
            announce_at=announce_at,
        )
        job.executions.append(execution)
        return execution

    def _start_execution(self, job: EmulatedJob, mode: str, t0: float) -> Execution:
        duration = self.scenario.duration_of(job.spec)
        queued = min(self.scenario.queued_for, duration)
        outcome = job.spec.outcome_of(job.started)
        job.started += 1
        timeline = [(t0, QUEUED), (t0 + queued, RUNNING), (t0 + duration, outcome)]
        return self._execution(job, mode, "api", t0, timeline, announce_at=t0)

    # -- actions -------------------------------------------------------------------

    def execute(self, job_id: str, mode: str, now: float) -> ExecuteResult:
        """Start an execution now, unless one is unfinished (then per on_execute_while_running)."""
        self.advance(now)
        job = self.jobs[job_id]
        latest = job.latest
        if latest is not None and not latest.finished_by(now):
            policy = self.scenario.on_execute_while_running
            if policy == "reject":
                return "rejected"
            if policy == "ignore":
                return "ignored"
            job.pending.append(mode)
            return "queued"
        if self.scenario.stale_status_for > 0:
            job.stale = _Stale(
                until=now + self.scenario.stale_status_for,
                job=self._job_view(job, now),
                status=self._status_entry(job, now),
                history=self._history(job, now),
            )
        self._start_execution(job, mode, now)
        self.advance(now)
        return "started"

    def cancel(self, job_id: str, now: float) -> None:
        """End the unfinished execution as CANCEL now and drop queued executes."""
        self.advance(now)
        job = self.jobs[job_id]
        latest = job.latest
        current = latest if latest is not None and not latest.finished_by(now) else None
        self.journal.record(
            now,
            {
                "type": "execution",
                "event": "cancel_requested",
                "pool_id": job.pool_id,
                "job_id": job_id,
                "execution_id": current.execution_id if current else None,
            },
        )
        if current is not None:
            current.cancel(now)
            job.pending.clear()
        self.advance(now)

    # -- views ---------------------------------------------------------------------

    def pool_list(self) -> list[dict[str, Any]]:
        return [{"id": pool.id, "name": pool.name} for pool in self.pools.values()]

    def pool_jobs(self, pool_id: str) -> list[EmulatedJob]:
        return [job for job in self.jobs.values() if job.pool_id == pool_id]

    def job(self, pool_id: str, job_id: str) -> EmulatedJob | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.pool_id == pool_id else None

    def _stale(self, job: EmulatedJob, now: float) -> _Stale | None:
        return job.stale if job.stale is not None and now < job.stale.until else None

    def job_view(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        stale = self._stale(job, now)
        return copy.deepcopy(stale.job) if stale else self._job_view(job, now)

    def status_entry(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        stale = self._stale(job, now)
        return copy.deepcopy(stale.status) if stale else self._status_entry(job, now)

    def history(self, job: EmulatedJob, now: float) -> list[dict[str, Any]]:
        stale = self._stale(job, now)
        return copy.deepcopy(stale.history) if stale else self._history(job, now)

    def _shown_status(self, execution: Execution, now: float) -> str | None:
        status = execution.status_at(now)
        if status == RUNNING and execution.job.odd_status:
            return execution.job.odd_status
        return status

    def _job_view(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        latest = job.latest
        changed = self._start
        if latest is not None:
            changed = max((t for t, _ in latest.timeline if t <= now), default=latest.began)
        return {
            "id": job.spec.id,
            "name": job.spec.name,
            "dataPoolId": job.pool_id,
            "dataSourceId": None,
            "timeStamp": self.ms(changed),
            "status": self._shown_status(latest, now) if latest else None,
            "currentExecutionId": latest.execution_id if latest else None,
            "dagBasedExecutionEnabled": False,
            "latestExecutionItemId": latest.item_id if latest else None,
        }

    def _status_entry(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        latest = job.latest
        return {
            "id": job.spec.id,
            "status": self._shown_status(latest, now) if latest else None,
            "lastExecutionStartDate": self.ms(latest.began) if latest else None,
        }

    def _history(self, job: EmulatedJob, now: float) -> list[dict[str, Any]]:
        return [self.job_item(e, now) for e in reversed(job.executions)]

    def job_item(self, execution: Execution, now: float) -> dict[str, Any]:
        return {
            "id": execution.item_id,
            "poolId": execution.pool_id,
            "executionId": execution.execution_id,
            "jobId": execution.job.id,
            "taskId": None,
            "name": execution.job.name,
            "status": self._shown_status(execution, now),
            "startDate": self.ms(execution.began),
            "endDate": self.ms(execution.finished_at()) if execution.finished_by(now) else None,
            "type": "JOB",
            "mode": execution.mode,
        }

    def task_item(self, execution: Execution, now: float) -> dict[str, Any]:
        return {
            "id": execution.task_item_id,
            "poolId": execution.pool_id,
            "executionId": execution.execution_id,
            "jobId": execution.job.id,
            "taskId": task_id_of(execution.job.id),
            "name": task_name(execution.job),
            "status": execution.status_at(now),
            "startDate": self.ms(execution.running_since(now)),
            "endDate": self.ms(execution.finished_at()) if execution.finished_by(now) else None,
            "type": "TASK",
            "mode": execution.mode,
        }

    def find_execution(self, pool_id: str, execution_id: str) -> Execution | None:
        for job in self.pool_jobs(pool_id):
            for execution in job.executions:
                if execution.execution_id == execution_id:
                    return execution
        return None

    def execution_items(
        self, execution: Execution, item_type: str | None, item_id: str | None, now: float
    ) -> list[dict[str, Any]]:
        """ExecutionItems of one execution: its JOB item and its one TASK (no STEPs)."""
        items = {
            "JOB": [self.job_item(execution, now)],
            "TASK": [self.task_item(execution, now)],
            "STEP": [],
        }
        chosen = items[item_type] if item_type else items["JOB"] + items["TASK"]
        if item_id:
            chosen = [item for item in chosen if item_id in _ids_of(item, execution)]
        return chosen

    def log_messages(
        self, execution: Execution, item_type: str | None, item_id: str | None, now: float
    ) -> list[dict[str, Any]]:
        """Log lines of the execution's JOB item, TASK item, or both, oldest first."""
        kinds = [k for k in ("JOB", "TASK") if item_type in (None, k)]
        if item_id:
            kinds = [
                k
                for k in kinds
                if item_id in _ids_of(self.execution_items(execution, k, None, now)[0], execution)
            ]
        lines: list[tuple[float, int, str, str]] = []
        job, task = execution.job.name, task_name(execution.job)
        running = execution.running_since(now)
        status = execution.status_at(now)
        end = execution.finished_at() if execution.finished_by(now) else None
        if "JOB" in kinds:
            lines.append(
                (execution.began, 0, "INFO", f"Data job '{job}' queued (mode {execution.mode})")
            )
            if running is not None:
                lines.append((running, 1, "INFO", f"Data job '{job}' started"))
            if end is not None:
                lines.append((end, 5, "INFO", f"Data job '{job}' finished with status {status}"))
        if "TASK" in kinds:
            if running is not None:
                lines.append((running, 2, "INFO", f"Task '{task}' started"))
            if end is not None and status == "FAIL":
                lines.append((end, 3, "ERROR", execution.job.message or default_message(task)))
            if end is not None:
                lines.append((end, 4, "INFO", f"Task '{task}' finished with status {status}"))
        lines.sort(key=lambda line: (line[0], line[1]))
        return [
            {"level": level, "date": self.ms(t), "logMessage": text} for t, _, level, text in lines
        ]


def task_name(job: ScenarioJob) -> str:
    return f"{job.name} task"


def default_message(task: str) -> str:
    return f"Task '{task}' failed"


def _ids_of(item: dict[str, Any], execution: Execution) -> set[str]:
    """The ids a client may filter an item by: its own, its task's, its job's, its parent's."""
    ids = {item["id"], item["jobId"]}
    if item["taskId"]:
        ids.add(item["taskId"])
    if item["type"] == "TASK":
        ids.add(execution.item_id)
    return ids
