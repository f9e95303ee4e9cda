"""A run's data: each job's state and progress, and the run as a whole.

The executor writes it; the state file, the progress line and every report
read it. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from runner.api.types import ExecutionHandle
from runner.plan.build import Plan, PlannedJob
from runner.task_records import TaskInfo, TaskResult


class JobState(StrEnum):
    """Where one job of this run is. Members know whether they are final and how they ended."""

    PENDING = "pending"
    """Waiting for its dependencies or a free slot."""
    STARTING = "starting"
    """Its execute request is in flight."""
    WAITING = "waiting"
    """Someone else's execution is running; ours starts after it."""
    RUNNING = "running"
    """Our execution is running in Celonis."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    NOT_STARTED = "not_started"
    UNCLEAR = "unclear"
    """Its execute may have taken effect, and no status read settled whether it did."""

    @property
    def is_active(self) -> bool:
        """Holds a slot of its pool: an execute in flight, or an execution being watched."""
        return self in _ACTIVE

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_unsuccessful(self) -> bool:
        """Ended badly in Celonis: failed, timed out or cancelled (its dependents are skipped)."""
        return self in _UNSUCCESSFUL

    @property
    def not_run(self) -> bool:
        """Final without running in this run: skipped or not started."""
        return self in _NOT_RUN

    @property
    def verb(self) -> str:
        """How a message says it happened: 'a timed out', 'b was cancelled'."""
        return _VERBS.get(self, str(self).replace("_", " "))

    @property
    def report_status(self) -> str:
        """The status reports show: a job whose execute was in flight may be running."""
        return _REPORT_STATUS.get(self, str(self))


_ACTIVE = frozenset({JobState.STARTING, JobState.WAITING, JobState.RUNNING})
_UNSUCCESSFUL = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED})
_NOT_RUN = frozenset({JobState.SKIPPED, JobState.NOT_STARTED})
_FINAL = _UNSUCCESSFUL | _NOT_RUN | {JobState.SUCCEEDED, JobState.UNCLEAR}
_VERBS = {JobState.TIMED_OUT: "timed out", JobState.CANCELLED: "was cancelled"}
_REPORT_STATUS = {
    JobState.PENDING: "not_started",
    JobState.WAITING: "not_started",
    JobState.STARTING: "running",  # its execute was in flight: it may be running; a resume checks
}

RunStatus = Literal["succeeded", "failed", "api_error", "state_error", "interrupted"]


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
    """How each task of its execution went (issue 12); None: not read (or not run)."""
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
