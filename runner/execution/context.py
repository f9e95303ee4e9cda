"""What the parts of a run share: the plan, the API, the clock, the run's state and indexes, the
requests in flight, and the one way a job changes state (which updates the indexes, logs the event
and tells the listeners). The scheduling loop (`Executor`) owns it; `Starts`, `Settling` and
`Watching` act on it, and the failure policy (`policy`) is plain functions of it."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus
from runner.clock import Clock
from runner.execution.io import (
    CallRunner,
    InlineCalls,
)
from runner.execution.jobindex import JobIndex
from runner.execution.runstate import JobRun, JobState, Listener, RunState
from runner.execution.stopping import Stopping
from runner.plan.build import Plan
from runner.shared_types import Mode

log = structlog.get_logger(__name__)


class JobsApi(Protocol):
    """What the executor needs of `runner.api.CelonisClient`."""

    def execute(
        self,
        pool_id: str,
        job_id: str,
        mode: Mode,
        *,
        pool_entries: Mapping[str, JobStatus] | None = None,
        subset: Mapping[str, object] | None = None,
        resend_of: ExecutionHandle | None = None,
    ) -> ExecutionHandle: ...

    def pool_entries(self, pool_id: str) -> Mapping[str, JobStatus] | None: ...

    def execution_history(self, pool_id: str, job_id: str, limit: int) -> list[ExecutionInfo]: ...

    def celonis_floor_ms(self, local: float | None = None) -> int: ...

    def celonis_ceiling_ms(self, local: float | None = None) -> int: ...

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]: ...

    def cancel(self, pool_id: str, job_id: str) -> None: ...

    def failure_reason(
        self, pool_id: str, job_id: str, *, execution_id: str | None = None
    ) -> str | None: ...


@dataclass
class InFlight:
    """Jobs with a request or a wait in flight, by the part of the run that owns it."""

    polling: set[str] = field(default_factory=set)
    """Pools whose statuses are being read."""
    settling: dict[str, JobRun] = field(default_factory=dict)
    """Jobs whose execute's outcome is unclear, settled each round."""
    settle_busy: set[str] = field(default_factory=set)
    settle_since: dict[str, float] = field(default_factory=dict)
    history_pending: set[str] = field(default_factory=set)
    """Jobs whose execution history is being read to tie an end to our execution."""
    reason_pending: set[str] = field(default_factory=set)
    """Jobs whose failure reason is being read (they end once it is)."""
    reading_before: set[str] = field(default_factory=set)
    """Jobs starting whose pool is read before their executes are sent (none sent yet)."""
    timed_out: set[str] = field(default_factory=set)
    """Jobs cancelled for their timeout."""


class RunContext:
    """The run's shared state; every method runs on the scheduling thread."""

    def __init__(
        self,
        plan: Plan,
        api: JobsApi,
        clock: Clock,
        state: RunState,
        *,
        fail_fast: bool,
        cancel_on_stop: bool,
        grace: float,
        listeners: Sequence[Listener],
    ) -> None:
        self.plan = plan
        self.api = api
        self.clock = clock
        self.state = state
        self.fail_fast = fail_fast
        self.cancel_on_stop = cancel_on_stop
        self.grace = grace
        self.listeners = list(listeners)
        self.index = JobIndex(plan, state.jobs)
        self.stopping = Stopping(grace=grace)
        self.wake = threading.Event()
        self.calls: CallRunner = InlineCalls(self.wake)  # replaced by Executor.run()
        self.executes_out = False
        """An execute of this run (or of the resumed one) may have taken effect."""
        self.flight = InFlight()

    def watch(self, job: JobRun, handle: ExecutionHandle, started_at: float) -> None:
        """Poll `job` as running with `handle`, from now on."""
        now = self.clock.monotonic()
        job.handle = handle
        job.started_mono = now
        job.started_at = started_at
        job.interval = job.planned.job.poll_interval
        job.next_poll = now

    def set(self, job: JobRun, state: JobState, **extra: Any) -> None:
        self.index.move(job, state)
        self.emit(job, **extra)

    def emit(self, job: JobRun, **extra: Any) -> None:
        spec = job.planned.job
        now = self.clock.monotonic()
        elapsed = round(now - job.started_mono, 3) if job.started_mono is not None else None
        fields: dict[str, Any] = {
            "job": job.name,
            "pool": spec.pool,
            "mode": spec.mode,
            "status": job.state,
            "elapsed": elapsed,
            "attempt": job.attempts,
        }
        if job.error:
            fields["reason"] = job.error
        fields.update(extra)
        bad = job.state.is_unsuccessful or job.state in (JobState.SKIPPED, JobState.UNCLEAR)
        getattr(log, "warning" if bad else "info")(f"job_{job.state}", **fields)
        for listener in self.listeners:
            listener(self.state, job)
