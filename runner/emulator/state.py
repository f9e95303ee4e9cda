"""Jobs and their executions in virtual time, and the views the API shows of them.

An execution is a timeline of (virtual time, status) fixed when it starts:
QUEUED at t0, RUNNING at t0 + queued_for, its outcome when its last task
ends (a cancel cuts it short). Its tasks run one after the other, each with
its own duration and outcome; a task that fails or is cancelled ends the
execution and the tasks after it are SKIPPED. Nothing runs in the background:
`advance(now)` journals every transition up to `now` with its exact time, and
starts what an ended execution left queued. A heap holds each job's next
transition, so a request costs the same however many jobs there are. The
caller holds `lock` around every call.

A timeline keeps what happened (a cancel keeps the transitions before it),
so it answers for any past moment: the status views (job, jobs list,
`logs/status`, execution history) show each job at `now - status_lag`, from
the executions that had begun by then. Execute and cancel go by the true
state at `now`.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from runner.emulator.journal import Journal
from runner.emulator.scenario import (
    Outcome,
    Scenario,
    ScenarioJob,
    ScenarioPool,
    ScenarioTask,
)

QUEUED = "QUEUED"
RUNNING = "RUNNING"
CANCEL = "CANCEL"
SKIPPED = "SKIPPED"
FINISHED = frozenset({"SUCCESS", "FAIL", "CANCEL", "SKIPPED"})

By = Literal["api", "scenario"]
ExecuteResult = Literal["started", "queued", "ignored", "rejected"]

# How long before the emulator started a scenario's `last_run` ended.
_LAST_RUN_AGE = 3600.0


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Subset:
    """What one execute runs: the chosen tasks in order, and each extraction's tables."""

    tasks: tuple[ScenarioTask, ...]
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    """The subset as journaled; None for a whole-job execute."""

    @classmethod
    def whole(cls, job: ScenarioJob) -> Subset:
        return cls(tuple(t for t in job.task_list if not t.disabled))


@dataclass
class TaskRun:
    """One task in one execution: started at `start` (None: never started), ended at `end`."""

    task: ScenarioTask
    item_id: str
    start: float | None
    end: float
    outcome: str
    message: str | None = None

    def status_at(self, now: float) -> str:
        if now >= self.end and (self.start is not None or self.outcome == SKIPPED):
            return self.outcome
        if self.start is not None and now >= self.start:
            return RUNNING
        return QUEUED

    def cancel(self, now: float) -> None:
        if now >= self.end:
            return
        if self.start is not None and self.start <= now:
            self.outcome = CANCEL
        else:
            self.start, self.outcome = None, SKIPPED
        self.end = now


@dataclass
class Execution:
    execution_id: str
    item_id: str
    pool_id: str
    job: ScenarioJob
    mode: str
    by: By
    began: float
    """When it started (virtual); shown as startDate."""
    timeline: list[tuple[float, str]]
    announce_at: float
    runs: list[TaskRun] = field(default_factory=list)
    subset: dict[str, Any] | None = None
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

    def next_change(self) -> float | None:
        """When this execution next has something to journal (None: nothing left)."""
        if not self.announced:
            return self.announce_at
        if self.journaled < len(self.timeline):
            return self.timeline[self.journaled][0]
        return None

    def running_since(self, now: float) -> float | None:
        for t, s in self.timeline:
            if s == RUNNING and t <= now:
                return self.began if self.by == "scenario" and t <= self.announce_at else t
        return None

    def cancel(self, now: float) -> None:
        self.timeline = [(t, s) for t, s in self.timeline if t <= now and s not in FINISHED]
        self.timeline.append((now, CANCEL))
        for run in self.runs:
            run.cancel(now)


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
    pending: list[tuple[str, Subset]] = field(default_factory=list)
    """Executes (mode, subset) waiting for the current execution to end (queue mode)."""
    started: int = 0
    stale: _Stale | None = None
    open: list[Execution] = field(default_factory=list)
    """Executions with transitions not journaled yet."""
    due: float | None = None
    """When this job next changes (its entry in the state's heap)."""

    @property
    def latest(self) -> Execution | None:
        return self.executions[-1] if self.executions else None


@dataclass(frozen=True)
class _Plan:
    runs: list[TaskRun]
    end: float
    outcome: str


def _plan(
    job: ScenarioJob,
    subset: Subset,
    run_start: float,
    total: float,
    index: int,
    outcome: Outcome | None = None,
) -> _Plan:
    """The task runs of one execution, one after the other from `run_start`.

    Declared tasks take their own duration and outcome. A job's default tasks
    share `total` and the transformation ends with the job's outcome.
    """
    default = not job.tasks
    job_outcome = outcome if outcome is not None else job.outcome_of(index)
    runs: list[TaskRun] = []
    t, stopped, result = run_start, False, "SUCCESS"
    for task in subset.tasks:
        if default:
            duration, own, message = _default_task(job, task, total, job_outcome)
        else:
            duration, own, message = task.duration or 0.0, task.outcome_of(index), task.message
        if stopped or own == SKIPPED:
            runs.append(TaskRun(task, _new_id(), None, t, SKIPPED))
            continue
        runs.append(TaskRun(task, _new_id(), t, t + duration, own, message))
        t += duration
        if own in ("FAIL", CANCEL):
            stopped, result = True, own
    return _Plan(runs, t, _result(result, outcome, default, job_outcome, subset))


def _default_task(
    job: ScenarioJob, task: ScenarioTask, total: float, job_outcome: str
) -> tuple[float, str, str | None]:
    """(duration, outcome, message) of one of a job's default tasks: they share `total`, and
    the transformation ends with the job's outcome."""
    own = job_outcome if task.type == "TRANSFORMATION" else "SUCCESS"
    if job_outcome == SKIPPED:
        own = SKIPPED
    return total / len(job.task_list), own, job.message


def _result(
    ran: str, outcome: Outcome | None, default: bool, job_outcome: str, subset: Subset
) -> str:
    """The execution's status: what its tasks came to, unless an earlier run's status is given
    (`last_run`) or the job's default tasks were all skipped."""
    if outcome is not None and not default:
        return outcome
    if default and job_outcome == SKIPPED and subset.tasks:
        return SKIPPED
    return ran


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
        self._by_pool: dict[str, list[EmulatedJob]] = {pool_id: [] for pool_id in self.pools}
        for job in self.jobs.values():
            self._by_pool[job.pool_id].append(job)
        self._executions: dict[str, Execution] = {}
        self._heap: list[tuple[float, int, str]] = []
        """(when, tie-break, job id): a job's next transition; stale entries are skipped."""

    def wall(self, t: float) -> float:
        """Epoch seconds on Celonis' clock (the virtual wall clock) at virtual time `t`."""
        return self._wall_offset + self.scenario.clock_offset + t

    def ms(self, t: float | None) -> int | None:
        """Epoch milliseconds on Celonis' clock for virtual time `t`."""
        return None if t is None else round(self.wall(t) * 1000)

    # -- time ----------------------------------------------------------------------

    def begin(self, now: float) -> None:
        """Set up what exists when the emulator starts: last runs and running executions."""
        self._start = now
        for job in self.jobs.values():
            spec = job.spec
            duration = self.scenario.duration_of(spec)
            queued = min(self.scenario.queued_for, duration)
            running_began = None
            if spec.running_at_start is not None:
                running_began = now - max(duration - spec.running_at_start, 0.0)
            if spec.last_run is not None:
                ended = (running_began if running_began is not None else now) - _LAST_RUN_AGE
                began = ended - duration
                plan = _plan(
                    spec, Subset.whole(spec), began + queued, duration - queued, 0, spec.last_run
                )
                timeline = [(began, QUEUED), (began + queued, RUNNING), (ended, spec.last_run)]
                history = self._execution(job, "DELTA", "scenario", began, timeline, began, plan)
                history.journaled = len(history.timeline)
                history.announced = True
            if running_began is not None and spec.running_at_start is not None:
                run_start = min(running_began + queued, now)
                end = now + spec.running_at_start
                plan = _plan(spec, Subset.whole(spec), run_start, end - run_start, job.started)
                job.started += 1
                timeline = [(now, RUNNING), (end, plan.outcome)]
                self._execution(job, "DELTA", "scenario", running_began, timeline, now, plan)
        self.advance(now)

    def advance(self, now: float) -> None:
        """Journal every transition up to `now` at its own time; start queued executes."""
        events: list[tuple[float, int, dict[str, Any]]] = []
        while self._heap and self._heap[0][0] <= now:
            due, _, job_id = heapq.heappop(self._heap)
            job = self.jobs[job_id]
            if job.due != due:
                continue  # superseded by a later push
            job.due = None
            self._advance_job(job, now, events)
        events.sort(key=lambda e: (e[0], e[1]))
        for t, _, entry in events:
            self.journal.record(t, entry)

    def _advance_job(
        self, job: EmulatedJob, now: float, events: list[tuple[float, int, dict[str, Any]]]
    ) -> None:
        while True:
            for execution in job.open:
                self._collect(execution, now, events)
            job.open = [e for e in job.open if e.next_change() is not None]
            latest = job.latest
            end = latest.finished_at() if latest is not None else None
            if job.pending and end is not None and end <= now:
                mode, subset = job.pending.pop(0)
                self._start_execution(job, mode, subset, end)
                continue
            break
        self._schedule(job)

    def _schedule(self, job: EmulatedJob) -> None:
        """Push the job's next transition on the heap."""
        times = [t for t in (e.next_change() for e in job.open) if t is not None]
        due = min(times) if times else None
        # an earlier entry already on the heap stays: popping it reschedules the job
        if due is not None and (job.due is None or due < job.due):
            job.due = due
            heapq.heappush(self._heap, (due, next(self._order), job.spec.id))

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
            entry: dict[str, Any] = {"type": "execution", "event": "started", **ids}
            entry |= {"mode": execution.mode, "by": execution.by}
            if execution.subset is not None:
                tasks = [run.task.id for run in execution.runs]
                entry |= {"subset": {**execution.subset, "tasks": tasks}}
            events.append((execution.announce_at, next(self._order), entry))
        while execution.journaled < len(execution.timeline):
            t, status = execution.timeline[execution.journaled]
            if t > now:
                break
            execution.journaled += 1
            events.append(
                (t, next(self._order), {**entry_ids(ids), "event": "status", "status": status})
            )

    def _execution(
        self,
        job: EmulatedJob,
        mode: str,
        by: By,
        began: float,
        timeline: list[tuple[float, str]],
        announce_at: float,
        plan: _Plan,
        subset: dict[str, Any] | None = None,
    ) -> Execution:
        execution = Execution(
            execution_id=_new_id(),
            item_id=_new_id(),
            pool_id=job.pool_id,
            job=job.spec,
            mode=mode,
            by=by,
            began=began,
            timeline=timeline,
            announce_at=announce_at,
            runs=plan.runs,
            subset=subset,
        )
        job.executions.append(execution)
        job.open.append(execution)
        self._executions[execution.execution_id] = execution
        self._schedule(job)
        return execution

    def _start_execution(self, job: EmulatedJob, mode: str, subset: Subset, t0: float) -> Execution:
        duration = self.scenario.duration_of(job.spec)
        queued = min(self.scenario.queued_for, duration)
        plan = _plan(job.spec, subset, t0 + queued, duration - queued, job.started)
        job.started += 1
        timeline = [(t0, QUEUED), (t0 + queued, RUNNING), (plan.end, plan.outcome)]
        return self._execution(job, mode, "api", t0, timeline, t0, plan, subset.record)

    # -- actions -------------------------------------------------------------------

    def execute(
        self, job_id: str, mode: str, now: float, subset: Subset | None = None
    ) -> ExecuteResult:
        """Start an execution now, unless one is unfinished (then per on_execute_while_running)."""
        self.advance(now)
        job = self.jobs[job_id]
        subset = subset if subset is not None else Subset.whole(job.spec)
        latest = job.latest
        if latest is not None and not latest.finished_by(now):
            policy = self.scenario.on_execute_while_running
            if policy == "reject":
                return "rejected"
            if policy == "ignore":
                return "ignored"
            job.pending.append((mode, subset))
            return "queued"
        if self.scenario.stale_status_for > 0:
            job.stale = _Stale(
                until=now + self.scenario.stale_status_for,
                job=self._job_view(job, now),
                status=self._status_entry(job, now),
                history=self._history(job, now),
            )
        self._start_execution(job, mode, subset, now)
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
            if current not in job.open:
                job.open.append(current)
            self._schedule(job)
        self.advance(now)

    # -- views ---------------------------------------------------------------------

    def pool_list(self) -> list[dict[str, Any]]:
        return [self.pool_view(pool) for pool in self.pools.values()]

    def pool_view(self, pool: ScenarioPool) -> dict[str, Any]:
        """A pool with the fields PyCelonis reads (the ones the emulator has no notion of empty)."""
        return {
            "id": pool.id,
            "name": pool.name,
            "description": None,
            "timeStamp": self.ms(self._start),
            "configurationStatus": "UNPUBLISHED",
            "locked": False,
            "permissions": ["VIEW", "MANAGE"],
            "tags": [],
            "creatorUserId": None,
            "objectId": pool.id,
        }

    def pool_jobs(self, pool_id: str) -> list[EmulatedJob]:
        return self._by_pool.get(pool_id, [])

    def task_view(self, job: EmulatedJob, task: ScenarioTask) -> dict[str, Any]:
        """A task instance as `.../jobs/{job}/tasks/` lists it."""
        return {
            "id": task.id,
            "taskId": template_id(task),
            "taskType": task.type,
            "name": task.name,
            "description": None,
            "jobId": job.spec.id,
            "poolId": job.pool_id,
            "executionOrder": task.order,
            "disabled": task.disabled,
            "published": True,
            "createdAt": self.ms(self._start),
        }

    def extraction_view(self, job: EmulatedJob, task: ScenarioTask) -> dict[str, Any]:
        """`.../extractions/{id}/expanded`: the task instance with its tables."""
        tables = [
            {
                "id": template_id(task, table),
                "taskId": task.id,
                "jobId": job.spec.id,
                "tableName": table,
                "targetTableName": table,
                "schemaName": None,
            }
            for table in task.tables
        ]
        return {**self.task_view(job, task), "tables": tables}

    def load_view(self, job: EmulatedJob, task: ScenarioTask) -> dict[str, Any]:
        """An entry of `.../loads`: a data model load of the job."""
        tables = [
            {"id": template_id(task, table), "aliasOrName": table, "selected": True}
            for table in task.tables
        ]
        return {
            "id": task.id,
            "dataModelId": template_id(task),
            "dataModelName": task.name,
            "jobId": job.spec.id,
            "disabled": task.disabled,
            "partialLoad": False,
            "tables": tables,
        }

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

    def _seen_at(self, now: float) -> float:
        """The moment the status views show: `status_lag` before `now`."""
        return now - self.scenario.status_lag

    def _seen(self, job: EmulatedJob, at: float) -> Execution | None:
        """The job's latest execution that had begun at `at`."""
        for execution in reversed(job.executions):  # in the order they began
            if execution.began <= at:
                return execution
        return None

    def _shown_status(self, execution: Execution, now: float) -> str | None:
        # one running at start has no status before the start: it shows its first
        status = execution.status_at(max(now, execution.timeline[0][0]))
        if status == RUNNING and execution.job.odd_status:
            return execution.job.odd_status
        return status

    def _job_view(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        at = self._seen_at(now)
        latest = self._seen(job, at)
        changed = self._start
        if latest is not None:
            changed = max((t for t, _ in latest.timeline if t <= at), default=latest.began)
        return {
            "id": job.spec.id,
            "name": job.spec.name,
            "dataPoolId": job.pool_id,
            "dataSourceId": None,
            "timeStamp": self.ms(changed),
            "status": self._shown_status(latest, at) if latest else None,
            "currentExecutionId": latest.execution_id if latest else None,
            "dagBasedExecutionEnabled": False,
            "latestExecutionItemId": latest.item_id if latest else None,
        }

    def _status_entry(self, job: EmulatedJob, now: float) -> dict[str, Any]:
        at = self._seen_at(now)
        latest = self._seen(job, at)
        return {
            "id": job.spec.id,
            "jobId": job.spec.id,  # PyCelonis reads jobId, our client and the docs id
            "status": self._shown_status(latest, at) if latest else None,
            "lastExecutionStartDate": self.ms(latest.began) if latest else None,
        }

    def _history(self, job: EmulatedJob, now: float) -> list[dict[str, Any]]:
        at = self._seen_at(now)
        return [self.job_item(e, at) for e in reversed(job.executions) if e.began <= at]

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
            "executionOrder": 0,
        }

    def task_item(self, execution: Execution, run: TaskRun, now: float) -> dict[str, Any]:
        status = run.status_at(now)
        started = run.start is not None and run.start <= now
        return {
            "id": run.item_id,
            "poolId": execution.pool_id,
            "executionId": execution.execution_id,
            "jobId": execution.job.id,
            "taskId": run.task.id,
            "name": run.task.name,
            "status": status,
            "startDate": self.ms(run.start) if started else None,
            "endDate": self.ms(run.end) if status in FINISHED else None,
            "type": "TASK",
            "mode": execution.mode,
            "executionOrder": run.task.order,
        }

    def find_execution(self, pool_id: str, execution_id: str) -> Execution | None:
        execution = self._executions.get(execution_id)
        return execution if execution is not None and execution.pool_id == pool_id else None

    def execution_items(
        self, execution: Execution, item_type: str | None, item_id: str | None, now: float
    ) -> list[dict[str, Any]]:
        """ExecutionItems of one execution: its JOB item and its TASK items (no STEPs)."""
        items: list[dict[str, Any]] = []
        if item_type in (None, "JOB") and _job_matches(execution, item_id):
            items.append(self.job_item(execution, now))
        if item_type in (None, "TASK"):
            items += [
                self.task_item(execution, run, now)
                for run in execution.runs
                if _run_matches(execution, run, item_id)
            ]
        return items

    def log_messages(
        self, execution: Execution, item_type: str | None, item_id: str | None, now: float
    ) -> list[dict[str, Any]]:
        """Log lines of the JOB item and/or TASK items: ERROR lines first, then oldest first.

        PyCelonis reports the first line of a failed task's log as its error.
        """
        lines: list[tuple[float, int, str, str]] = []
        if item_type in (None, "JOB") and _job_matches(execution, item_id):
            lines += self._job_lines(execution, now)
        if item_type in (None, "TASK"):
            for run in execution.runs:
                if _run_matches(execution, run, item_id):
                    lines += _task_lines(run, now)
        lines.sort(key=lambda line: (line[2] != "ERROR", line[0], line[1]))
        return [
            {
                "id": f"{execution.execution_id}-{n}",
                "executionItemId": execution.item_id,
                "level": level,
                "date": self.ms(t),
                "logMessage": text,
            }
            for n, (t, _, level, text) in enumerate(lines)
        ]

    def _job_lines(self, execution: Execution, now: float) -> list[tuple[float, int, str, str]]:
        job = execution.job.name
        running = execution.running_since(now)
        status = execution.status_at(now)
        end = execution.finished_at() if execution.finished_by(now) else None
        lines = [(execution.began, 0, "INFO", f"Data job '{job}' queued (mode {execution.mode})")]
        if running is not None:
            lines.append((running, 1, "INFO", f"Data job '{job}' started"))
        if end is not None:
            lines.append((end, 5, "INFO", f"Data job '{job}' finished with status {status}"))
        return lines


def _task_lines(run: TaskRun, now: float) -> list[tuple[float, int, str, str]]:
    name, status = run.task.name, run.status_at(now)
    lines: list[tuple[float, int, str, str]] = []
    if run.start is not None and run.start <= now:
        lines.append((run.start, 2, "INFO", f"Task '{name}' started"))
    if status == "FAIL":
        lines.append((run.end, 3, "ERROR", run.message or default_message(name)))
    if status == SKIPPED:
        lines.append((run.end, 4, "INFO", f"Task '{name}' skipped"))
    elif status in FINISHED:
        lines.append((run.end, 4, "INFO", f"Task '{name}' finished with status {status}"))
    return lines


def entry_ids(ids: dict[str, str]) -> dict[str, Any]:
    return {"type": "execution", **ids}


def default_message(task: str) -> str:
    return f"Task '{task}' failed"


def template_id(task: ScenarioTask, *more: str) -> str:
    """The id of what a task instance (or one of its tables) was made from."""
    return str(uuid.uuid5(uuid.UUID(task.id), "/".join(("template", *more))))


def _job_matches(execution: Execution, item_id: str | None) -> bool:
    return item_id is None or item_id in (execution.item_id, execution.job.id)


def _run_matches(execution: Execution, run: TaskRun, item_id: str | None) -> bool:
    """A task item is found by its own id, its task's, its job's or its JOB item's."""
    ids = (run.item_id, run.task.id, execution.job.id, execution.item_id)
    return item_id is None or item_id in ids
