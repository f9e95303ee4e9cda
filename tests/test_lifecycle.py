"""The lifecycle's rules on their own: which execution is ours, on Celonis' clock, with no
clock of their own (times are arguments) and no network."""

from __future__ import annotations

import dataclasses

import pytest

from runner import lifecycle
from runner.api.celonis_clock import NO_DATE_TOLERANCE, TOLERANCE, CelonisClock
from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus
from runner.lifecycle import Settlement, Verdict

SEND = 1_800_000_000_000
"""Our send, on Celonis' clock (epoch ms)."""
MINUTE = 60_000


def sent(before: JobStatus | None = None) -> ExecutionHandle:
    before = before or JobStatus("j", "SUCCESS", "e1", last_execution_start=SEND - 10 * MINUTE)
    return ExecutionHandle(
        "p", "j", "FULL", before, 0.0, 1, sent_at=0.0, since_ms=SEND, until_ms=SEND + 1000
    )


def adopted(at: int = SEND) -> ExecutionHandle:
    return ExecutionHandle("p", "j", "FULL", JobStatus("j", None), 0.0, 0, running_at_ms=at)


def entry(status: str, start: int | None) -> JobStatus:
    return JobStatus("j", status, last_execution_start=start)


# -- ours or not ------------------------------------------------------------------------


def test_a_stale_status_of_an_earlier_run_is_never_our_end() -> None:
    # the previous run a minute ago, seen late: it began before our send
    assert lifecycle.judge_status(sent(), entry("SUCCESS", SEND - MINUTE)) is Verdict.NOT_YET
    assert lifecycle.judge_status(sent(), entry("CANCEL", SEND - 1)) is Verdict.NOT_YET
    assert lifecycle.judge_status(sent(), entry("RUNNING", SEND - MINUTE)) is Verdict.NOT_YET


def test_an_execution_that_began_at_or_after_the_send_is_ours() -> None:
    assert lifecycle.judge_status(sent(), entry("RUNNING", SEND)) is Verdict.ACTIVE
    assert lifecycle.judge_status(sent(), entry("SUCCESS", SEND + 5)) is Verdict.FINISHED
    assert lifecycle.judge_status(sent(), entry("FAIL", SEND + MINUTE)) is Verdict.FINISHED


def test_an_execution_seen_before_the_send_is_not_ours_whatever_its_dates() -> None:
    before = JobStatus("j", "SUCCESS", "e1", last_execution_start=SEND + 1)
    handle = sent(before)
    assert lifecycle.judge_status(handle, entry("SUCCESS", SEND + 1)) is Verdict.NOT_YET
    job_answer = JobStatus("j", "SUCCESS", current_execution_id="e1")
    assert lifecycle.judge_status(handle, job_answer) is Verdict.NOT_YET


def test_a_status_without_a_start_date_proves_nothing_and_asks_for_the_history() -> None:
    new_id = JobStatus("j", "SUCCESS", current_execution_id="e2")
    assert lifecycle.judge_status(sent(), new_id) is Verdict.NEEDS_HISTORY
    assert lifecycle.judge_status(sent(), JobStatus("j", "RUNNING", "e2")) is Verdict.ACTIVE
    assert lifecycle.judge_status(sent(), JobStatus("j", None)) is Verdict.NOT_YET


def test_the_history_ties_an_end_to_ours_by_its_start() -> None:
    old = ExecutionInfo("e1", "SUCCESS", SEND - MINUTE, SEND - 1)
    ours = ExecutionInfo("e2", "FAIL", SEND + 100, SEND + MINUTE)
    assert lifecycle.judge_history(sent(), [old]) is Verdict.NOT_YET
    assert lifecycle.judge_history(sent(), [ours, old]) is Verdict.FINISHED
    assert lifecycle.outcome_in_history(sent(), [ours, old]) == "FAIL"
    running = ExecutionInfo("e2", "RUNNING", SEND + 100, None)
    assert lifecycle.judge_history(sent(), [running, old]) is Verdict.ACTIVE
    assert lifecycle.outcome_in_history(sent(), [running, old]) is None


def test_an_adopted_run_is_the_one_running_at_the_refusal_not_a_stale_end() -> None:
    handle = adopted(SEND)
    # Celonis still shows the previous SUCCESS: that run ended before the refusal
    stale = ExecutionInfo("e0", "SUCCESS", SEND - 10 * MINUTE, SEND - 5 * MINUTE)
    assert lifecycle.judge_status(handle, entry("SUCCESS", SEND - 10 * MINUTE)) is (
        Verdict.NEEDS_HISTORY
    )
    assert lifecycle.judge_history(handle, [stale]) is Verdict.NOT_YET
    theirs = ExecutionInfo("e1", "RUNNING", SEND - 30_000, None)
    assert lifecycle.judge_history(handle, [theirs, stale]) is Verdict.ACTIVE
    done = ExecutionInfo("e1", "SUCCESS", SEND - 30_000, SEND + 20 * MINUTE)
    assert lifecycle.judge_history(handle, [done, stale]) is Verdict.FINISHED
    assert lifecycle.judge_status(handle, entry("RUNNING", SEND - 30_000)) is Verdict.ACTIVE


def test_a_refusal_known_within_bounds_claims_the_run_that_began_by_its_latest_moment() -> None:
    # A 409 came back between our send (floor SEND) and its answer (ceiling SEND + 4 s). Their
    # run began 2.5 s after our send's floor: the refusal was for it. A claim at the floor
    # alone would skip it (it began after that moment, beyond the 2 s between Celonis'
    # machines) and wait for nothing until the timeout.
    refused = dataclasses.replace(adopted(SEND + 4000), running_from_ms=SEND)
    theirs = ExecutionInfo("e1", "RUNNING", SEND + 2500, None)
    earlier = ExecutionInfo("e0", "SUCCESS", SEND - 10 * MINUTE, SEND - 5 * MINUTE)
    assert lifecycle.judge_history(refused, [theirs, earlier]) is Verdict.ACTIVE
    assert lifecycle.judge_history(adopted(SEND), [theirs, earlier]) is Verdict.NOT_YET
    # a run that ended before the earliest moment of the refusal is never the one refused for
    assert lifecycle.judge_history(refused, [earlier]) is Verdict.NOT_YET
    # one that ended within the bounds may have been: the newest that qualifies is taken
    just_ended = ExecutionInfo("e0", "SUCCESS", SEND - 10 * MINUTE, SEND + 500)
    assert lifecycle.outcome_in_history(refused, [just_ended]) == "SUCCESS"
    assert lifecycle.ours_in_history(refused, [theirs, just_ended]) == theirs
    # the bounds travel with the handle (state file, Airflow trigger)
    again = ExecutionHandle.from_dict(refused.to_dict(), "p", "j")
    assert (again.running_at_ms, again.running_from_ms) == (SEND + 4000, SEND)


# -- an unclear execute --------------------------------------------------------------------


def test_settle_is_started_on_our_execution_and_unclear_until_a_full_window() -> None:
    window = 300.0
    old = ExecutionInfo("e1", "SUCCESS", SEND - MINUTE, SEND - 1)
    ours = ExecutionInfo("e2", "RUNNING", SEND + 5, None)
    assert lifecycle.settle(sent(), [ours, old], SEND + 1000, window) is Settlement.STARTED
    # the window counts from the latest moment the send can have gone out (until_ms)
    assert lifecycle.settle(sent(), [old], SEND + 300_999, window) is Settlement.UNCLEAR
    assert lifecycle.settle(sent(), [old], SEND + 301_000, window) is Settlement.NO_EXECUTION
    assert lifecycle.settle(sent(), [], SEND + 10 * MINUTE, window) is Settlement.NO_EXECUTION
    unbounded = dataclasses.replace(sent(), until_ms=None)  # never re-sent by itself
    assert lifecycle.settle(unbounded, [], SEND + 600 * MINUTE, window) is Settlement.UNCLEAR


@pytest.mark.parametrize(
    ("elapsed", "expected"), [(0.0, 10.0), (100.0, 10.0), (400.0, 20.0), (5000.0, 60.0)]
)
def test_polls_back_off_with_the_time_run(elapsed: float, expected: float) -> None:
    assert lifecycle.poll_interval(elapsed, 10.0, 60.0, cancelling=False) == expected
    assert lifecycle.poll_interval(elapsed, 10.0, 60.0, cancelling=True) == (
        lifecycle.CANCEL_POLL_INTERVAL
    )


# -- Celonis' clock -------------------------------------------------------------------------


def test_the_offset_is_measured_from_date_headers_and_bounds_the_send() -> None:
    clock = CelonisClock()
    assert clock.offset() is None
    # Celonis is 120 s behind us: our 1000.0 .. 1000.2 saw its "Date" at 880 (whole seconds)
    clock.note(1_700_000_000.0, 1_700_000_000.2, "Tue, 14 Nov 2023 22:11:20 GMT")
    offset = clock.offset()
    assert offset is not None
    date = 1_699_999_880.0
    assert offset.lo == pytest.approx(date - 1_700_000_000.2)
    assert offset.hi == pytest.approx(date + 1 - 1_700_000_000.0)
    floor = clock.floor_ms(1_700_000_010.0)
    # the floor is at most the true Celonis time of the send, and within the spread + tolerance
    true_offset = -119.5
    assert floor <= (1_700_000_010.0 + true_offset) * 1000
    assert floor >= (1_700_000_010.0 + true_offset - offset.spread - TOLERANCE) * 1000


@pytest.mark.parametrize("skew", [-300.0, -120.0, 120.0, 300.0])
def test_a_clock_minutes_off_is_measured_not_assumed(skew: float) -> None:
    import email.utils

    clock = CelonisClock()
    for i in range(5):
        ours = 1_700_000_000.0 + i * 10.3
        clock.note(ours, ours + 0.05, email.utils.formatdate(ours + 0.02 + skew, usegmt=True))
    offset = clock.offset()
    assert offset is not None and offset.lo <= skew <= offset.hi and offset.spread <= 1.1
    send = 1_700_000_100.0
    assert (send + skew - 1.1 - TOLERANCE) * 1000 <= clock.floor_ms(send) <= (send + skew) * 1000


def test_contradicting_dates_drop_the_older_bounds() -> None:
    import email.utils

    clock = CelonisClock()
    clock.note(1000.0, 1000.1, email.utils.formatdate(1000.0, usegmt=True))
    clock.note(2000.0, 2000.1, email.utils.formatdate(2600.0, usegmt=True))  # stepped 10 min
    offset = clock.offset()
    assert offset is not None and offset.lo == pytest.approx(599.9, abs=0.01)


def test_without_any_date_the_clocks_are_assumed_within_the_documented_tolerance() -> None:
    assert CelonisClock().floor_ms(2000.0) == (2000.0 - NO_DATE_TOLERANCE) * 1000
