"""The executor's scheduling decisions, driven with the fake clock and a fake API: no threads,
no sleeps (calls run inline; time moves only when the executor waits)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from runner.api.errors import AuthError, NetworkError, ServerError, UnclearExecuteError
from runner.api.types import ExecutionHandle, JobStatus
from runner.execution.executor import Executor
from runner.execution.io import NORMAL, InlineCalls, OnDone
from runner.execution.runstate import JobRun, JobState, ResumeFrom, RunState
from runner.plan.build import Plan
from tests.emulator_fixtures import FakeClock
from tests.fake_celonis import FakeCelonis, job, plan_of

T0 = 1000.0
"""The fake clock's start."""


def executor(plan: Plan, api: FakeCelonis, **options: Any) -> Executor:
    return Executor(plan, api, api.clock, calls=InlineCalls, **options)


def run(plan: Plan, api: FakeCelonis, **options: Any) -> RunState:
    return executor(plan, api, **options).run()


def states(state: RunState) -> dict[str, JobState]:
    return {name: j.state for name, j in state.jobs.items()}


def may_still_run(state: RunState) -> set[str]:
    """What reports list as "may still be running in Celonis"."""
    return {n for n, j in state.jobs.items() if j.report_status in ("running", "unclear")}


def fake(**fields: Any) -> FakeCelonis:
    return FakeCelonis(FakeClock(), **fields)


# -- starting -----------------------------------------------------------------------


def test_a_job_starts_in_the_pass_that_sees_its_last_dependency_end() -> None:
    api = fake(durations={"a": 45.0, "b": 30.0})
    state = run(plan_of(job("a"), job("b", "a")), api)
    assert states(state) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    (b_started,) = api.times("execute", "b")
    seen_end = [t for t in api.times("status", "a") if t >= T0 + 45.0]
    assert b_started == seen_end[0]  # the read that saw a end, then b at once
    assert seen_end[0] - (T0 + 45.0) <= 10.0  # within one poll interval of a's end


def test_pool_limit_and_max_parallel_are_kept_and_used() -> None:
    jobs = [job(f"s{i}") for i in range(5)] + [job(f"c{i}", pool="crm") for i in range(5)]
    api = fake()
    state = run(plan_of(*jobs, limits={"sap": 2}), api)
    assert set(states(state).values()) == {JobState.SUCCEEDED}
    assert api.max_concurrent(f"s{i}" for i in range(5)) == 2
    assert api.max_concurrent(f"c{i}" for i in range(5)) == 5

    api = fake()
    run(plan_of(*jobs, limits={"sap": 2}, max_parallel=3), api)
    assert api.max_concurrent([j.name for j in jobs]) == 3


def test_a_job_that_waits_for_a_slot_says_so_once() -> None:
    api = fake()
    with capture_logs() as logs:
        run(plan_of(job("a"), job("b"), job("c"), limits={"sap": 1}), api)
    waits = [e for e in logs if e["event"] == "job_waiting_for_slot"]
    assert [(e["job"], e["reason"]) for e in waits] == [
        ("b", "1/1 running in sap"),
        ("c", "1/1 running in sap"),
    ]


def test_max_parallel_wait_is_announced() -> None:
    api = fake()
    with capture_logs() as logs:
        run(plan_of(job("a"), job("b", pool="crm"), max_parallel=1), api)
    waits = [(e["job"], e["reason"]) for e in logs if e["event"] == "job_waiting_for_slot"]
    assert waits == [("b", "1/1 running (max_parallel)")]


def test_a_selection_warns_about_dependencies_assumed_done() -> None:
    api = fake()
    plan = plan_of(job("a"), job("b", "a"), job("c", "b"), select=("c",))
    with capture_logs() as logs:
        run(plan, api)
    (warning,) = [e for e in logs if e["event"] == "dependencies_assumed_done"]
    assert warning["jobs"] == ["b"] and warning["log_level"] == "warning"


def test_attempt_counts_only_our_executes() -> None:
    api = fake(busy_until={"a": T0 + 25.0})
    state = run(plan_of(job("a")), api)
    a = state.jobs["a"]
    assert a.state == JobState.SUCCEEDED
    assert len(api.runs["a"]) == 1 and a.attempts == 1
    assert len(api.times("execute", "a")) == 2  # refused once: someone else's run


# -- failures ---------------------------------------------------------------------


def test_a_failure_skips_its_dependents_only_and_is_logged_first() -> None:
    api = fake(outcomes={"a": "FAIL"})
    plan = plan_of(job("a"), job("b", "a"), job("c", "b"), job("d"))
    with capture_logs() as logs:
        state = run(plan, api)
    assert states(state) == {
        "a": JobState.FAILED,
        "b": JobState.SKIPPED,
        "c": JobState.SKIPPED,
        "d": JobState.SUCCEEDED,
    }
    assert state.jobs["a"].error == "FAIL: table T missing"
    assert state.status == "failed"
    order = [e["event"] for e in logs if e["event"] in ("job_failed", "job_skipped")]
    assert order == ["job_failed", "job_skipped", "job_skipped"]
    assert not api.times("execute", "b")


def test_allow_failure_lets_dependents_run() -> None:
    api = fake(outcomes={"a": "FAIL"})
    state = run(plan_of(job("a", allow_failure=True), job("b", "a")), api)
    assert states(state) == {"a": JobState.FAILED, "b": JobState.SUCCEEDED}
    assert state.status == "succeeded"


def test_fail_fast_cancels_and_waits_for_celonis_to_confirm() -> None:
    api = fake(outcomes={"a": "FAIL"}, durations={"a": 20.0, "b": 600.0})
    plan = plan_of(job("a"), job("b", pool="crm"), job("c", "b", pool="crm"))
    confirmations: list[tuple[float, JobState]] = []

    def listen(state: RunState, j: JobRun) -> None:
        if j.name == "b":
            confirmations.append((api.clock.monotonic(), j.state))

    state = run(plan, api, fail_fast=True, listeners=[listen])
    (cancel_at,) = api.times("cancel", "b")
    assert states(state) == {
        "a": JobState.FAILED,
        "b": JobState.CANCELLED,
        "c": JobState.NOT_STARTED,
    }
    ended_at, ended = confirmations[-1]
    assert ended == JobState.CANCELLED and ended_at >= cancel_at + api.cancel_delay
    assert ended_at - (cancel_at + api.cancel_delay) <= 2.0  # read at the short interval
    assert state.jobs["b"].cancel_reason == "--fail-fast after a failed"
    assert state.status == "failed" and may_still_run(state) == set()


def test_a_failing_cancel_leaves_the_job_watched_until_it_ends() -> None:
    api = fake(outcomes={"a": "FAIL"}, durations={"a": 20.0, "b": 50.0}, cancel_fails={"b"})
    state = run(plan_of(job("a"), job("b", pool="crm")), api, fail_fast=True)
    assert api.times("cancel", "b")
    assert state.jobs["b"].state == JobState.SUCCEEDED  # not "cancelled": Celonis ran it


def test_an_unconfirmed_cancel_is_still_running_when_the_grace_ends() -> None:
    api = fake(outcomes={"a": "FAIL"}, durations={"a": 20.0, "b": 900.0}, cancel_ignored={"b"})
    state = run(plan_of(job("a"), job("b", pool="crm")), api, fail_fast=True, grace=30.0)
    assert state.jobs["b"].state == JobState.RUNNING
    assert may_still_run(state) == {"b"}
    assert api.clock.monotonic() <= T0 + 20.0 + 10.0 + 30.0 + 1.0


def test_fail_fast_does_not_wait_for_someone_elses_run() -> None:
    api = fake(busy_until={"busy": T0 + 36000.0}, outcomes={"broken": "FAIL"})
    plan = plan_of(job("busy"), job("broken", pool="crm"))
    state = run(plan, api, fail_fast=True)
    assert states(state) == {"busy": JobState.NOT_STARTED, "broken": JobState.FAILED}
    assert state.jobs["busy"].error == "not started: --fail-fast after broken failed"
    assert "busy" not in api.runs and api.clock.monotonic() - T0 < 120.0


# -- timeouts -----------------------------------------------------------------------


def test_a_timeout_is_reported_once_celonis_confirms_the_cancel() -> None:
    api = fake(durations={"a": 3600.0})
    state = run(plan_of(job("a", timeout=600.0), job("b", "a")), api)
    a = state.jobs["a"]
    assert a.state == JobState.TIMED_OUT
    assert a.error == "timed out after 10m; cancelled in Celonis"
    (cancel_at,) = api.times("cancel", "a")
    assert T0 + 600.0 <= cancel_at <= T0 + 600.0 + 1.0
    assert state.jobs["b"].state == JobState.SKIPPED


def test_a_timeout_whose_cancel_is_never_confirmed_ends_unclear() -> None:
    api = fake(durations={"a": 3600.0}, cancel_ignored={"a"})
    state = run(plan_of(job("a", timeout=600.0)), api, grace=60.0)
    a = state.jobs["a"]
    assert a.state == JobState.UNCLEAR and "did not confirm the cancel" in (a.error or "")
    assert may_still_run(state) == {"a"}


def test_waiting_for_someone_elses_run_times_out_without_a_cancel() -> None:
    api = fake(busy_until={"busy": T0 + 36000.0})
    state = run(plan_of(job("busy", timeout=1200.0)), api)
    busy = state.jobs["busy"]
    assert busy.state == JobState.TIMED_OUT
    assert busy.error == "an execution started outside this run was still running after 20m"
    assert not api.times("cancel") and "busy" not in api.runs  # not ours to cancel


def test_if_running_adopt_counts_someone_elses_run_and_sends_nothing() -> None:
    api = fake(busy_until={"busy": T0 + 300.0}, external_outcome={"busy": "SUCCESS"})
    state = run(plan_of(job("busy", if_running="adopt"), job("after", "busy")), api)
    busy = state.jobs["busy"]
    assert states(state) == {"busy": JobState.SUCCEEDED, "after": JobState.SUCCEEDED}
    assert busy.attempts == 0 and "busy" not in api.runs  # no execute of ours
    assert api.times("execute", "after")[0] >= T0 + 300.0  # its dependent waited for that end


def test_if_running_adopt_takes_the_outcome_of_that_run() -> None:
    api = fake(busy_until={"busy": T0 + 300.0}, external_outcome={"busy": "FAIL"})
    state = run(plan_of(job("busy", if_running="adopt"), job("after", "busy")), api)
    assert states(state) == {"busy": JobState.FAILED, "after": JobState.SKIPPED}


def test_if_running_fail_fails_the_job_at_once() -> None:
    api = fake(busy_until={"busy": T0 + 3600.0})
    state = run(plan_of(job("busy", if_running="fail"), job("other")), api)
    busy = state.jobs["busy"]
    assert busy.state == JobState.FAILED and busy.error is not None
    assert busy.error.startswith("already RUNNING in Celonis") and "if_running: fail" in busy.error
    assert busy.finished_at is not None and busy.finished_at - state.started_at < 60.0
    assert state.jobs["other"].state == JobState.SUCCEEDED and "busy" not in api.runs


# -- stopping --------------------------------------------------------------------------


def stop_when_running(name: str, *, hard: bool = False) -> tuple[list[Executor], Any]:
    holder: list[Executor] = []

    def listen(state: RunState, j: JobRun) -> None:
        if j.name == name and j.state == JobState.RUNNING:
            holder[0].request_stop("SIGINT received", hard=hard)

    return holder, listen


def test_stop_cancels_confirms_and_starts_nothing_new() -> None:
    api = fake(durations={"a": 600.0})
    holder, listen = stop_when_running("a")
    ex = executor(plan_of(job("a"), job("b", "a"), job("c", "a")), api, listeners=[listen])
    holder.append(ex)
    state = ex.run()
    assert states(state) == {
        "a": JobState.CANCELLED,
        "b": JobState.NOT_STARTED,
        "c": JobState.NOT_STARTED,
    }
    assert state.status == "interrupted" and state.stop_reason == "SIGINT received"
    assert may_still_run(state) == set()
    assert api.clock.monotonic() - T0 <= api.cancel_delay + 2.0  # no waiting out the grace


def test_stop_ends_after_the_grace_with_unconfirmed_jobs_running() -> None:
    api = fake(durations={"a": 600.0}, cancel_ignored={"a"})
    holder, listen = stop_when_running("a")
    ex = executor(plan_of(job("a"), job("b", "a")), api, listeners=[listen], grace=20.0)
    holder.append(ex)
    state = ex.run()
    assert states(state) == {"a": JobState.RUNNING, "b": JobState.NOT_STARTED}
    assert may_still_run(state) == {"a"}
    assert api.clock.monotonic() - T0 == 20.0
    assert len(api.times("status", "a")) >= 10  # read at the short interval during the grace


def test_hard_stop_ends_at_once() -> None:
    api = fake(durations={"a": 600.0})
    holder, listen = stop_when_running("a", hard=True)
    ex = executor(plan_of(job("a"), job("b", "a")), api, listeners=[listen])
    holder.append(ex)
    state = ex.run()
    assert states(state) == {"a": JobState.RUNNING, "b": JobState.NOT_STARTED}
    assert may_still_run(state) == {"a"}  # its execute went out
    assert api.clock.monotonic() == T0


def test_stop_without_cancel_leaves_jobs_running() -> None:
    api = fake(durations={"a": 600.0})
    holder, listen = stop_when_running("a")
    ex = executor(plan_of(job("a")), api, listeners=[listen], cancel_on_stop=False)
    holder.append(ex)
    state = ex.run()
    assert state.jobs["a"].state == JobState.RUNNING and not api.times("cancel")


# -- the API refuses or fails ---------------------------------------------------------------


def test_a_refused_credential_stops_the_run_with_nothing_started() -> None:
    api = fake(refuse_credential=True)
    plan = plan_of(job("a"), job("b"), job("c", "a"), job("d", pool="crm"))
    state = run(plan, api)
    assert set(states(state).values()) == {JobState.NOT_STARTED}
    assert state.status == "api_error" and "401" in (state.error or "")
    assert may_still_run(state) == set()
    assert all(j.attempts == 0 for j in state.jobs.values())
    assert api.clock.monotonic() == T0  # at once


def test_an_api_failing_mid_run_lists_only_executed_jobs_as_running() -> None:
    api = fake(status_error_after=30.0)
    state = run(plan_of(job("a"), job("b", "a")), api)
    assert state.status == "api_error"
    assert states(state) == {"a": JobState.RUNNING, "b": JobState.NOT_STARTED}
    assert may_still_run(state) == {"a"}


# -- unclear executes and resume ----------------------------------------------------------


def unclear(job_id: str, clock: FakeClock) -> UnclearExecuteError:
    handle = ExecutionHandle(
        "pool-sap",
        job_id,
        "DELTA",
        JobStatus(job_id, None),
        clock.monotonic(),
        1,
        sent_at=clock.time(),
    )
    timed_out = NetworkError(
        "POST /execute: no answer within 30 s", method="POST", path="/execute", kind="read_timeout"
    )
    return UnclearExecuteError(handle, timed_out)


def test_an_unclear_execute_is_settled_from_the_history_then_watched_not_sent_again() -> None:
    api = fake(takes_effect={"a"}, hidden_until={"a": T0 + 25.0})  # the history lags 25 s
    api.execute_errors["a"] = [unclear("a", api.clock)]
    state = run(plan_of(job("a"), job("b", "a")), api)
    assert states(state) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    assert len(api.times("execute", "a")) == 1 and len(api.runs["a"]) == 1
    reads = api.times("history", "a")
    assert len(reads) >= 3 and reads[1] - reads[0] == 10.0  # once per poll round


def test_an_unclear_execute_with_no_execution_ends_unclear_after_its_window_not_resent() -> None:
    api = fake()  # the POST never reached Celonis: no execution ever shows
    api.execute_errors["a"] = [unclear("a", api.clock)]
    state = run(plan_of(job("a", settle_window=120.0, timeout=4 * 3600.0), job("b", "a")), api)
    a = state.jobs["a"]
    assert a.state == JobState.UNCLEAR and state.jobs["b"].state == JobState.SKIPPED
    assert "run --resume reads the history again" in (a.error or "")
    assert len(api.times("execute", "a")) == 1  # never re-sent within the run
    ended = max(api.times("history", "a"))
    assert T0 + 120.0 <= ended <= T0 + 140.0  # within its window, not its 4 h timeout


def test_a_stop_while_an_execute_is_unclear_leaves_it_may_be_running() -> None:
    api = fake(takes_effect={"a"}, history_hidden={"a"})
    api.execute_errors["a"] = [unclear("a", api.clock)]
    holder: list[Executor] = []

    def listen(state: RunState, j: JobRun) -> None:
        if j.name == "b" and j.state == JobState.RUNNING:
            holder[0].request_stop("SIGTERM received")

    ex = executor(plan_of(job("a"), job("b", pool="crm")), api, listeners=[listen], grace=30.0)
    holder.append(ex)
    state = ex.run()
    assert state.jobs["a"].state == JobState.STARTING  # never settled: it may have started
    assert may_still_run(state) == {"a"} and state.status == "interrupted"
    assert len(api.times("history", "a")) >= 3  # still settled during the grace period


def uncertain(api: FakeCelonis, job_id: str, ago: float) -> ExecutionHandle:
    """The claim a resumed run keeps for a job whose execute was sent `ago` seconds ago."""
    sent = api.clock.time() - ago
    return ExecutionHandle(
        "pool-sap",
        job_id,
        "DELTA",
        JobStatus(job_id, None),
        0.0,
        1,
        sent_at=sent,
        since_ms=api.celonis_floor_ms(sent),
        until_ms=api.celonis_ceiling_ms(sent),
    )


def test_resume_bounds_a_send_it_kept_no_celonis_times_for_by_this_runs_start() -> None:
    # killed while the POST was out: only the local intent time was saved
    api = fake()
    intent = api.clock.time() - 30.0
    bare = ExecutionHandle("pool-sap", "a", "DELTA", JobStatus("a", None), 0.0, 1, sent_at=intent)
    state = run(
        plan_of(job("a", settle_window=120.0)), api, resume=ResumeFrom(uncertain={"a": bare})
    )
    assert state.jobs["a"].state == JobState.SUCCEEDED
    (execute_at,) = api.times("execute", "a")
    assert execute_at >= T0 + 120.0  # a full window after this run began, not after the intent


def test_resume_settles_an_uncertain_job_from_the_history() -> None:
    api = fake()
    api.start_run("a")  # the earlier run's execute took effect
    resume = ResumeFrom(uncertain={"a": uncertain(api, "a", 0.0)}, intent_at={"a": T0})
    state = run(plan_of(job("a"), job("b", "a")), api, resume=resume)
    assert states(state) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    assert not api.times("execute", "a")


def test_resume_resends_an_uncertain_job_only_a_window_after_the_send() -> None:
    api = fake()
    resume = ResumeFrom(uncertain={"a": uncertain(api, "a", 0.0)})
    with capture_logs() as logs:
        state = run(plan_of(job("a", settle_window=120.0)), api, resume=resume)
    assert state.jobs["a"].state == JobState.SUCCEEDED
    (execute_at,) = api.times("execute", "a")
    assert execute_at >= T0 + 120.0  # not before the history had a full window to show it
    assert [e for e in logs if e["event"] == "job_resent_after_unclear"]


def test_a_409_to_a_resend_is_the_earlier_execute_taken_as_ours() -> None:
    # the earlier execute did start (a 1000 s run), but the history shows it only after 300 s
    api = fake(durations={"a": 1000.0}, hidden_until={"a": T0 + 300.0})
    api.start_run("a")
    resume = ResumeFrom(uncertain={"a": uncertain(api, "a", 0.0)})
    state = run(plan_of(job("a", settle_window=120.0)), api, resume=resume)
    assert len(api.times("execute", "a")) == 1  # resent after the window...
    assert len(api.runs["a"]) == 1  # ...and refused: one execution, taken as ours
    assert state.jobs["a"].state == JobState.SUCCEEDED
    assert max(api.times("status", "a")) >= T0 + 1000.0  # its own end, not a guess


def test_a_resumed_running_job_is_taken_up_without_an_execute() -> None:
    api = fake()
    handle = uncertain(api, "a", 0.0)
    api.start_run("a")
    state = run(plan_of(job("a")), api, resume=ResumeFrom(running={"a": handle}))
    assert state.jobs["a"].state == JobState.SUCCEEDED and not api.times("execute")


# -- scheduling cost ------------------------------------------------------------------------


def test_scheduling_looks_at_each_dependency_once_not_per_pass() -> None:
    width, layers = 500, 10
    jobs = []
    edges = 0
    for layer in range(layers):
        for i in range(width):
            deps = (
                () if layer == 0 else (f"j{layer - 1}_{i}", f"j{layer - 1}_{(i * 7 + 3) % width}")
            )
            edges += len(set(deps))
            jobs.append(job(f"j{layer}_{i}", *dict.fromkeys(deps), pool=f"p{i % 4}"))
    api = fake(default_duration=30.0)
    ex = executor(plan_of(*jobs, limits={"p0": 50}), api)
    with capture_logs():  # 15,000 events: kept in a list, not formatted
        state = ex.run()
    assert len(state.jobs) == 5000
    assert set(states(state).values()) == {JobState.SUCCEEDED}
    assert ex.dependency_checks == edges  # a rescan per pass would be millions


def test_an_execute_failing_unclearly_is_the_only_job_that_may_run() -> None:
    api = fake(takes_effect={"a"})
    api.execute_errors["a"] = [ServerError("HTTP 502: bad gateway", status=502)]
    state = run(plan_of(job("a"), job("b", "a"), job("c", "a")), api)
    assert state.status == "api_error"
    assert states(state) == {
        "a": JobState.STARTING,
        "b": JobState.NOT_STARTED,
        "c": JobState.NOT_STARTED,
    }
    assert may_still_run(state) == {"a"}
    assert "may be running in Celonis" in (state.jobs["a"].error or "")


def test_a_credential_refused_mid_run_stops_it_and_that_job_did_not_start() -> None:
    api = fake(durations={"a": 30.0, "b": 600.0})
    api.execute_errors["c"] = [AuthError("HTTP 401: the token was refused", status=401)]
    state = run(plan_of(job("a"), job("b", pool="crm"), job("c", "a")), api)
    assert state.status == "api_error"
    assert states(state) == {
        "a": JobState.SUCCEEDED,
        "b": JobState.RUNNING,
        "c": JobState.NOT_STARTED,
    }
    assert may_still_run(state) == {"b"}


class HeldReasons(InlineCalls):
    """Inline, except that a failure-reason read answers one pass later (as if in flight)."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__(wake)
        self.held: list[tuple[Callable[[], Any], OnDone]] = []

    def submit(self, call: Callable[[], Any], on_done: OnDone, priority: int = NORMAL) -> None:
        if getattr(getattr(call, "func", None), "__name__", "") == "failure_reason":
            self.held.append((call, on_done))
        else:
            super().submit(call, on_done, priority)

    def collect(self) -> bool:
        collected = super().collect()
        held, self.held = self.held, []
        for call, on_done in held:
            super().submit(call, on_done)
        return collected

    def in_flight(self) -> bool:
        return bool(self.held) or super().in_flight()


def test_fail_fast_starts_nothing_while_the_failure_reason_is_read() -> None:
    api = fake(outcomes={"a": "FAIL"}, durations={"a": 20.0, "x": 20.0})
    plan = plan_of(job("a"), job("x", pool="crm"), job("b", "x", pool="crm"))
    state = Executor(plan, api, api.clock, calls=HeldReasons, fail_fast=True).run()
    assert states(state) == {
        "a": JobState.FAILED,
        "x": JobState.SUCCEEDED,
        "b": JobState.NOT_STARTED,
    }
    assert not api.times("execute", "b")


def test_a_stop_does_not_wait_past_its_grace_for_a_request_in_flight() -> None:
    """A status read that hangs (a server trickling its answer) must not keep a stopped run
    beyond --grace: real I/O threads here, the read blocks for up to 10 real seconds."""
    api = fake(durations={"a": 600.0})
    hang, stopped = threading.Event(), threading.Event()
    reads = api.pool_statuses

    def hanging(pool_id: str, job_ids: Any) -> dict[str, JobStatus]:
        if stopped.is_set():
            hang.wait(10)  # released when the test ends
        return reads(pool_id, job_ids)

    api.pool_statuses = hanging  # type: ignore[method-assign]
    holder: list[Executor] = []

    def listen(state: RunState, j: JobRun) -> None:
        if j.name == "a" and j.state == JobState.RUNNING and not stopped.is_set():
            stopped.set()
            holder[0].request_stop("SIGTERM received")

    ex = Executor(plan_of(job("a")), api, api.clock, grace=30.0, listeners=[listen])
    holder.append(ex)
    started = time.monotonic()
    try:
        state = ex.run()
    finally:
        hang.set()
    assert time.monotonic() - started < 5.0  # not the 10 s the read hangs
    assert state.status == "interrupted" and may_still_run(state) == {"a"}


def test_without_fail_fast_a_failure_reason_being_read_holds_nothing_up() -> None:
    """Only fail-fast needs to know a failure before it starts more: without it, a job that is
    ready starts while another's failure reason is still being read."""
    api = fake(outcomes={"a": "FAIL"}, durations={"a": 20.0, "x": 20.0})
    plan = plan_of(job("a"), job("x", pool="crm"), job("b", "x", pool="crm"))
    state = Executor(plan, api, api.clock, calls=HeldReasons).run()
    assert states(state) == {"a": JobState.FAILED, "x": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}


def test_when_slots_are_short_the_job_with_the_longest_chain_behind_it_starts_first() -> None:
    """Critical path first: `c` holds two jobs up, `lone` none, `a` one; plan order is lone, a, c."""
    jobs = [job("lone"), job("a"), job("c"), job("c2", "c"), job("c3", "c2"), job("a2", "a")]
    api = fake()
    state = run(plan_of(*jobs, max_parallel=1), api)
    assert set(states(state).values()) == {JobState.SUCCEEDED}
    order = [j for _, m, j in api.calls if m == "execute"]
    # in plan order: lone, a, c, a2, c2, c3; ties (a and c2, then lone, a2 and c3) keep it
    assert order == ["c", "a", "c2", "lone", "a2", "c3"]


def test_the_pool_read_before_executes_is_a_poll_for_the_pools_running_jobs() -> None:
    """c's execute reads sap's logs/status first; that answer shows a (running in sap) ended,
    so a is seen then, not at sap's next poll (a is old: its polls are far apart)."""
    w = dataclasses.replace(job("w", pool="crm"), max_poll_interval=10.0)
    seen = {}
    for answers in (False, True):
        api = fake(durations={"a": 1001.0, "w": 1003.0, "c": 10.0}, answers_pool_entries=answers)
        state = run(plan_of(job("a"), w, job("c", "w")), api)
        assert set(states(state).values()) == {JobState.SUCCEEDED}
        (read,) = [t for t in api.times("pool_entries") if t > T0]  # c's, after w ended
        a = state.jobs["a"]
        assert a.finished_at is not None
        seen[answers] = a.finished_at - state.started_at
        assert api.times("status", "a")[-1] <= read + (0.0 if answers else 60.0)
    assert seen[True] == 1010.0  # the read made for c's execute, after w was seen at 1010
    assert seen[False] > 1010.0  # without a pool list: sap's own next poll


class HeldReads(InlineCalls):
    """Inline, except that a pool read before executes answers one pass later."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__(wake)
        self.held: list[tuple[Callable[[], Any], OnDone, int]] = []

    def submit(self, call: Callable[[], Any], on_done: OnDone, priority: int = NORMAL) -> None:
        if getattr(getattr(call, "func", None), "__name__", "") == "pool_entries":
            self.held.append((call, on_done, priority))
        else:
            super().submit(call, on_done, priority)

    def collect(self) -> bool:
        collected = super().collect()
        held, self.held = self.held, []
        for call, on_done, priority in held:
            super().submit(call, on_done, priority)
        return collected

    def in_flight(self) -> bool:
        return bool(self.held) or super().in_flight()


def test_a_stop_while_the_pool_is_read_sends_no_execute_and_says_not_started() -> None:
    api = fake()
    holder: list[Executor] = []

    def stop_when_starting(state: RunState, j: JobRun) -> None:
        if j.name == "b" and j.state == JobState.STARTING:
            holder[0].request_stop("SIGTERM received")

    ex = Executor(
        plan_of(job("a"), job("b", "a")),
        api,
        api.clock,
        calls=HeldReads,
        listeners=[stop_when_starting],
    )
    holder.append(ex)
    state = ex.run()
    assert states(state) == {"a": JobState.SUCCEEDED, "b": JobState.NOT_STARTED}
    assert state.jobs["b"].error == "not started: SIGTERM received"
    assert api.times("execute", "b") == []
    assert may_still_run(state) == set()


def test_an_execute_that_certainly_did_not_start_the_job_says_not_started() -> None:
    """A failure before the POST (or a definite refusal of it) is not "may be running"."""
    refused = ServerError("GET .../logs/status: HTTP 503 Service Unavailable", status=503)
    refused.took_no_effect = True
    api = fake(execute_errors={"a": [refused]})
    state = run(plan_of(job("a"), job("b", "a")), api)
    assert states(state) == {"a": JobState.NOT_STARTED, "b": JobState.NOT_STARTED}
    assert state.jobs["a"].error == f"not started: {refused}"
    assert may_still_run(state) == set()
    assert state.error == str(refused)

    unclear = ServerError("POST .../execute: HTTP 503 Service Unavailable", status=503)
    api = fake(execute_errors={"a": [unclear]})
    state = run(plan_of(job("a")), api)
    assert may_still_run(state) == {"a"}  # sent, no answer: it may have started


# -- stale statuses: which execution is ours (issue 20) -------------------------------------


def dependency_violations(api: FakeCelonis, plan: Plan, since: int) -> list[str]:
    """Edges whose dependent's run (from the `since`-th run of each job on) began before the
    dependency's own run of that round ended."""
    bad = []
    for name, planned in plan.jobs.items():
        for dep in planned.job.depends_on:
            mine, theirs = api.runs[name][since], api.runs[dep][since]
            if mine.start < theirs.start + theirs.duration:
                bad.append(f"{dep} -> {name}")
    return bad


def test_a_pipeline_run_again_at_once_under_stale_statuses_waits_for_its_own_executions() -> None:
    # Celonis shows every job as it was 6 s ago; jobs take 2-3 s; polls every 0.2 s
    jobs = [job("j0", poll_interval=0.2, max_poll_interval=0.2)]
    for i in range(1, 10):
        deps = [f"j{i - 1}"] + ([f"j{i - 2}"] if i >= 2 else [])
        jobs.append(job(f"j{i}", *deps, poll_interval=0.2, max_poll_interval=0.2))
    plan = plan_of(*jobs)
    api = fake(stale_for=6.0, durations={f"j{i}": 2.0 + (i % 2) for i in range(10)})
    first = run(plan, api)
    second = run(plan, api)
    assert first.status == second.status == "succeeded"
    assert dependency_violations(api, plan, 1) == []
    for name, j in second.jobs.items():  # the report's duration is at least the real one
        assert j.duration is not None and j.duration >= api.runs[name][1].duration


def test_resume_right_after_a_stop_runs_again_a_job_that_stop_cancelled() -> None:
    api = fake(stale_for=10.0, durations={"a": 100.0}, cancel_delay=1.0)
    holder: list[Executor] = []

    def stop_once_running(state: RunState, j: JobRun) -> None:
        if j.name == "a" and j.state == JobState.RUNNING and len(holder) == 1:
            holder[0].request_stop("SIGINT received")
            holder.append(holder[0])

    plan = plan_of(job("a"), job("b", "a"))
    ex = executor(plan, api, listeners=[stop_once_running], grace=5.0)
    holder.append(ex)
    first = ex.run()
    a = first.jobs["a"]  # the CANCEL is not shown within the grace: still "running"
    assert first.status == "interrupted" and a.state == JobState.RUNNING and a.handle
    resume = ResumeFrom(running={"a": a.handle}, cancel_requested=frozenset({"a"}))
    with capture_logs() as logs:
        second = run(plan, api, resume=resume)  # at once: Celonis then shows that CANCEL
    assert states(second) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    assert len(api.runs["a"]) == 2 and api.runs["b"][0].start >= api.runs["a"][1].start + 100.0
    assert [e for e in logs if e["event"] == "job_cancelled_by_earlier_stop"]


def test_a_failure_reason_is_read_only_from_our_own_execution() -> None:
    # the status shows our FAIL; the history still shows only an earlier execution: its ERROR
    # lines are not reported as ours
    api = fake(outcomes={"a": "FAIL"})
    api.runs["a"] = []
    real_history = api.execution_history

    def lagging(pool_id: str, job_id: str, limit: int) -> list[Any]:
        api._record("history", job_id)
        return []

    api.execution_history = lagging  # type: ignore[method-assign]
    state = run(plan_of(job("a")), api)
    assert state.jobs["a"].state == JobState.FAILED
    assert state.jobs["a"].error == "FAIL (Celonis gave no reason)"
    assert not api.times("failure_reason", "a")
    api.execution_history = real_history  # type: ignore[method-assign]
    state = run(plan_of(job("a")), api)
    assert state.jobs["a"].error == "FAIL: table T missing"
    assert len(api.times("failure_reason", "a")) == 1


def test_a_state_file_that_cannot_be_written_starts_nothing_more_and_watches_what_runs() -> None:
    import errno

    api = fake(durations={"a": 100.0, "c": 10.0})
    writes: list[bool] = []

    def checkpoint(state: RunState, force: bool) -> float | None:
        writes.append(force)
        if len(writes) >= 3:  # the disk fills up while "a" runs
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/r.json")
        return None

    plan = plan_of(job("a"), job("b", "a"), job("c", pool="crm"), limits={"crm": 1})
    ex = executor(plan, api, checkpoint=checkpoint)
    state = ex.run()
    assert state.status == "state_error"
    assert state.jobs["a"].state == JobState.SUCCEEDED  # watched to its end
    assert state.jobs["b"].state == JobState.NOT_STARTED and not api.times("execute", "b")
    assert state.error == (
        "could not write the state file /runs/r.json (No space left on device): 1 jobs not started"
    )
    assert api.times("status", "a")[-1] >= T0 + 100.0
