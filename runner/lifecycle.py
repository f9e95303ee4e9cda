"""One job's lifecycle in Celonis, as pure decisions over what was observed: the CLI's executor
and the Airflow operator and trigger both take every per-job decision here.

Which execution is ours is proven, never assumed (docs/INTERFACES.md, "Which
execution is ours"):
- For an execute we sent (`handle.since_ms`): an execution is ours only if it
  began at or after the send on Celonis' clock (`since_ms` is a lower bound
  of it, from the measured offset) and is none the job showed before the send.
  An execution that began (so also one that ended) before the send is never ours.
- For an adopted run (`handle.running_at_ms`): ours is the execution that was
  running at that moment: it began by then and had not ended before it. A
  refusal's moment is known within bounds: began by the latest it can have been
  (`running_at_ms`), not ended before the earliest (`running_from_ms`); of the
  executions that qualify, the newest (one job's executions do not overlap).
- A status without a start date (a job's own answer) proves nothing: when it
  shows an end, the execution history is read (`Verdict.NEEDS_HISTORY`).
Only a proven execution's end ends the job; its dependents start only after
that execution's SUCCESS.

Nothing here reads a clock or the network: times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from runner.api.celonis_clock import TOLERANCE
from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus

BACKOFF_FRACTION = 0.05
"""A running job is polled at least every BACKOFF_FRACTION of its elapsed time (within limits)."""

CANCEL_POLL_INTERVAL = 1.5
"""Seconds between status reads of a job whose cancel was sent (not the backed-off interval)."""

HISTORY_LIMIT = 10
"""Newest history entries read to find our execution (ours is among the newest)."""

_TOLERANCE_MS = int(TOLERANCE * 1000)


class Verdict(StrEnum):
    """What one observation says about the execution a handle claims."""

    NOT_YET = "not_yet"
    """Not ours: nothing yet, or an earlier execution (a stale status). Keep polling."""
    ACTIVE = "active"
    """Ours (or not proven otherwise) and still QUEUED, RUNNING or in an unknown status."""
    FINISHED = "finished"
    """Ours, proven, and ended: the observation's status is its outcome."""
    NEEDS_HISTORY = "needs_history"
    """An end that this answer cannot tie to ours: read the execution history."""


class Settlement(StrEnum):
    """What the reads after an unclear execute found out."""

    STARTED = "started"
    """Celonis shows our execution: watch it as this job's run."""
    NO_EXECUTION = "no_execution"
    """A full settle window after the send, the history shows no execution since it."""
    UNCLEAR = "unclear"
    """No evidence either way yet: read again next round; never send the execute again."""


def _is_ours(handle: ExecutionHandle, execution_id: str | None, start: int | None) -> bool | None:
    """Whether an execution (its id, its start on Celonis' clock) is the one `handle` claims;
    None when it cannot be told (no start date)."""
    if execution_id is not None and handle.seen_before(execution_id):
        return False
    if start is None:
        return None
    if handle.running_at_ms is not None:
        return start <= handle.running_at_ms + _TOLERANCE_MS
    if handle.since_ms is None:
        return None
    return start >= handle.since_ms and start != handle.before.last_execution_start


def judge_status(handle: ExecutionHandle, status: JobStatus) -> Verdict:
    """What a status (a pool's `logs/status` entry, or the job's own answer) says of our run."""
    if status.job_id.lower() != handle.job_id.lower():
        raise ValueError(f"status of job {status.job_id} given to the handle of {handle.job_id}")
    if status.status is None:
        return Verdict.NOT_YET
    if handle.running_at_ms is not None:
        return _judge_adopted(handle.running_at_ms, status)
    ours = _is_ours(handle, status.current_execution_id, status.last_execution_start)
    if ours is False:
        return Verdict.NOT_YET  # an execution from before the send, seen late or again
    if status.in_progress:
        return Verdict.ACTIVE
    return Verdict.FINISHED if ours else Verdict.NEEDS_HISTORY


def _judge_adopted(running_at_ms: int, status: JobStatus) -> Verdict:
    start = status.last_execution_start
    if start is not None and start > running_at_ms + _TOLERANCE_MS:
        return Verdict.NEEDS_HISTORY  # a later execution: the adopted one ended; when, and how?
    if status.in_progress:
        return Verdict.ACTIVE
    return Verdict.NEEDS_HISTORY  # an end: the adopted run's only if it ended after running_at


def ours_in_history(
    handle: ExecutionHandle, history: Sequence[ExecutionInfo]
) -> ExecutionInfo | None:
    """Our execution among history entries (newest first), if they show it."""
    for item in history:
        if _is_ours(handle, item.execution_id, item.start_date) is not True:
            continue
        if handle.running_at_ms is not None:
            ended = item.end_date
            earliest = handle.running_from_ms or handle.running_at_ms
            if ended is not None and ended < earliest - _TOLERANCE_MS:
                continue  # ended before the moment it was running: an earlier one
        return item
    return None


def judge_history(handle: ExecutionHandle, history: Sequence[ExecutionInfo]) -> Verdict:
    """What the execution history says of our run."""
    item = ours_in_history(handle, history)
    if item is None:
        return Verdict.NOT_YET
    return Verdict.ACTIVE if item.in_progress else Verdict.FINISHED


def outcome_in_history(handle: ExecutionHandle, history: Sequence[ExecutionInfo]) -> str | None:
    """The final status of our execution in the history; None while it is not shown ended."""
    item = ours_in_history(handle, history)
    if item is None or item.in_progress:
        return None
    return item.status


def settle(
    handle: ExecutionHandle,
    history: Sequence[ExecutionInfo],
    read_at_ms: int,
    window: float,
) -> Settlement:
    """Whether an execute with an unclear outcome took effect, from a history read at
    `read_at_ms` (a lower bound of the read's time on Celonis' clock).

    STARTED when the history shows an execution of ours. NO_EXECUTION when it
    does not and the read was at least `window` seconds after the latest moment
    the send can have gone out (`until_ms`): the history shows executions within
    the window, so none since the send means the execute did not take effect.
    Otherwise UNCLEAR: read again later (a send not bounded is never NO_EXECUTION).
    """
    if ours_in_history(handle, history) is not None:
        return Settlement.STARTED
    until = handle.until_ms
    if until is not None and read_at_ms >= until + window * 1000:
        return Settlement.NO_EXECUTION
    return Settlement.UNCLEAR


def poll_interval(elapsed: float, poll: float, max_poll: float, *, cancelling: bool) -> float:
    """Seconds to the next status read of a running job: closer while a cancel is out, else
    backed off with the time it has run (BACKOFF_FRACTION), between `poll` and `max_poll`."""
    if cancelling:
        return CANCEL_POLL_INTERVAL
    return min(max_poll, max(poll, elapsed * BACKOFF_FRACTION))


def timed_out(elapsed: float, timeout: float) -> bool:
    """The job has run its timeout: cancel it (and wait for Celonis to confirm the end)."""
    return elapsed >= timeout


def settle_overdue(settling_for: float, window: float) -> bool:
    """An unclear execute has been settled for its whole window without evidence: within a
    run it ends `unclear` now (a resume settles it again)."""
    return settling_for >= window
