"""The executor's requests and what each answer does to a job: execute, settle, poll, observe.

Every handler runs on the scheduling thread (the CallRunner hands results
back); none reads time except through the injected clock.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from concurrent.futures import Future

import structlog

from runner import lifecycle
from runner.api.client import statuses_in
from runner.api.errors import ApiError, AuthError, JobBusyError, NotFoundError, UnclearExecuteError
from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus
from runner.durations import format_duration
from runner.execution.base import JobsApi
from runner.execution.io import BACKGROUND, START, URGENT
from runner.execution.policy import FailurePolicy
from runner.execution.runstate import JobRun, JobState
from runner.execution.settling import unclear_message
from runner.lifecycle import Settlement, Verdict
from runner.task_records import JobTasks, failure_text

__all__ = ["JobCalls", "JobsApi"]

log = structlog.get_logger(__name__)

SettleRead = tuple[int, list[ExecutionInfo], ExecutionHandle]


class JobCalls(FailurePolicy):
    # -- execute -------------------------------------------------------------------

    def _execute_all(self, jobs: list[JobRun]) -> None:
        """Read each pool's `logs/status` once for its batch (the executes compare what it
        says before the trigger), then send the batch's executes with it."""
        batches: dict[str, list[JobRun]] = {}
        for job in jobs:
            batches.setdefault(job.planned.job.pool_id, []).append(job)
        for pool_id, batch in batches.items():
            pool = batch[0].planned.job.pool
            watched = list(self.index.polled.get(pool, {}).values())
            self._reading_before.update(job.name for job in batch)
            done = functools.partial(self._read_before_executes, pool, watched, batch)
            self.calls.submit(functools.partial(self.api.pool_entries, pool_id), done, START)

    def _read_before_executes(
        self,
        pool: str,
        watched: list[JobRun],
        batch: list[JobRun],
        future: Future[Mapping[str, JobStatus] | None],
    ) -> None:
        """The read also answers for the pool's jobs being polled when it was sent: observed
        like a poll's answer (a status read before an execute cannot pass for that execute's
        end: ExecutionHandle.observe), it pushes the pool's next poll back. When it failed,
        each execute reads the pool for itself."""
        self._reading_before.difference_update(job.name for job in batch)
        error = future.exception()
        if error is not None and not isinstance(error, ApiError):
            raise error
        entries = future.result() if error is None else None
        if entries is not None and watched:
            ids = [job.planned.job.job_id for job in watched]
            self._apply_statuses(pool, watched, statuses_in(entries, ids))
        for job in batch:
            if self.stopping.reason is not None:  # stopped meanwhile: nothing was sent
                job.error = f"not started: {self.stopping.reason}"
                self._set(job, JobState.NOT_STARTED)
            else:
                self._execute(job, entries)

    def _execute(self, job: JobRun, entries: Mapping[str, JobStatus] | None) -> None:
        spec = job.planned.job
        ids = job.planned.task_ids

        resend_of = job.handle if job.resend_allowed else None

        def execute() -> ExecutionHandle:
            if ids is None:  # the whole job: the documented endpoint
                return self.api.execute(
                    spec.pool_id, spec.job_id, spec.mode, pool_entries=entries, resend_of=resend_of
                )
            return self.api.execute(
                spec.pool_id,
                spec.job_id,
                spec.mode,
                pool_entries=entries,
                subset=ids.body(),
                resend_of=resend_of,
            )

        def done(future: Future[ExecutionHandle]) -> None:
            error = future.exception()
            if error is None:
                self._executed(job, future.result())
            elif isinstance(error, ApiError):
                self._execute_failed(job, error)
            else:
                raise error

        self.calls.submit(execute, done, START)

    def _executed(self, job: JobRun, handle: ExecutionHandle) -> None:
        if not job.resend_allowed:
            job.attempts += 1
        job.resend_allowed = False
        self._executes_out = True
        self._watch(job, handle, self.clock.time())
        job.started_mono = handle.triggered_at
        job.next_poll = self.clock.monotonic() + job.planned.job.poll_interval
        self._set(job, JobState.RUNNING, posts=handle.attempts)
        if self.stopping.reason is not None and self.cancel_on_stop:
            self._cancel(job, self.stopping.reason)

    def _execute_failed(self, job: JobRun, error: ApiError) -> None:
        if isinstance(error, UnclearExecuteError):
            if not job.resend_allowed:
                job.attempts += 1
            job.resend_allowed = False
            self._executes_out = True
            self._emit(job, note=f"the execute's outcome is unclear ({error}); settling it")
            self._begin_settling(job, error.handle)
        elif isinstance(error, JobBusyError):
            self._found_running(job, error)
        elif isinstance(error, AuthError) and (not self._executes_out or error.status == 401):
            # refused, so this one did not start; before any execute of ours went out nothing
            # may be running and the run ends at once, later the API is unusable for the rest
            job.error = f"not started: the credential was refused ({error})"
            self._set(job, JobState.NOT_STARTED)
            self.stopping.abort(error, now=self.clock.monotonic(), hard=self._executes_out)
        elif isinstance(error, NotFoundError | AuthError) and error.status in (403, 404):
            self._finish_job(job, JobState.FAILED, str(error))
        elif error.took_no_effect:
            # nothing was sent, or Celonis refused it for certain: this job did not start, and
            # the API is unusable for the rest of the run
            job.error = f"not started: {error}"
            self._set(job, JobState.NOT_STARTED)
            self.stopping.abort(error, now=self.clock.monotonic(), hard=self._executes_out)
            self._wake.set()
        else:
            # The request may have reached Celonis before the API failed: the job stays
            # "starting" (in the state file too), and a resume settles it before acting.
            self._executes_out = True
            job.error = (
                "may be running in Celonis: the execute request failed with an unclear outcome"
                f" ({error}); run --resume checks it"
            )
            self.stopping.abort(error, now=self.clock.monotonic(), hard=True)
            self._wake.set()

    def _found_running(self, job: JobRun, error: JobBusyError) -> None:
        """Celonis runs the job already (not this run's execution): the job's `if_running`."""
        spec = job.planned.job
        if spec.if_running == "fail":
            status = error.job_status.status
            self._finish_job(
                job,
                JobState.FAILED,
                f"already {status} in Celonis (an execution this run did not start);"
                " if_running: fail",
            )
        elif spec.if_running == "adopt":
            self._adopt(job, error)
        else:
            self._wait_for_other(job, error)

    def _adopt(self, job: JobRun, error: JobBusyError) -> None:
        """Watch the execution someone else started as this job's run; nothing is sent."""
        spec = job.planned.job
        now = self.clock.monotonic()
        self._watch(job, self._other_run(job, error), self.clock.time())
        job.remote_status = error.job_status.status
        job.next_poll = now + spec.poll_interval
        self._set(
            job,
            JobState.RUNNING,
            note="already running in Celonis (started outside this run); adopted as this run's",
        )

    def _other_run(self, job: JobRun, error: JobBusyError) -> ExecutionHandle:
        """The claim on the execution that made our execute wait: the one running at the
        moment Celonis showed it busy (its start, or the refusal's time, on Celonis' clock)."""
        spec = job.planned.job
        at = error.running_at_ms if error.running_at_ms is not None else self.api.celonis_floor_ms()
        before = JobStatus(job_id=spec.job_id, status=None)
        now = self.clock.monotonic()
        return ExecutionHandle(
            spec.pool_id, spec.job_id, spec.mode, before, now, 0, running_at_ms=at
        )

    def _wait_for_other(self, job: JobRun, error: JobBusyError) -> None:
        now = self.clock.monotonic()
        job.waiting_since = job.waiting_since or now
        job.remote_status = error.job_status.status
        job.handle = self._other_run(job, error)
        job.interval = job.planned.job.poll_interval
        job.next_poll = now + job.interval
        self._set(
            job,
            JobState.WAITING,
            remote_status=error.job_status.status,
            note="already running in Celonis (started by someone else); ours starts when it ends",
        )

    # -- settle an unclear execute ---------------------------------------------------

    def _begin_settling(self, job: JobRun, handle: ExecutionHandle) -> None:
        now = self.clock.monotonic()
        job.handle = handle
        job.next_poll = now
        self._settling[job.name] = job
        self._settle_since[job.name] = now

    def _settle_due(self, now: float) -> None:
        for job in list(self._settling.values()):
            if job.name in self._settle_busy or job.next_poll > now:
                continue
            self._settle_busy.add(job.name)
            assert job.handle is not None
            read = functools.partial(self._settle_read, job.handle)

            def done(future: Future[SettleRead], job: JobRun = job) -> None:
                self._settle_busy.discard(job.name)
                error = future.exception()
                if error is not None and not isinstance(error, ApiError):
                    raise error
                if isinstance(error, ApiError):
                    # its retries are spent: the API is unusable, as when a poll fails; the
                    # job stays "starting" (may be running) for a resume to settle
                    log.warning("job_settle_failed", job=job.name, error=str(error))
                    self.stopping.abort(error, now=self.clock.monotonic(), hard=True)
                    self._wake.set()
                    return
                at, history, job.handle = future.result()
                window = job.planned.job.settle_window
                self._settled(job, lifecycle.settle(job.handle, history, at, window))

            self.calls.submit(read, done, URGENT)

    def _settle_read(self, handle: ExecutionHandle) -> SettleRead:
        """(a lower bound of the read's time on Celonis' clock, the history, the handle with its
        send bounded). A handle saved without Celonis times (killed while its POST was out) is
        bounded from this run's measured offset: sent at or after its local time, and before
        this run started."""
        local = self.clock.time()  # before the read: the read is no earlier
        history = self.api.execution_history(handle.pool_id, handle.job_id, lifecycle.HISTORY_LIMIT)
        if handle.since_ms is None and handle.running_at_ms is None:
            handle = dataclasses.replace(
                handle,
                since_ms=self.api.celonis_floor_ms(handle.sent_at),
                until_ms=self.api.celonis_ceiling_ms(self.state.started_at),
            )
        return self.api.celonis_floor_ms(local), history, handle

    def _settled(self, job: JobRun, outcome: Settlement) -> None:
        if job.name not in self._settling or job.state != JobState.STARTING:
            return
        now = self.clock.monotonic()
        handle = job.handle
        assert handle is not None
        if outcome is Settlement.STARTED:
            del self._settling[job.name]
            job.resend_allowed = False
            self._watch(job, handle, job.started_at or handle.sent_at or self.clock.time())
            self._set(job, JobState.RUNNING, note="its execute took effect")
            if self.stopping.reason is not None and self.cancel_on_stop:
                self._cancel(job, self.stopping.reason)
        elif outcome is Settlement.NO_EXECUTION and job.resend_allowed:
            del self._settling[job.name]
            self._resend(job)
        elif outcome is Settlement.NO_EXECUTION or lifecycle.settle_overdue(
            now - self._settle_since[job.name],
            # a resumed job's window runs from this run's start (its send's bound): twice
            # the window is past it whatever the clocks; a live one ends at its window
            job.planned.job.settle_window * (2 if job.resend_allowed else 1),
        ):
            self._finish_job(job, JobState.UNCLEAR, unclear_message(job))
        else:
            job.next_poll = now + job.planned.job.poll_interval

    def _resend(self, job: JobRun) -> None:
        """A resumed job whose earlier execute shows no execution a full settle window after
        it: send it again (a 409 now is that earlier execute, taken as ours)."""
        spec = job.planned.job
        log.warning(
            "job_resent_after_unclear",
            job=job.name,
            pool=spec.pool,
            window=format_duration(spec.settle_window),
            note="the execution history shows no execution since the earlier execute",
        )
        self._set(job, JobState.PENDING)  # starts as any job does; resend_allowed stays
        self._wake.set()

    # -- polling -------------------------------------------------------------------

    def _poll_due(self, now: float) -> None:
        for pool, polled in self.index.polled.items():
            if not polled or pool in self._polling or self.index.pool_due.get(pool, now) > now:
                continue
            self._polling.add(pool)
            jobs = list(polled.values())
            pool_id = jobs[0].planned.job.pool_id
            ids = [j.planned.job.job_id for j in jobs]
            done = functools.partial(self._polled, pool, jobs)
            self.calls.submit(functools.partial(self.api.pool_statuses, pool_id, ids), done)

    def _polled(self, pool: str, jobs: list[JobRun], future: Future[dict[str, JobStatus]]) -> None:
        self._polling.discard(pool)
        error = future.exception()
        if isinstance(error, ApiError):
            self.stopping.abort(error, now=self.clock.monotonic(), hard=True)
            self._wake.set()
            return
        if error is not None:
            raise error
        self._apply_statuses(pool, jobs, future.result())

    def _apply_statuses(
        self, pool: str, jobs: list[JobRun], statuses: Mapping[str, JobStatus]
    ) -> None:
        for job in jobs:
            status = statuses.get(job.planned.job.job_id)
            if status is None or job.name in self._reason_pending:
                continue
            if job.state in (JobState.RUNNING, JobState.WAITING):
                self._observe(job, status)
        self.index.pool_due[pool] = min(
            (j.next_poll for j in self.index.polled.get(pool, {}).values()),
            default=self.clock.monotonic(),
        )

    def _observe(self, job: JobRun, status: JobStatus) -> None:
        spec = job.planned.job
        if status.status != job.remote_status:
            if status.is_unknown:
                log.warning(
                    "job_status_unknown", job=job.name, pool=spec.pool, status=status.status
                )
            job.remote_status = status.status
        assert job.handle is not None
        self._judged(job, lifecycle.judge_status(job.handle, status), status.status)

    def _judged(self, job: JobRun, verdict: Verdict, outcome: str | None) -> None:
        """Act on what an observation says of the run `job.handle` claims."""
        if verdict is Verdict.NEEDS_HISTORY:
            self._read_history(job)
            return
        if verdict is Verdict.FINISHED:
            if job.state == JobState.WAITING:
                self._other_run_ended(job, outcome)
            else:
                self._ended(job, outcome)
            return
        if job.state == JobState.WAITING and verdict is Verdict.NOT_YET:
            self._other_run_ended(job, None)  # nothing running any more
            return
        self._poll_later(job)

    def _poll_later(self, job: JobRun) -> None:
        spec = job.planned.job
        now = self.clock.monotonic()
        if job.state == JobState.WAITING:
            job.next_poll = now + job.interval
            return
        elapsed = now - (job.started_mono or now)
        job.interval = lifecycle.poll_interval(
            elapsed, spec.poll_interval, spec.max_poll_interval, cancelling=bool(job.cancel_reason)
        )
        job.next_poll = now + job.interval

    def _read_history(self, job: JobRun) -> None:
        """A status showed an end it cannot tie to our execution: the history tells."""
        if job.name in self._history_pending:
            return
        self._history_pending.add(job.name)
        spec = job.planned.job
        read = functools.partial(
            self.api.execution_history, spec.pool_id, spec.job_id, lifecycle.HISTORY_LIMIT
        )

        def done(future: Future[list[ExecutionInfo]]) -> None:
            self._history_pending.discard(job.name)
            error = future.exception()
            if error is not None and not isinstance(error, ApiError):
                raise error
            if job.state not in (JobState.RUNNING, JobState.WAITING) or job.handle is None:
                return
            if error is not None:
                log.warning("job_history_unavailable", job=job.name, error=str(error))
                self._poll_later(job)
                return
            history = future.result()
            verdict = lifecycle.judge_history(job.handle, history)
            if verdict is Verdict.NOT_YET and job.state == JobState.WAITING:
                verdict = Verdict.ACTIVE  # its end is not in the history yet: keep waiting
            self._judged(job, verdict, lifecycle.outcome_in_history(job.handle, history))

        self.calls.submit(read, done, URGENT)

    def _other_run_ended(self, job: JobRun, outcome: str | None) -> None:
        log.info(
            "job_external_run_ended",
            job=job.name,
            pool=job.planned.job.pool,
            status=outcome,
        )
        job.handle = None
        self._set(job, JobState.PENDING)
        self._wake.set()

    def _ended(self, job: JobRun, outcome: str | None) -> None:
        """Celonis shows our execution ended: the only way a job gets a final remote outcome."""
        if outcome == "FAIL":
            self._fetch_failure_reason(job)
            return
        self._conclude(job, outcome)
        self._fetch_task_results(job)

    def _conclude(self, job: JobRun, outcome: str | None) -> None:
        """The final state of a job whose execution ended other than FAIL."""
        if outcome == "CANCEL" and job.cancelled_before and job.cancel_reason is None:
            self._run_again(job)
        elif outcome == "SUCCESS":
            self._finish_job(job, JobState.SUCCEEDED, None)
        elif job.name in self._timed_out:
            limit = format_duration(job.planned.job.timeout)
            self._finish_job(
                job, JobState.TIMED_OUT, f"timed out after {limit}; cancelled in Celonis"
            )
        elif job.cancel_reason is not None:
            # fail-fast's and a stop's cancellations: what waited on it is "not started"
            self._finish_job(
                job, JobState.CANCELLED, f"cancelled: {job.cancel_reason}", propagate=False
            )
        else:
            self._finish_job(job, JobState.CANCELLED, f"ended as {outcome} in Celonis")

    def _run_again(self, job: JobRun) -> None:
        """The earlier run's stop cancelled this job's execution: this run executes it anew
        (after its dependencies, which succeeded, as any job)."""
        job.cancelled_before = False
        job.handle = None
        log.info(
            "job_cancelled_by_earlier_stop",
            job=job.name,
            pool=job.planned.job.pool,
            note="the earlier run cancelled it when it was stopped; executing it again",
        )
        self._set(job, JobState.PENDING)
        self._wake.set()

    def _fetch_failure_reason(self, job: JobRun) -> None:
        """Read why it failed (with its tasks' results), then end it: its failure is logged
        before its dependents' skips."""
        spec = job.planned.job
        self._reason_pending.add(job.name)

        def read() -> tuple[JobTasks | None, str | None]:
            job_tasks = self._read_task_results(job)
            if job_tasks is not None:
                return job_tasks, failure_text(job_tasks.results)
            return None, self.api.failure_reason(spec.pool_id, spec.job_id)

        def done(future: Future[tuple[JobTasks | None, str | None]]) -> None:
            self._reason_pending.discard(job.name)
            error = future.exception()
            if isinstance(error, ApiError):
                log.warning("job_failure_reason_unavailable", job=job.name, error=str(error))
            elif error is not None:
                raise error
            job_tasks, reason = (None, None) if error is not None else future.result()
            if job_tasks is not None:
                job.tasks, job.task_list = job_tasks.results, job_tasks.task_list
            message = f"FAIL: {reason}" if reason else "FAIL (Celonis gave no reason)"
            self._finish_job(job, JobState.FAILED, message)

        self.calls.submit(read, done, URGENT)

    def _read_task_results(self, job: JobRun) -> JobTasks | None:
        """The job's task results (issue 12), or None when they cannot be read: a client without
        them (a test double), or an API error (logged; the job's outcome stands)."""
        reader = getattr(self.api, "task_results", None)
        if reader is None:
            return None
        spec = job.planned.job
        try:
            found: JobTasks = reader(spec.pool_id, spec.job_id)
            return found
        except ApiError as error:
            log.warning("job_task_results_unavailable", job=job.name, error=str(error))
            return None

    def _fetch_task_results(self, job: JobRun) -> None:
        """After the job's final state: read its tasks' results without holding anything up;
        the run waits for the read before it ends, and the state file gets the results."""
        if getattr(self.api, "task_results", None) is None:
            return

        def done(future: Future[JobTasks | None]) -> None:
            error = future.exception()
            if error is not None:
                raise error
            job_tasks = future.result()
            if job_tasks is not None:
                job.tasks, job.task_list = job_tasks.results, job_tasks.task_list
                for listener in self.listeners:  # the state file notes the job again
                    listener(self.state, job)

        # A background read: at 10,000 jobs these reads were a quarter of the runner's CPU,
        # and taken first come first served they held up the executes of ready jobs.
        self.calls.submit(functools.partial(self._read_task_results, job), done, BACKGROUND)
