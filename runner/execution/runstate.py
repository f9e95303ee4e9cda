"""A run's data: each job's state and progress, and the run as a whole.

The executor writes it; the state file and the progress line read it; reports read the
frozen `RunResult` that `run_result` makes of it once the run ends. Nothing here does I/O.
`JobState` lives with that model (runner.runresult.model) and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from runner.api.types import ExecutionHandle
from runner.plan.build import Plan, PlannedJob
from runner.runresult.model import JobResult, JobState, RunResult, RunStatus
from runner.task_records import TaskInfo, TaskResult

__all__ = [
    "Checkpoint",
    "JobRun",
    "JobState",
    "Listener",
    "ResumeFrom",
    "RunState",
    "RunStatus",
    "run_result",
]


@dataclass
class JobRun:
    """One job's progress in this run; owned by the scheduling thread."""

    planned: PlannedJob
    state: JobState = JobState.PENDING
    handle: ExecutionHandle | None = None
    """This run's claim on the job's execution (runner.lifecycle judges statuses by it)."""
    started_at: float | None = None
    finished_at: float | None = None
    started_mono: float | None = None
    waiting_since: float | None = None
    attempts: int = 0
    error: str | None = None
    next_poll: float = 0.0
    interval: float = 0.0
    remote_status: str | None = None
    intent_at: float | None = None
    """Wall time when we decided to start it (saved before the execute request goes out)."""
    resend_allowed: bool = False
    """A resumed job whose earlier execute was unclear: it may be sent again once a settle
    window shows no execution since that send (event job_resent_after_unclear)."""
    cancelled_before: bool = False
    """Taken up from an earlier run that had asked Celonis to cancel it (its stop): a CANCEL
    end is that stop's, so the job is executed again rather than reported cancelled."""
    cancel_reason: str | None = None
    """Why a cancel was sent; the job stays active until Celonis confirms it ended."""
    tasks: tuple[TaskResult, ...] | None = None
    """How each task of its execution went; None: not read (or not run)."""
    task_list: tuple[TaskInfo, ...] | None = None
    """The job's tasks in Celonis when it ended (a resume checks they did not change)."""

    @property
    def name(self) -> str:
        return self.planned.name

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def report_status(self) -> str:
        return self.state.report_status


@dataclass
class RunState:
    """Everything about a run so far; what listeners, reports and the state file read."""

    plan: Plan
    jobs: dict[str, JobRun]
    started_at: float
    run_id: str = ""
    finished_at: float | None = None
    status: RunStatus | None = None
    error: str | None = None
    stop_reason: str | None = None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts


Listener = Callable[[RunState, JobRun], None]
Checkpoint = Callable[[RunState, bool], "float | None"]
"""Saves the run's state. The flag says it must be written now (before an execute goes out);
otherwise it may defer the write and return in how many (clock) seconds to call it again."""


@dataclass
class ResumeFrom:
    """What an earlier run left: jobs already done, executions still running to take up, and
    jobs whose execute was in flight or unclear when that run ended (`uncertain`: the handle of
    that send, its `since_ms` on Celonis' clock), which are settled before anything is sent
    again. `intent_at`: when the uncertain jobs' executes were decided (kept across resumes)."""

    succeeded: frozenset[str] = frozenset()
    running: Mapping[str, ExecutionHandle] = field(default_factory=dict)
    uncertain: Mapping[str, ExecutionHandle] = field(default_factory=dict)
    intent_at: Mapping[str, float] = field(default_factory=dict)
    cancel_requested: frozenset[str] = frozenset()
    """Running jobs whose cancel the earlier run had sent (it was stopping)."""
    started_at: Mapping[str, float] = field(default_factory=dict)
    finished_at: Mapping[str, float] = field(default_factory=dict)


def run_result(state: RunState) -> RunResult:
    """The run as the frozen model every report renders (not yet redacted)."""
    return RunResult(
        run_id=state.run_id,
        status=state.status or "running",
        manifest=state.plan.manifest.path,
        manifest_sha256=state.plan.manifest.sha256,
        started_at=state.started_at,
        finished_at=state.finished_at,
        error=state.error,
        jobs=tuple(job_result(job) for job in state.jobs.values()),
        pools=tuple(state.plan.pools()),
        environment=state.plan.manifest.environment,
        resolved=dict(state.plan.manifest.resolved),
    )


def job_result(job: JobRun) -> JobResult:
    spec = job.planned.job
    task_ids = job.planned.task_ids
    tasks = job.tasks
    return JobResult(
        name=job.name,
        pool=spec.pool,
        pool_id=spec.pool_id,
        job_id=spec.job_id,
        mode=str(spec.mode),
        state=job.state,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        attempts=job.attempts,
        depends_on=tuple(job.planned.depends_on),
        wave=job.planned.wave,
        allow_failure=spec.allow_failure,
        line=spec.line or None,
        subset=spec.tasks.to_dict() if spec.tasks is not None else None,
        task_ids=tuple(task_ids.task_ids()) if task_ids is not None else None,
        tasks=tasks,
        sent_at=job.handle.sent_at if job.handle is not None else None,
        intent_at=job.intent_at,
    )
