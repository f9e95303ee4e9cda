"""What the Celonis API tells about jobs and executions, as plain data: no HTTP, no decisions.

`JobStatus` is one answer's view of a job, `ExecutionInfo` one entry of its
execution history, `ExecutionHandle` this run's claim on an execution (what
was sent and when, on Celonis' clock). Which execution is ours is decided in
`runner.lifecycle`, from these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from runner.shared_types import Mode

ACTIVE_STATUSES = frozenset({"QUEUED", "RUNNING"})
FINISHED_STATUSES = frozenset({"SUCCESS", "FAIL", "CANCEL", "SKIPPED"})
KNOWN_STATUSES = ACTIVE_STATUSES | FINISHED_STATUSES

CURRENT_EXECUTION_ID = "currentExecutionId"
LATEST_EXECUTION_ITEM_ID = "latestExecutionItemId"
LAST_EXECUTION_START = "lastExecutionStartDate"
MARKERS = (CURRENT_EXECUTION_ID, LATEST_EXECUTION_ITEM_ID, LAST_EXECUTION_START)


@dataclass(frozen=True)
class JobStatus:
    """A job's status as one answer showed it. Any field may be None (never ran, or not given).

    `job_status` answers carry `current_execution_id` and `latest_execution_item_id`;
    `pool_statuses` entries carry `last_execution_start` (epoch ms, Celonis' clock).
    """

    job_id: str
    status: str | None
    current_execution_id: str | None = None
    latest_execution_item_id: str | None = None
    last_execution_start: int | None = None

    @property
    def is_active(self) -> bool:
        """QUEUED or RUNNING."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        """SUCCESS, FAIL, CANCEL or SKIPPED (only SUCCESS is a success)."""
        return self.status in FINISHED_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status == "SUCCESS"

    @property
    def is_unknown(self) -> bool:
        """A status outside the known list: treat it as still running (never as success)."""
        return self.status is not None and self.status not in KNOWN_STATUSES

    @property
    def in_progress(self) -> bool:
        """Active, or unknown (which counts as still running)."""
        return self.is_active or self.is_unknown

    def marker(self, name: str) -> str | int | None:
        if name == CURRENT_EXECUTION_ID:
            return self.current_execution_id
        if name == LATEST_EXECUTION_ITEM_ID:
            return self.latest_execution_item_id
        if name == LAST_EXECUTION_START:
            return self.last_execution_start
        raise KeyError(name)

    def markers(self) -> dict[str, str | int]:
        """The markers this status has, by their API names."""
        found = {name: self.marker(name) for name in MARKERS}
        return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True)
class ExecutionInfo:
    """One entry of a job's execution history. Dates are epoch ms on Celonis' clock; any may be None."""

    execution_id: str | None
    status: str | None
    start_date: int | None
    end_date: int | None

    @property
    def in_progress(self) -> bool:
        return self.status not in FINISHED_STATUSES


@dataclass(frozen=True)
class PoolInfo:
    id: str
    name: str | None


@dataclass(frozen=True)
class JobInfo:
    id: str
    name: str | None
    pool_id: str
    status: JobStatus


@dataclass(frozen=True)
class ExecutionHandle:
    """This run's claim on one execution of a job: what was sent, and when on Celonis' clock.

    Two kinds of claim (`runner.lifecycle` judges statuses against them):
    - sent (`since_ms` set): our execute went out at or after `since_ms` and
      (`until_ms`) at or before `until_ms` (Celonis' clock, bounds from the
      measured offset). Our execution began at or after `since_ms` and is none
      of the executions `before` showed. `until_ms` None: when it went out is
      not bounded (it is then never sent again by itself).
    - adopted (`running_at_ms` set): the execution that was running at
      `running_at_ms` (Celonis' clock) is taken as this job's run; nothing was sent.
      When that moment is a refusal's, known only within bounds, `running_at_ms` is
      the latest it can have been and `running_from_ms` the earliest: the run began
      by the one and had not ended before the other.

    `before` is what the job showed just before the send (its executions are
    not ours). `triggered_at` is `clock.monotonic()` when the first POST went
    out, `sent_at` the wall clock then (epoch s); `attempts` counts POSTs sent.
    """

    pool_id: str
    job_id: str
    mode: Mode
    before: JobStatus
    triggered_at: float
    attempts: int
    sent_at: float | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    running_at_ms: int | None = None
    running_from_ms: int | None = None
    subset: Mapping[str, object] | None = field(default=None, compare=False)
    """The subset keys of the internal execute's body; None: the whole job (v2 endpoint)."""

    @property
    def adopted(self) -> bool:
        return self.running_at_ms is not None

    def seen_before(self, execution_id: str) -> bool:
        """Whether the job showed this execution before the send (then it is never ours)."""
        before = self.before
        return execution_id in (before.current_execution_id, before.latest_execution_item_id)

    def to_dict(self) -> dict[str, Any]:
        """The handle as JSON data (the state file and Airflow's trigger carry it)."""
        before = self.before
        return {
            "mode": self.mode,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "running_at_ms": self.running_at_ms,
            "running_from_ms": self.running_from_ms,
            "before": {
                "status": before.status,
                "current_execution_id": before.current_execution_id,
                "latest_execution_item_id": before.latest_execution_item_id,
                "last_execution_start": before.last_execution_start,
            },
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], pool_id: str, job_id: str, *, triggered_at: float = 0.0
    ) -> ExecutionHandle:
        before = data.get("before") or {}
        return cls(
            pool_id=pool_id,
            job_id=job_id,
            mode=cast(Mode, data["mode"]),
            before=JobStatus(
                job_id=job_id,
                status=before.get("status"),
                current_execution_id=before.get("current_execution_id"),
                latest_execution_item_id=before.get("latest_execution_item_id"),
                last_execution_start=before.get("last_execution_start"),
            ),
            triggered_at=triggered_at,
            attempts=int(data.get("attempts", 1)),
            sent_at=_number(data.get("sent_at")),
            since_ms=_int(data.get("since_ms")),
            until_ms=_int(data.get("until_ms")),
            running_at_ms=_int(data.get("running_at_ms")),
            running_from_ms=_int(data.get("running_from_ms")),
        )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
