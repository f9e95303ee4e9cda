"""Why and how a run ends early: a stop request (Ctrl-C, SIGTERM), fail-fast, an unusable API,
a refused credential; and the run's final status.

Nothing here sends requests: the executor asks it whether to start jobs,
when the grace period ends and whether in-flight requests are abandoned.
"""

from __future__ import annotations

import threading

import structlog

from runner.api.errors import ApiError
from runner.execution.runstate import JobState, RunState, RunStatus

log = structlog.get_logger(__name__)


class Stopping:
    """The run's stop state. `request` is the one way in from outside the scheduling thread."""

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self.event = threading.Event()
        """Set once a stop was requested from outside (the run then ends "interrupted")."""
        self.hard = threading.Event()
        """Stop at once: in-flight requests are abandoned."""
        self.reason: str | None = None
        """Set once nothing new may start (a stop request, fail-fast, an API failure)."""
        self.grace_deadline: float | None = None
        self.aborted: ApiError | None = None
        self.state_error: str | None = None
        """Why the state file could not be written: nothing new starts, running jobs are
        watched to their end (no deadline), and the run ends "state_error"."""

    def request(self, reason: str, *, hard: bool) -> None:
        if self.reason is None:
            self.reason = reason
        if hard:
            self.hard.set()
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def begin(self, now: float, reason: str, *, grace: bool = True) -> None:
        """Start nothing new; the run ends after the grace period (at once without one)."""
        if self.reason is None:
            self.reason = reason
        if self.grace_deadline is None:
            self.grace_deadline = now + (self.grace if grace else 0.0)

    def abort(self, error: ApiError, *, now: float, hard: bool) -> None:
        """The API cannot be used: end the run now (hard: without waiting for in-flight calls)."""
        if self.aborted is None:
            self.aborted = error
            log.error("api_unusable", error=str(error))
        self.begin(now, "the API could not be used", grace=False)
        if hard:
            self.hard.set()

    def state_lost(self, why: str) -> None:
        """The state file cannot be written: start nothing new (a resume could not know of it);
        what runs is watched to its end, so that nothing is left unwatched."""
        if self.state_error is None:
            self.state_error = why
        if self.reason is None:
            self.reason = why

    def over(self, now: float) -> bool:
        return self.hard.is_set() or (
            self.grace_deadline is not None and now >= self.grace_deadline
        )

    def run_status(self, state: RunState) -> RunStatus:
        if self.aborted is not None:
            return "api_error"
        if self.state_error is not None:
            return "state_error"
        if self.requested:
            return "interrupted"
        for job in state.jobs.values():
            allowed = job.planned.job.allow_failure and job.state.is_unsuccessful
            if job.state == JobState.SUCCEEDED or allowed:
                continue
            return "failed"
        return "succeeded"
