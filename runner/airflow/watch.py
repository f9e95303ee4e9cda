"""Waiting for a Celonis job to end, shared by the operator's own loop and the deferred trigger.

A `Wait` is plain data (it travels in trigger kwargs and events): the job, the
`ExecutionHandle` of our execute (or none, while a run someone else started is
waited for), the deadline and the poll intervals. `Wait.observe` judges one
status with the handle's stale-status guard and says how long to sleep: the
interval grows with the elapsed time as in `run` (poll_interval up to
max_poll_interval). Times are real epoch seconds; durations are virtual seconds
(real seconds times `scale`, which is 1 outside tests). No Airflow import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, Literal, cast

from runner.api import ExecutionHandle, JobStatus, Observation
from runner.manifest.model import Mode

BACKOFF_FRACTION = 0.05
"""A running job is polled at least every BACKOFF_FRACTION of its elapsed time (as in `run`)."""


class Outcome(StrEnum):
    """How a wait ended; the value is what the trigger's event carries."""

    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    CANCEL = "CANCEL"
    SKIPPED = "SKIPPED"
    EXTERNAL_ENDED = "EXTERNAL_ENDED"
    """The run someone else started has ended: ours may start now."""
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"
    """The API could not be used; `message` says why."""


def handle_to_dict(handle: ExecutionHandle) -> dict[str, Any]:
    before = asdict(handle.before)
    return {
        "pool_id": handle.pool_id,
        "job_id": handle.job_id,
        "mode": handle.mode,
        "before": before,
        "triggered_at": handle.triggered_at,
        "attempts": handle.attempts,
        "compared": sorted(handle.compared),
        "sent_at": handle.sent_at,
    }


def handle_from_dict(data: dict[str, Any]) -> ExecutionHandle:
    return ExecutionHandle(
        pool_id=data["pool_id"],
        job_id=data["job_id"],
        mode=cast(Mode, data["mode"]),
        before=JobStatus(**data["before"]),
        triggered_at=float(data["triggered_at"]),
        attempts=int(data["attempts"]),
        compared=frozenset(data["compared"]),
        sent_at=data.get("sent_at"),
    )


@dataclass(frozen=True)
class Step:
    outcome: Outcome | None
    """None: keep waiting."""
    wait: Wait
    sleep: float
    """Real seconds until the next poll (never past the deadline)."""


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
    seen_active: bool = False

    @classmethod
    def ours(
        cls,
        handle: ExecutionHandle,
        *,
        now: float,
        timeout: float,
        poll: tuple[float, float],
        scale: float,
        seen_active: bool = False,
    ) -> Wait:
        return cls(
            handle.pool_id,
            handle.job_id,
            "ours",
            now,
            now + timeout / scale,
            poll[0],
            poll[1],
            scale,
            handle_to_dict(handle),
            seen_active,
        )

    @classmethod
    def external(
        cls,
        pool_id: str,
        job_id: str,
        *,
        now: float,
        timeout: float,
        poll: tuple[float, float],
        scale: float,
    ) -> Wait:
        return cls(pool_id, job_id, "external", now, now + timeout / scale, poll[0], poll[1], scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Wait:
        return cls(**data)

    def timed_out(self, now: float) -> bool:
        return now >= self.deadline

    def observe(self, status: JobStatus, now: float) -> Step:
        """What one status says: an outcome, or keep waiting (and for how long)."""
        if self.kind == "external":
            if not status.in_progress:
                return Step(Outcome.EXTERNAL_ENDED, self, 0.0)
            return Step(None, self, self._sleep(self.poll_interval, now))
        assert self.handle is not None
        seen = handle_from_dict(self.handle).observe(status, seen_active=self.seen_active)
        wait = replace(self, seen_active=True) if seen is Observation.ACTIVE else self
        if seen is Observation.FINISHED:
            return Step(Outcome(status.status or ""), wait, 0.0)
        elapsed = (now - self.started) * self.scale
        interval = min(self.max_poll_interval, max(self.poll_interval, elapsed * BACKOFF_FRACTION))
        return Step(None, wait, self._sleep(interval, now))

    def _sleep(self, interval: float, now: float) -> float:
        return max(0.0, min(interval / self.scale, self.deadline - now))
