"""Waiting for a Celonis job to end, shared by the operator's own loop and the deferred trigger.

A `Wait` is plain data (it travels in trigger kwargs and events): the job, the
claim on the execution waited for (`ExecutionHandle`: ours, or the one someone
else started), the deadline and the poll intervals. `Wait.observe` judges one
status by `runner.lifecycle` (the rules `run` uses) and says how long to
sleep, or that the history must be read to tie an end to the claim. Times are real epoch seconds; durations are virtual seconds
(real seconds times `scale`, which is 1 outside tests). No Airflow import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Literal

from runner import lifecycle
from runner.api import ExecutionHandle, ExecutionInfo, JobStatus
from runner.lifecycle import Verdict


class Outcome(StrEnum):
    """How a wait ended; the value is what the trigger's event carries."""

    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    CANCEL = "CANCEL"
    SKIPPED = "SKIPPED"
    EXTERNAL_ENDED = "EXTERNAL_ENDED"
    """The run someone else started has ended: ours may start now."""
    TIMEOUT = "TIMEOUT"
    """The job's own `timeout` was reached."""
    EXECUTION_TIMEOUT = "EXECUTION_TIMEOUT"
    """The task's `execution_timeout` was reached while it waited."""
    ERROR = "ERROR"
    """The API could not be used; `message` says why."""


@dataclass(frozen=True)
class Step:
    outcome: Outcome | None
    """None: keep waiting."""
    wait: Wait
    sleep: float
    """Real seconds until the next poll (never past the deadline)."""
    read_history: bool = False
    """The status showed an end it cannot tie to the claim: read the history now
    (`Wait.observe_history`)."""


@dataclass(frozen=True)
class Wait:
    pool_id: str
    job_id: str
    kind: Literal["ours", "external"]
    started: float
    """Real epoch seconds when the wait (or our execute) began."""
    deadline: float
    """Real epoch seconds when the job's timeout is reached."""
    poll_interval: float
    max_poll_interval: float
    scale: float = 1.0
    handle: dict[str, Any] | None = None
    """The claim (`ExecutionHandle.to_dict`): our execution, or the one someone else runs."""
    execution_deadline: float | None = None
    """Real epoch seconds when the task's `execution_timeout` is reached (None: no limit)."""

    @classmethod
    def of(
        cls,
        kind: Literal["ours", "external"],
        handle: ExecutionHandle,
        *,
        now: float,
        timeout: float,
        poll: tuple[float, float],
        scale: float,
    ) -> Wait:
        """Wait for our execution (`kind` "ours") or for the run someone else started
        ("external"; `handle` is then the claim on it, running_at_ms)."""
        deadline = now + timeout / scale
        data = handle.to_dict()
        return cls(handle.pool_id, handle.job_id, kind, now, deadline, *poll, scale, data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Wait:
        return cls(**data)

    def claim(self) -> ExecutionHandle:
        assert self.handle is not None
        return ExecutionHandle.from_dict(self.handle, self.pool_id, self.job_id)

    def timed_out(self, now: float) -> bool:
        return now >= self.deadline

    @property
    def limit(self) -> float:
        """Real epoch seconds when the first limit is reached: the job's timeout or the task's
        `execution_timeout`. No poll is put off past it."""
        return min(self.deadline, self.execution_deadline or self.deadline)

    def over_time(self, now: float) -> Outcome | None:
        """TIMEOUT or EXECUTION_TIMEOUT once one of the limits is reached, else None."""
        if self.execution_deadline is not None and now >= self.execution_deadline:
            return Outcome.EXECUTION_TIMEOUT
        return Outcome.TIMEOUT if self.timed_out(now) else None

    def with_execution_deadline(self, deadline: float | None) -> Wait:
        return replace(self, execution_deadline=deadline)

    def observe(self, status: JobStatus, now: float) -> Step:
        """What one status says: an outcome, a history read, or keep waiting (and how long)."""
        return self._step(lifecycle.judge_status(self.claim(), status), status.status, now)

    def observe_history(self, history: list[ExecutionInfo], now: float) -> Step:
        """What the execution history says, after a status showed an end (`read_history`)."""
        claim = self.claim()
        verdict = lifecycle.judge_history(claim, history)
        if verdict is Verdict.NOT_YET and self.kind == "external":
            verdict = Verdict.ACTIVE  # its end is not in the history yet
        return self._step(verdict, lifecycle.outcome_in_history(claim, history), now)

    def _step(self, verdict: Verdict, outcome: str | None, now: float) -> Step:
        if verdict is Verdict.NEEDS_HISTORY:
            return Step(None, self, 0.0, read_history=True)
        external = self.kind == "external"
        if verdict is Verdict.FINISHED or (external and verdict is Verdict.NOT_YET):
            return Step(Outcome.EXTERNAL_ENDED if external else Outcome(outcome or ""), self, 0.0)
        elapsed = (now - self.started) * self.scale
        if external:
            interval = self.poll_interval
        else:
            interval = lifecycle.poll_interval(
                elapsed, self.poll_interval, self.max_poll_interval, cancelling=False
            )
        return Step(None, self, self._sleep(interval, now))

    def _sleep(self, interval: float, now: float) -> float:
        return max(0.0, min(interval / self.scale, self.limit - now))


class AfterKill(StrEnum):
    """What a deferred task's trigger does to our Celonis job when a user acts on the task."""

    CANCEL = "cancel"
    """Marked failed (the task, or its DAG run): the job is stopped, as `run` stops on Ctrl-C."""
    MARKED_SUCCESS = "marked_success"
    """Marked success: the job is left alone (its dependents start now, by the user's word)."""
    NEWER_TRY = "newer_try"
    """Cleared: a newer try adopts the running execution (it waits for it), so it keeps running."""
    UNKNOWN = "unknown"
    """The task's state could not be read: left alone (a newer try may have taken it over)."""


STOPPED_STATES = frozenset({"failed", "upstream_failed", "skipped", "removed"})
"""Task states that mean the user stopped the task: its job is cancelled."""


def after_kill(state: str | None, *, known: bool = True) -> AfterKill:
    """The decision for a trigger killed by a user action, from the task instance's state read
    after it: failed (and other stopped states) cancel; success leaves the job alone; any other
    state (None after a clear, scheduled, queued, running, deferred, up_for_retry) means a
    newer try takes the execution over, which a cancel would fail."""
    if not known:
        return AfterKill.UNKNOWN
    if state == "success":
        return AfterKill.MARKED_SUCCESS
    if state in STOPPED_STATES:
        return AfterKill.CANCEL
    return AfterKill.NEWER_TRY
