"""Executing a Plan: start each job as soon as its dependencies succeeded, poll, apply the failure policy.

One scheduling thread owns all job state; HTTP calls run through a CallRunner
(a small thread pool in production, inline in tests) and hand their results
back to it. Polling reads one pool's statuses with one request per round.
Time comes from the injected clock. The parts, composed here: `context` (the
run's shared state and the one way a job changes state), `starts` (executes
and their answers), `settling` (executes whose outcome is unclear),
`watching` (polls and ends), `policy` (what a job's end does to the others,
timeouts, cancels: plain functions), `jobindex` (jobs by state, ready queues,
pool slots), `stopping` (stop, grace, the run's status). Per-job decisions are
`runner.lifecycle`'s.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence

import structlog

from runner.api.types import ExecutionHandle
from runner.clock import Clock
from runner.execution import policy
from runner.execution.context import JobsApi, RunContext
from runner.execution.io import (
    CallRunner,
    ThreadedCalls,
)
from runner.execution.runstate import Checkpoint, JobRun, JobState, Listener, ResumeFrom, RunState
from runner.execution.settling import Settling
from runner.execution.starts import Starts
from runner.execution.watching import Watching
from runner.plan.build import Plan

__all__ = ["Executor", "JobsApi"]

log = structlog.get_logger(__name__)

CallRunnerFactory = Callable[[threading.Event], CallRunner]


class Executor:
    """The scheduling loop. `run()` returns the run's final state; `request_stop` ends it early."""

    def __init__(
        self,
        plan: Plan,
        api: JobsApi,
        clock: Clock,
        *,
        fail_fast: bool = False,
        cancel_on_stop: bool = True,
        grace: float = 60.0,
        listeners: Sequence[Listener] = (),
        checkpoint: Checkpoint | None = None,
        io_workers: int = 8,
        calls: CallRunnerFactory | None = None,
        resume: ResumeFrom | None = None,
        run_id: str = "",
    ) -> None:
        state = RunState(
            plan=plan,
            jobs={name: JobRun(planned) for name, planned in plan.jobs.items()},
            started_at=clock.time(),
            run_id=run_id,
        )
        self.ctx = RunContext(
            plan,
            api,
            clock,
            state,
            fail_fast=fail_fast,
            cancel_on_stop=cancel_on_stop,
            grace=grace,
            listeners=listeners,
        )
        self.settling = Settling(self.ctx)
        self.watching = Watching(self.ctx)
        self.starts = Starts(self.ctx, self.settling, self.watching)
        self.checkpoint = checkpoint
        self._make_calls = calls or (lambda wake: ThreadedCalls(wake, io_workers))
        self._save_due: float | None = None
        self._resume_from = resume or ResumeFrom()

    def run(self) -> RunState:
        self.ctx.calls = self._make_calls(self.ctx.wake)
        try:
            self._warn_assumed_done()
            self._resume(self._resume_from)
            self._loop()
        finally:
            self._drain()
            self.ctx.calls.close(
                abandon=self.ctx.stopping.hard.is_set() or self.ctx.calls.in_flight()
            )
        self._finish()
        self._save(force=True)
        return self.ctx.state

    def request_stop(self, reason: str, hard: bool = False) -> None:
        """Start nothing new; cancel running jobs (unless told not to) and end after the grace
        period. `hard`: end at once, abandoning requests in flight. Safe from a signal handler."""
        self.ctx.stopping.request(reason, hard=hard)
        self.ctx.wake.set()

    @property
    def state(self) -> RunState:
        """The run's state (final once `run()` returned)."""
        return self.ctx.state

    @property
    def dependency_checks(self) -> int:
        return self.ctx.index.dependency_checks

    def _loop(self) -> None:
        while True:
            self.ctx.wake.clear()
            self.ctx.calls.collect()
            now = self.ctx.clock.monotonic()
            if self._stopped(now):
                return
            policy.check_timeouts(self.ctx, now)
            if self._may_start():
                self._start_ready()
            self.settling.due(now)
            self.watching.poll_due(now)
            if not self.ctx.index.active_total and not self.ctx.calls.in_flight():
                return
            if self.ctx.calls.has_results():
                continue
            if self.ctx.index.changed:  # every change reaches the state file before the loop sleeps
                self._save(force=False)
            self.ctx.clock.wait(self.ctx.wake, self._delay(now))

    def _stopped(self, now: float) -> bool:
        """A stop request begins its grace here; True once the run must end."""
        if self.ctx.stopping.requested and self.ctx.stopping.grace_deadline is None:
            policy.begin_stop(self.ctx, now, self.ctx.stopping.reason or "interrupted")
        return self.ctx.stopping.over(now)

    def _may_start(self) -> bool:
        # with fail-fast, nothing starts while a failure's reason is read: it may stop the run
        return self.ctx.stopping.reason is None and not (
            self.ctx.fail_fast and self.ctx.flight.reason_pending
        )

    def _delay(self, now: float) -> float:
        # a job whose execute is in flight has nothing to poll yet: only its result wakes us
        times = [
            self.ctx.index.pool_due[pool]
            for pool, jobs in self.ctx.index.polled.items()
            if jobs and pool not in self.ctx.flight.polling
        ]
        times += [
            j.next_poll
            for n, j in self.ctx.flight.settling.items()
            if n not in self.ctx.flight.settle_busy
        ]
        if self.ctx.index.deadlines:
            times.append(self.ctx.index.deadlines[0][0])
        times += [t for t in (self.ctx.stopping.grace_deadline, self._save_due) if t is not None]
        return max(0.0, min(times) - now) if times else 3600.0

    def _drain(self) -> None:
        """Let in-flight requests finish so that no result is lost, unless stopping hard or a
        requested stop's grace period is over (a slow request must not outlast `--grace`: an
        execute abandoned in flight stays "starting", which a resume settles)."""
        while (
            self.ctx.calls.in_flight()
            and not self.ctx.stopping.hard.is_set()
            and not self._grace_over()
        ):
            self.ctx.wake.clear()
            self.ctx.calls.collect()
            if self.ctx.calls.in_flight() and not self.ctx.calls.has_results():
                self.ctx.calls.wait_results(0.05)

    def _grace_over(self) -> bool:
        deadline = self.ctx.stopping.grace_deadline
        return (
            self.ctx.stopping.requested
            and deadline is not None
            and self.ctx.clock.monotonic() >= deadline
        )

    def _save(self, *, force: bool) -> None:
        """Checkpoint the state; a deferred write is retried before the loop sleeps. A write
        that fails (a full disk) stops the run from starting anything more."""
        if self.checkpoint is None or self.ctx.stopping.state_error is not None:
            return
        try:
            again = self.checkpoint(self.ctx.state, force)
        except OSError as error:
            self._state_lost(error)
            return
        if again is None:
            self.ctx.index.changed = False
            self._save_due = None
        else:
            self._save_due = self.ctx.clock.monotonic() + again

    def _state_lost(self, error: OSError) -> None:
        why = os.strerror(error.errno) if error.errno else str(error)
        where = f" {error.filename}" if error.filename else ""
        self.ctx.stopping.state_lost(f"could not write the state file{where} ({why})")
        log.error(
            "state_write_failed",
            error=why,
            path=error.filename,
            note="nothing more starts; the jobs running are watched to their end",
        )
        policy.stop_waiting(self.ctx, f"not started: {self.ctx.stopping.state_error}")
        self.ctx.wake.set()

    def _start_ready(self) -> None:
        jobs = self.ctx.index.take_startable(self.ctx.plan.max_parallel)
        for job in jobs:
            job.intent_at = self.ctx.clock.time()
            self.ctx.set(job, JobState.STARTING, attempt=job.attempts + 1)
        for job, why in self.ctx.index.waiting_for_slot(self.ctx.plan.max_parallel):
            log.info("job_waiting_for_slot", job=job.name, pool=job.planned.job.pool, reason=why)
        if jobs:
            self._save(force=True)  # a crash after this point is seen as "uncertain" on resume
            if self.ctx.stopping.state_error is not None:  # not saved: a resume would not know
                for job in jobs:
                    job.error = f"not started: {self.ctx.stopping.state_error}"
                    self.ctx.set(job, JobState.NOT_STARTED)
                return
            self.starts.execute_all(jobs)

    def _warn_assumed_done(self) -> None:
        assumed = sorted({d for p in self.ctx.plan.jobs.values() for d in p.assumed_done})
        if assumed:
            log.warning("dependencies_assumed_done", jobs=assumed, count=len(assumed))

    def _finish(self) -> None:
        self._end_unfinished(self.ctx.stopping.reason)
        state = self.ctx.state
        state.finished_at = self.ctx.clock.time()
        state.stop_reason = self.ctx.stopping.reason
        state.status = self.ctx.stopping.run_status(state)
        state.error = self._run_error()
        log.info("run_finished", status=state.status, **state.counts())

    def _run_error(self) -> str | None:
        if self.ctx.stopping.aborted is not None:
            return str(self.ctx.stopping.aborted)
        if self.ctx.stopping.state_error is not None:
            jobs = self.ctx.state.jobs.values()
            missed = sum(1 for j in jobs if j.state == JobState.NOT_STARTED)
            return f"{self.ctx.stopping.state_error}: {missed} jobs not started"
        return None

    def _end_unfinished(self, reason: str | None) -> None:
        """What has not run by the end: not started, or (its execute out) may be running."""
        for job in list(self.ctx.index.by_state[JobState.STARTING].values()):
            if job.name in self.ctx.flight.reading_before:  # abandoned before its execute was sent
                job.error = f"not started: {reason}" if reason else "not started"
                self.ctx.set(job, JobState.NOT_STARTED)
            elif job.error is None:
                job.error = (
                    "may be running in Celonis: stopped while its execute request was in flight"
                )
        for job in list(self.ctx.index.by_state[JobState.PENDING].values()):
            job.error = job.error or (f"not started: {reason}" if reason else "not started")
            self.ctx.set(job, JobState.NOT_STARTED)
        for job in list(self.ctx.index.by_state[JobState.WAITING].values()):
            job.error = "not started: an execution started elsewhere was still running"
            self.ctx.set(job, JobState.NOT_STARTED)

    def _resume(self, resume: ResumeFrom) -> None:
        for name in resume.succeeded:
            if name in self.ctx.state.jobs:
                job = self.ctx.state.jobs[name]
                job.started_at = resume.started_at.get(name)
                job.finished_at = resume.finished_at.get(name)
                self.ctx.set(
                    job, JobState.SUCCEEDED, note="succeeded in the earlier run; not run again"
                )
        self._take_up_all(resume.running, resume.started_at)
        for name in resume.cancel_requested & self.ctx.state.jobs.keys():
            self.ctx.state.jobs[name].cancelled_before = True
        for name, handle in resume.uncertain.items():
            if name in self.ctx.state.jobs:
                job = self.ctx.state.jobs[name]
                job.intent_at = resume.intent_at.get(name)
                job.started_at = resume.started_at.get(name) or handle.sent_at or job.intent_at
                job.attempts = max(handle.attempts, 1)
                job.resend_allowed = True
                self.ctx.executes_out = True
                self.ctx.set(
                    job, JobState.STARTING, note="the earlier run's execute may have started"
                )
                self.settling.begin(job, handle)

    def _take_up_all(
        self, running: Mapping[str, ExecutionHandle], started_at: Mapping[str, float]
    ) -> None:
        for name, handle in running.items():
            if handle.since_ms is None and handle.running_at_ms is None:
                # a handle an older version kept: bounded by the local send time, and
                # (no answer measured the offset yet) the documented tolerance
                sent = handle.sent_at if handle.sent_at is not None else self.ctx.state.started_at
                handle = dataclasses.replace(
                    handle,
                    since_ms=self.ctx.api.celonis_floor_ms(sent),
                    until_ms=self.ctx.api.celonis_ceiling_ms(sent),
                )
            if name in self.ctx.state.jobs:
                job = self.ctx.state.jobs[name]
                job.attempts = max(job.attempts, 1)
                self.ctx.executes_out = True
                self.ctx.watch(job, handle, started_at.get(name) or self.ctx.clock.time())
                self.ctx.set(
                    job, JobState.RUNNING, note="taken up from the earlier run; not triggered again"
                )
