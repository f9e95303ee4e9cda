"""`CelonisJobOperator`: execute one Celonis data job through the runner's client and wait for its end.

The execute goes through `CelonisClient.execute` (reads the status first, never
re-sends a POST whose outcome is unknown). A run someone else started is waited
for first, as `run` does. The wait is deferred to `CelonisJobTrigger` (no worker
slot held) or, with `deferrable=False`, polled here. The task fails with
Celonis' ERROR lines when the job fails (for good: a retry is for failures
outside Celonis). The job's `timeout` and `execution_timeout` (honoured while
deferred too) cancel it in Celonis; what a user's action on a deferred task
does is the trigger's `on_kill` (docs/airflow.md, "Operations"). A task
killed while not deferred cancels its job.

An Airflow retry never repeats an execute blindly: a later try first looks at
the job's execution history; an execution that began after this DAG run
started (on Celonis' clock, measured from its answers) is an earlier try's:
still running, it is waited for as ours; succeeded, the task is done. When
none shows yet, a 409 to the retry's execute is that earlier execute. The
decisions are `runner.lifecycle`'s, the same as `run`'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTimeout,
    TaskDeferralTimeout,
)

from runner import lifecycle
from runner.airflow.credentials import (
    DEFAULT_CONN_ID,
    ApiSettings,
    make_client,
    make_clock,
    time_scale,
)
from runner.airflow.hooks import endpoint_for, lookup_connection
from runner.airflow.triggers import CelonisJobTrigger
from runner.airflow.watch import Outcome, Wait
from runner.api import (
    ApiError,
    CelonisClient,
    ExecutionHandle,
    JobBusyError,
    JobStatus,
    UnclearExecuteError,
)
from runner.durations import format_duration
from runner.errors import RunnerError
from runner.lifecycle import Settlement
from runner.manifest.model import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MODE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SETTLE_WINDOW,
    DEFAULT_TIMEOUT,
)
from runner.shared_types import Mode

DEFAULT_RETRIES = 1
"""A retry is safe (it adopts the earlier try's execution, never executes blindly), and it
covers Airflow 3.3's race with quick triggers that fails a task whose job succeeded."""


KILL_CHECK_INTERVAL = 0.2
"""Real seconds between looks at the kill flag while the worker waits for the next poll."""


class CelonisJobOperator(BaseOperator):
    """Execute the Celonis data job `job_id` of data pool `pool_id` (`mode` FULL or DELTA) and wait.

    Credentials: the Airflow connection `conn_id` (type `celonis`), else the
    environment variables `settings` name (from the manifest). `timeout`,
    `poll_interval` and `max_poll_interval` are seconds, as in the manifest.
    """

    template_fields = ("pool_id", "job_id", "mode")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        pool_id: str,
        job_id: str,
        mode: Mode = DEFAULT_MODE,
        conn_id: str | None = DEFAULT_CONN_ID,
        settings: ApiSettings | None = None,
        job_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        settle_window: float = DEFAULT_SETTLE_WINDOW,
        deferrable: bool = True,
        environ: Mapping[str, str] | None = None,
        retries: int = DEFAULT_RETRIES,
        names_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(retries=retries, **kwargs)
        self.names_task_id = names_task_id
        """The task that looked up this DAG run's Celonis names: a job given by `celonis_name`
        (no `pool_id`/`job_id`) takes its ids from that task's XCom (runner.airflow.names)."""
        self.pool_id = pool_id
        self.job_id = job_id
        self.mode = mode
        self.api_settings = settings or ApiSettings(conn_id=conn_id)
        self.job_name = job_name or self.task_id
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.settle_window = settle_window
        self.deferrable = deferrable
        self._environ = environ
        self._killed = threading.Event()
        self._active: tuple[CelonisClient, Wait] | None = None
        self._sending: CelonisClient | None = None
        """Set while the execute request is out: a kill then may have hit after it took effect."""
        self._execution_deadline: float | None = None
        """Real epoch seconds when `execution_timeout` is reached (from the try's start)."""

    # -- Airflow entry points ------------------------------------------------------

    def execute(self, context: Context) -> dict[str, str]:
        if self.mode not in ("FULL", "DELTA"):
            raise AirflowFailException(
                f"job {self.job_name!r}: mode must be FULL or DELTA, not {self.mode!r}"
            )
        self._execution_deadline = self._deadline_of(context)
        self._take_ids(context)
        client = self._client()
        wait = self._earlier_try(context, client)
        if isinstance(wait, dict):
            return wait
        return self._wait(client, wait or self._start(client))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, str]:
        """Resumed from the trigger: its event says how the wait ended."""
        self._execution_deadline = self._deadline_of(context)
        self._take_ids(context)
        wait = Wait.from_dict(event["wait"])
        return self._finish(self._client(), Outcome(event["outcome"]), wait, event.get("message"))

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """As Airflow's; when the deferral timed out (`execution_timeout`, passed to `defer`, and
        the triggerer did not end the wait itself first), our run is cancelled in Celonis."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            self._cancel_this_runs_execution(context)
            raise

    def on_kill(self) -> None:
        """Airflow is killing the running (not deferred) task: cancel our run. The worker cannot
        tell why (execution_timeout, marked failed or success, cleared), so it always cancels."""
        self._killed.set()
        active, sending = self._active, self._sending
        if sending is not None:  # killed with its execute out: it may have started, so cancel
            client, pool_id, job_id = sending, self.pool_id, self.job_id
        elif active is not None and active[1].kind == "ours":
            client, pool_id, job_id = active[0], active[1].pool_id, active[1].job_id
        else:
            return
        try:
            client.cancel(pool_id, job_id)
        except ApiError as error:
            self.log.error("job %s: could not cancel it in Celonis: %s", self.job_name, error)
            return
        self.log.warning("job %s: task killed; cancelled in Celonis", self.job_name)

    # -- steps ---------------------------------------------------------------------

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def _client(self) -> CelonisClient:
        try:
            return connect(self.api_settings, self.environ)
        except RunnerError as error:
            raise AirflowException(f"job {self.job_name!r}: {error}") from None

    def _take_ids(self, context: Context) -> None:
        """A job given by name: its ids as this DAG run's names task looked them up."""
        if self.names_task_id is None or (self.pool_id and self.job_id):
            return
        ids = context["ti"].xcom_pull(task_ids=self.names_task_id)
        pair = ids.get(f"jobs.{self.job_name}") if isinstance(ids, dict) else None
        if not pair:
            raise AirflowFailException(
                f"job {self.job_name!r}: given by celonis_name, and the task"
                f" {self.names_task_id!r} of this DAG run holds no ids for it"
            )
        self.pool_id, self.job_id = str(pair[0]), str(pair[1])
        self.log.info(
            "job %s: pool %s, job %s (its names, as looked up in this DAG run)",
            self.job_name,
            self.pool_id,
            self.job_id,
        )

    def _start(self, client: CelonisClient, resend_of: ExecutionHandle | None = None) -> Wait:
        """Execute the job; a run someone else started is waited for first. `resend_of`: an
        earlier try's execute may have taken effect (a 409 then is that execute: ours)."""
        now = time.time()
        self._sending = client  # left set if a kill interrupts the execute (see on_kill)
        try:
            handle = client.execute(self.pool_id, self.job_id, self.mode, resend_of=resend_of)
        except JobBusyError as busy:
            self._sending = None
            self.log.info(
                "job %s is already %s in Celonis (started by someone else); ours starts when it ends",
                self.job_name,
                busy.job_status.status,
            )
            other = busy.claim(self.mode, 0.0)
            return Wait.of("external", other, now=now, **self._timing())
        except UnclearExecuteError as unclear:
            self._sending = None
            return self._settle(client, unclear.handle, str(unclear))
        except ApiError as error:
            self._sending = None
            raise AirflowException(f"job {self.job_name!r}: {error}") from None
        self._sending = None
        self.log.info("job %s executed (%s) in pool %s", self.job_name, self.mode, self.pool_id)
        return Wait.of("ours", handle, now=now, **self._timing())

    def _timing(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "poll": (self.poll_interval, self.max_poll_interval),
            "scale": time_scale(self.environ),
        }

    def _settle(self, client: CelonisClient, handle: ExecutionHandle, why: str) -> Wait:
        """The execute got no clear answer: read the history until it shows our execution,
        within the settle window; never send the execute again in this try."""
        self.log.warning("job %s: %s; looking for it in the execution history", self.job_name, why)
        scale = time_scale(self.environ)
        started = time.time()
        while not self._killed.is_set():
            try:
                at = client.celonis_floor_ms()
                history = client.execution_history(
                    self.pool_id, self.job_id, lifecycle.HISTORY_LIMIT
                )
            except ApiError as error:
                self.log.warning("job %s: the history could not be read: %s", self.job_name, error)
                history, at = [], 0
            outcome = lifecycle.settle(handle, history, at, self.settle_window)
            if outcome is Settlement.STARTED:
                self.log.info("job %s: its execute took effect", self.job_name)
                return Wait.of("ours", handle, now=started, **self._timing())
            overdue = lifecycle.settle_overdue((time.time() - started) * scale, self.settle_window)
            if outcome is Settlement.NO_EXECUTION or overdue:
                break
            self._pause(self.poll_interval / scale)
        raise AirflowException(
            f"job {self.job_name!r}: unclear: its execute got no clear answer and Celonis showed"
            f" no execution of it within {format_duration(self.settle_window)}; a retry of this"
            " task looks again and executes it only if Celonis still shows none"
        )

    def _earlier_try(self, context: Context, client: CelonisClient) -> Wait | dict[str, str] | None:
        """On a retry: the run an earlier try of this DAG run started, if Celonis shows one.

        An execution that began at or after the DAG run's start (on Celonis' clock, measured)
        is an earlier try's: still running, it is waited for as ours; succeeded, the task is
        done; ended otherwise, a new one is executed. None shown: the execute is sent with the
        earlier try's claim, so that a 409 (the earlier execute, seen late) is taken as ours.
        """
        claim = self._run_claim(context, client)
        if context["ti"].try_number <= 1 or claim is None:
            return None
        try:
            history = client.execution_history(self.pool_id, self.job_id, lifecycle.HISTORY_LIMIT)
        except ApiError as error:
            raise AirflowException(f"job {self.job_name!r}: {error}") from None
        item = lifecycle.ours_in_history(claim, history)
        if item is None:
            return self._start(client, resend_of=claim)
        if item.in_progress:
            self.log.info(
                "job %s: an execution started by an earlier try is %s: waiting for it, not executing again",
                self.job_name,
                item.status,
            )
            return Wait.of("ours", claim, now=time.time(), **self._timing())
        if item.status == "SUCCESS":
            self.log.info(
                "job %s: an earlier try's execution succeeded; not executing again", self.job_name
            )
            return self._result("SUCCESS")
        return None  # the earlier try's run ended unsuccessfully: a retry executes anew

    def _run_claim(self, context: Context, client: CelonisClient) -> ExecutionHandle | None:
        """The claim on executions that began since this DAG run started (None before it
        started): the DAG run's start on the client's clock (scaled in tests), then on Celonis'."""
        since = context["dag_run"].start_date
        if since is None:
            return None
        ago = (time.time() - since.timestamp()) * time_scale(self.environ)
        local = client.clock.time() - ago
        return ExecutionHandle(
            self.pool_id,
            self.job_id,
            self.mode,
            JobStatus(self.job_id, None),
            0.0,
            1,
            sent_at=local,
            since_ms=client.celonis_floor_ms(local),
        )

    def _wait(self, client: CelonisClient, wait: Wait) -> dict[str, str]:
        if self.deferrable:
            self._active = None  # from here the trigger owns the wait (and its on_kill)
            deadline = self._execution_deadline
            wait = wait.with_execution_deadline(deadline)
            self.defer(
                trigger=CelonisJobTrigger(wait.to_dict(), self.api_settings.to_dict()),
                method_name="execute_complete",
                timeout=None
                if deadline is None
                else timedelta(seconds=max(1.0, deadline - time.time())),
            )
        self._active = (client, wait)
        while not self._killed.is_set():
            if wait.timed_out(time.time()):
                return self._finish(client, Outcome.TIMEOUT, wait)
            try:
                status = client.pool_statuses(self.pool_id, [self.job_id])[self.job_id]
                step = wait.observe(status, time.time())
                if step.read_history:
                    history = client.execution_history(
                        self.pool_id, self.job_id, lifecycle.HISTORY_LIMIT
                    )
                    step = wait.observe_history(history, time.time())
            except ApiError as error:
                return self._finish(client, Outcome.ERROR, wait, str(error))
            wait = step.wait
            self._active = (client, wait)
            if step.outcome is not None:
                return self._finish(client, step.outcome, wait)
            self._pause(step.sleep)
        raise AirflowException(f"job {self.job_name!r}: the task was killed; cancelled in Celonis")

    def _pause(self, seconds: float) -> None:
        """Sleep until the next poll or a kill. Not `Event.wait`: Airflow's execution_timeout
        raises from a signal handler, which inside a Condition's lock leaves "release unlocked
        lock" instead of the timeout (and then on_kill's cancel may not come); a plain sleep
        lets the timeout through."""
        end = time.monotonic() + seconds
        while not self._killed.is_set() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, KILL_CHECK_INTERVAL))

    def _finish(
        self, client: CelonisClient, outcome: Outcome, wait: Wait, message: str | None = None
    ) -> dict[str, str]:
        self._active = None
        if outcome is Outcome.SUCCESS:
            self.log.info("job %s succeeded in Celonis", self.job_name)
            return self._result("SUCCESS")
        if outcome is Outcome.EXECUTION_TIMEOUT:
            limit = format_duration(self._execution_timeout_seconds())
            raise AirflowTaskTimeout(
                f"job {self.job_name!r}: execution_timeout ({limit}) reached while waiting;"
                f" {self._cancel_on_timeout(client, wait)}"
            )
        if outcome is Outcome.EXTERNAL_ENDED:
            self.log.info(
                "job %s: the run started by someone else ended; executing ours", self.job_name
            )
            return self._wait(client, self._start(client))
        # a job that ended in Celonis (failed, cancelled, its timeout) is not run again by a
        # retry, as `run` does not; an API error is retried (the retry adopts the execution)
        final = outcome is not Outcome.ERROR
        error = AirflowFailException if final else AirflowException
        raise error(f"job {self.job_name!r}: {self._failure(client, outcome, wait, message)}")

    def _failure(
        self, client: CelonisClient, outcome: Outcome, wait: Wait, message: str | None
    ) -> str:
        if outcome is Outcome.FAIL:
            reason = client.failure_reason(self.pool_id, self.job_id)
            return f"FAIL: {reason}" if reason else "FAIL (Celonis gave no reason)"
        if outcome is Outcome.TIMEOUT and wait.kind == "external":
            return (
                "an execution started outside Airflow was still running after"
                f" {format_duration(self.timeout)}; ours was not started"
            )
        if outcome is Outcome.TIMEOUT:
            return f"timed out after {format_duration(self.timeout)}; {self._cancel_on_timeout(client, wait)}"
        if outcome is Outcome.ERROR:
            return (
                f"{message}; the job may still be running in Celonis: a retry of this task waits"
                " for it instead of executing again"
            )
        return f"ended as {outcome.value} in Celonis"

    def _cancel_on_timeout(self, client: CelonisClient, wait: Wait) -> str:
        """Cancel our run (never one someone else started); says what happened."""
        if wait.kind != "ours":
            return "the run started outside Airflow was left alone; ours was not started"
        try:
            client.cancel(self.pool_id, self.job_id)
        except ApiError as error:
            return f"cancelling it in Celonis failed: {error}"
        return "cancelled in Celonis"

    def _deadline_of(self, context: Context) -> float | None:
        """When `execution_timeout` is reached: from the try's start (kept across deferrals)."""
        if self.execution_timeout is None:
            return None
        started = getattr(context["ti"], "start_date", None)
        begin = time.time() if started is None else started.timestamp()
        return begin + self.execution_timeout.total_seconds()

    def _execution_timeout_seconds(self) -> float:
        return 0.0 if self.execution_timeout is None else self.execution_timeout.total_seconds()

    def _cancel_this_runs_execution(self, context: Context) -> None:
        """After a deferral timeout: cancel the execution this DAG run started, if one still
        runs (judged as a retry judges it: `_run_claim`)."""
        try:
            self._take_ids(context)
            client = self._client()
            claim = self._run_claim(context, client)
            if claim is None:
                return
            history = client.execution_history(self.pool_id, self.job_id, lifecycle.HISTORY_LIMIT)
            item = lifecycle.ours_in_history(claim, history)
            if item is None or not item.in_progress:
                return
            client.cancel(self.pool_id, self.job_id)
        except (ApiError, AirflowException) as error:
            self.log.error("job %s: could not cancel it in Celonis: %s", self.job_name, error)
            return
        self.log.warning(
            "job %s: execution_timeout reached while deferred; cancelled in Celonis", self.job_name
        )

    def _result(self, status: str) -> dict[str, str]:
        """The XCom value: what ran and how it ended (never a credential)."""
        return {
            "job": self.job_name,
            "pool_id": self.pool_id,
            "job_id": self.job_id,
            "status": status,
        }


def connect(settings: ApiSettings, environ: Mapping[str, str]) -> CelonisClient:
    """A client for `settings` (its Airflow connection, else the manifest's variables); RunnerError
    when neither gives a usable endpoint."""
    endpoint = endpoint_for(settings, lookup_connection(settings.conn_id), environ)
    return make_client(endpoint, make_clock(environ), environ)
