"""Celonis' clock as the emulator shows it: the Date header, `clock_offset`, `status_lag`,
and scaled clocks in two processes that agree on the date (a shared origin)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from emulator_fixtures import JOB, POOL, UNKNOWN, Client, FakeClock, pool_scenario

from runner.airflow.credentials import make_clock
from runner.clock import TIME_ORIGIN_ENV, TIME_SCALE_ENV, ScaledClock, SystemClock
from runner.emulator import Emulator, Scenario, ScenarioError
from runner.emulator import command as emulator_command
from runner.errors import UsageError
from runner.target import _clock

SCALE = 3000.0
KEY = "clock-test-key-4b1e"
CLIENT_ID = "runner-ci"
CLIENT_SECRET = "s3cret-oauth-7a4b"

# -- scaled clocks from a shared origin -------------------------------------------------------


def test_two_scaled_clocks_with_the_same_origin_agree_though_made_at_different_times() -> None:
    origin = time.time()
    first = ScaledClock(SCALE, origin)
    time.sleep(0.05)  # 150 virtual seconds at this scale
    second = ScaledClock(SCALE, origin)
    assert abs(first.time() - second.time()) < 1.0
    # and each runs at the scale from the origin
    assert abs(second.time() - (origin + (time.time() - origin) * SCALE)) < 1.0
    # each one's monotonic keeps pace with its time()
    offset = second.time() - second.monotonic()
    time.sleep(0.01)
    assert second.time() - second.monotonic() == pytest.approx(offset, abs=1.0)


def test_scaled_clocks_without_an_origin_start_from_their_own_start() -> None:
    first = ScaledClock(SCALE)
    time.sleep(0.05)
    second = ScaledClock(SCALE)
    assert first.time() - second.time() > 100  # what the shared origin fixes
    assert abs(second.time() - time.time()) < 5
    assert second.origin == pytest.approx(time.time(), abs=1)


def test_a_scaled_clock_refuses_an_origin_that_is_not_finite() -> None:
    with pytest.raises(ValueError, match="origin"):
        ScaledClock(SCALE, float("nan"))


@pytest.mark.parametrize("make", [_clock, make_clock], ids=["cli", "airflow"])
def test_the_runner_reads_the_time_origin_beside_the_time_scale(make) -> None:  # type: ignore[no-untyped-def]
    origin = time.time() - 10
    clock = make({TIME_SCALE_ENV: "3000", TIME_ORIGIN_ENV: f"{origin:.6f}"})
    assert isinstance(clock, ScaledClock)
    assert clock.origin == pytest.approx(origin, abs=1e-5)
    assert clock.time() == pytest.approx(origin + 10 * SCALE, abs=SCALE)
    # without the origin: as before, from now
    assert make({TIME_SCALE_ENV: "3000"}).time() == pytest.approx(time.time(), abs=5)
    # without a scale the origin changes nothing
    assert isinstance(make({TIME_ORIGIN_ENV: f"{origin}"}), SystemClock)


@pytest.mark.parametrize("make", [_clock, make_clock], ids=["cli", "airflow"])
@pytest.mark.parametrize("value", ["soon", "nan", "inf", "-5", "1e400"])
def test_a_bad_time_origin_is_a_usage_error(make, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"\$CELONIS_RUNNER_TIME_ORIGIN must be a number"):
        make({TIME_SCALE_ENV: "3000", TIME_ORIGIN_ENV: value})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emulator_command.add_arguments(parser)
    return parser.parse_args(list(argv))


@contextlib.contextmanager
def _serving(args: argparse.Namespace, environ: dict[str, str]) -> Iterator[str]:
    """`celonis-runner emulator` in a thread; yields what it printed when it started."""
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: emulator_command.main(args, environ, out, stop=stop), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 5
    while "run the runner" not in out.getvalue() and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    try:
        yield out.getvalue()
    finally:
        stop.set()
        thread.join(timeout=5)


def _start_text(args: argparse.Namespace, environ: dict[str, str]) -> str:
    with _serving(args, environ) as text:
        return text


def test_the_emulator_suggests_its_time_origin_to_the_runner() -> None:
    before = time.time()
    text = _start_text(_args("--port", "0", "--time-scale", "600"), {"CELONIS_API_KEY": "k"})
    match = re.search(
        rf"run the runner against it: {TIME_SCALE_ENV}=600 {TIME_ORIGIN_ENV}=(\d+\.\d+) celonis",
        text,
    )
    assert match, text
    assert before - 1 <= float(match.group(1)) <= time.time()


def test_the_emulator_takes_its_time_origin_from_the_environment() -> None:
    origin = time.time() - 1.0
    environ = {"CELONIS_API_KEY": "k", TIME_ORIGIN_ENV: f"{origin:.6f}"}
    with _serving(_args("--port", "0", "--time-scale", "600"), environ) as text:
        # the origin is in the environment already: the command does not repeat it
        assert f"run the runner against it: {TIME_SCALE_ENV}=600 celonis-runner run" in text
        url = re.search(r"emulator listening on (\S+)", text)
        assert url, text
        before = origin + (time.time() - origin) * 600
        answer = requests.get(url.group(1) + "/api/cloud", timeout=5)
        after = origin + (time.time() - origin) * 600
    # the origin a second ago, at 600x: ten virtual minutes ahead of this machine
    shown = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert before - 2 <= shown <= after + 2
    assert shown > time.time() + 500
    with pytest.raises(UsageError, match=TIME_ORIGIN_ENV):
        emulator_command.main(_args("--port", "0"), {TIME_ORIGIN_ENV: "x"}, io.StringIO())


# -- the Date header: Celonis' clock ---------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def serve(clock: FakeClock) -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(scenario: dict[str, Any], **kwargs: Any) -> Emulator:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("api_keys", [KEY])
        emulator = Emulator(Scenario.from_dict(scenario), **kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def _date(response: requests.Response) -> float:
    return parsedate_to_datetime(response.headers["Date"]).timestamp()


def test_every_answer_carries_a_date_on_the_emulators_clock(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    fault = {"path": "/api/team", "action": "status", "status": 503}
    emu = serve(
        pool_scenario({"id": JOB}, faults=[fault], rate_limit={"requests": 5, "per": "1h"}),
        oauth_clients={CLIENT_ID: CLIENT_SECRET},
    )
    api = Client(emu.base_url, f"Bearer {KEY}")
    clock.advance(90)
    answers = [
        api.get(f"/integration/api/pools/{POOL}/jobs/{JOB}"),  # 200
        api.get(f"/integration/api/pools/{UNKNOWN}/jobs/{JOB}"),  # 404
        Client(emu.base_url, "Bearer wrong").get("/api/cloud"),  # 401
        api.get("/api/team"),  # a fault
        requests.post(
            emu.base_url + "/oauth2/token",
            auth=(CLIENT_ID, CLIENT_SECRET),
            data={"grant_type": "client_credentials"},
            timeout=5,
        ),
        api.post(f"/integration/api/pools/{POOL}/jobs/{JOB}/execute", data=b"{", timeout=5),
        api.get("/api/cloud"),  # over the rate limit
    ]
    assert [a.status_code for a in answers] == [200, 404, 401, 503, 200, 400, 429]
    for answer in answers:
        assert _date(answer) == pytest.approx(clock.time(), abs=2), answer.request.url
    # the emulator's clock is years away from this machine's: the header is not the real time
    assert abs(clock.time() - time.time()) > 86400
    clock.advance(3600)
    assert _date(api.get("/api/cloud")) == pytest.approx(clock.time(), abs=2)


def test_the_date_of_an_unreadable_request_is_on_the_emulators_clock(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    answer = requests.post(
        emu.base_url + "/api/cloud", headers={"Content-Length": "nope"}, timeout=5
    )
    assert answer.status_code == 400
    assert _date(answer) == pytest.approx(clock.time(), abs=2)


# -- clock_offset: Celonis' clock is not this machine's ---------------------------------------


@pytest.mark.parametrize("offset", ["-2m", "90s"])
def test_clock_offset_shifts_every_date_the_emulator_shows(
    serve: Callable[..., Emulator], clock: FakeClock, offset: str
) -> None:
    shift = {"-2m": -120.0, "90s": 90.0}[offset]
    emu = serve(pool_scenario({"id": JOB, "duration": "5m"}, queued_for=0, clock_offset=offset))
    api = Client(emu.base_url, f"Bearer {KEY}")
    sent = clock.time()
    executed = api.execute()
    assert _date(executed) == pytest.approx(sent + shift, abs=2)
    clock.advance(400)
    job = api.job()
    [item] = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()[
        "executionItems"
    ]
    [entry] = api.get(f"/integration/api/pools/{POOL}/logs/status").json()
    assert item["startDate"] == entry["lastExecutionStartDate"] == (sent + shift) * 1000
    assert item["endDate"] == job["timeStamp"] == (sent + 300 + shift) * 1000
    execution = item["executionId"]
    detail = api.get(
        f"/integration/api/pools/{POOL}/logs/executions/detail", params={"executionId": execution}
    ).json()
    dates = [line["date"] for line in detail["logMessages"]]
    assert min(dates) == (sent + shift) * 1000 and max(dates) == (sent + 300 + shift) * 1000
    tasks = api.get(
        f"/integration/api/pools/{POOL}/logs/executions",
        params={"executionId": execution, "type": "TASK"},
    ).json()
    assert tasks[-1]["endDate"] == (sent + 300 + shift) * 1000
    assert _date(api.get("/api/cloud")) == pytest.approx(clock.time() + shift, abs=2)


@pytest.mark.parametrize(
    ("value", "seconds"), [("-2m", -120.0), ("+1h", 3600.0), ("90s", 90.0), (-90, -90.0), (0, 0.0)]
)
def test_clock_offset_is_a_duration_that_may_be_negative(value: object, seconds: float) -> None:
    assert Scenario.from_dict({"clock_offset": value}).clock_offset == seconds
    assert Scenario().clock_offset == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [("-2x", "clock_offset: must be a duration"), ("-800h", "clock_offset: must be within 30")],
)
def test_clock_offset_refuses_what_is_not_a_duration(value: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict({"clock_offset": value})


def test_the_emulator_command_takes_a_clock_offset() -> None:
    args = _args("--clock-offset=-2m", "--time-scale", "600")
    assert emulator_command.build_scenario(args, {}).clock_offset == -120
    assert emulator_command.build_scenario(_args(), {}).clock_offset == 0
    with pytest.raises(SystemExit):
        _args("--clock-offset", "soon")


# -- status_lag: the status views show each job as it was a while ago -------------------------


def _views(api: Client) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(the job, its logs/status entry, its execution history), checking the jobs list agrees."""
    job = api.job()
    assert api.get(f"/integration/api/pools/{POOL}/jobs").json() == [job]
    [entry] = api.get(f"/integration/api/pools/{POOL}/logs/status").json()
    history = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()
    return job, entry, history["executionItems"]


def test_status_lag_hides_a_new_execution_then_shows_an_ended_one_running_then_catches_up(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    emu = serve(
        pool_scenario(
            {"id": JOB, "duration": "5m", "last_run": "SUCCESS"}, status_lag="30s", queued_for=0
        )
    )
    api = Client(emu.base_url, f"Bearer {KEY}")
    before, before_entry, before_history = _views(api)
    assert before["status"] == "SUCCESS"
    t0 = clock.time()
    assert api.execute().status_code == 200
    clock.advance(29)
    # begun 29 s ago: not visible yet in any status view...
    assert _views(api) == (before, before_entry, before_history)
    # ...but execute goes by the true state: the job is running
    assert api.execute().status_code == 409
    [started] = emu.executions()
    items = api.get(
        f"/integration/api/pools/{POOL}/logs/executions",
        params={"executionId": started["execution_id"], "type": "JOB"},
    ).json()
    assert items[0]["status"] == "RUNNING"  # an execution's own items do not lag
    clock.advance(1)
    job, entry, history = _views(api)
    assert job["status"] == entry["status"] == history[0]["status"] == "RUNNING"
    assert job["currentExecutionId"] == history[0]["executionId"] == started["execution_id"]
    assert job["timeStamp"] == entry["lastExecutionStartDate"] == t0 * 1000
    assert history[0]["startDate"] == t0 * 1000 and history[0]["endDate"] is None
    assert len(history) == 2
    clock.advance(300 - 30 + 29)  # ended 29 s ago: still running in the views
    job, entry, history = _views(api)
    assert job["status"] == entry["status"] == history[0]["status"] == "RUNNING"
    assert history[0]["endDate"] is None and job["timeStamp"] == t0 * 1000
    assert api.execute().status_code == 200  # truly ended: a new execute starts
    clock.advance(1)
    job, entry, history = _views(api)
    assert job["status"] == entry["status"] == history[0]["status"] == "SUCCESS"
    assert history[0]["endDate"] == job["timeStamp"] == (t0 + 300) * 1000
    assert [h["executionId"] for h in history[:1]] == [started["execution_id"]]
    assert len(history) == 2  # the execute of a second ago is not visible yet


def test_status_lag_shows_a_cancel_late_but_the_cancel_acts_at_once(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": "5m"}, status_lag="20s", queued_for=0))
    api = Client(emu.base_url, f"Bearer {KEY}")
    assert api.status() is None  # never ran
    assert api.execute().status_code == 200
    clock.advance(10)
    assert api.status() is None
    assert api.cancel().status_code == 200
    [cancel] = [e for e in emu.journal() if e.get("event") == "cancel_requested"]
    assert cancel["execution_id"] == emu.executions()[0]["execution_id"]
    clock.advance(15)
    assert api.status() == "RUNNING"  # 25 s after the execute, 15 s after the cancel
    clock.advance(5)
    assert api.status() == "CANCEL"


def test_status_lag_goes_on_after_stale_status_for_ends(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    emu = serve(
        pool_scenario(
            {"id": JOB, "duration": "5m", "last_run": "FAIL"},
            status_lag="20s",
            stale_status_for="5s",
            queued_for=0,
        )
    )
    api = Client(emu.base_url, f"Bearer {KEY}")
    assert api.execute().status_code == 200
    clock.advance(4)
    assert api.status() == "FAIL"  # frozen
    clock.advance(15)
    assert api.status() == "FAIL"  # lagging
    clock.advance(1)
    assert api.status() == "RUNNING"
    assert len(emu.executions()) == 1


def test_status_lag_shows_a_job_running_at_start_as_running(
    serve: Callable[..., Emulator], clock: FakeClock
) -> None:
    emu = serve(
        pool_scenario({"id": JOB, "duration": "5m", "running_at_start": "2m"}, status_lag="30s")
    )
    api = Client(emu.base_url, f"Bearer {KEY}")
    assert api.status() == "RUNNING"  # it began 3 minutes before the emulator started
    clock.advance(120 + 29)
    assert api.status() == "RUNNING"
    clock.advance(1)
    assert api.status() == "SUCCESS"
    assert Scenario.from_dict({"status_lag": "1m"}).status_lag == 60
    with pytest.raises(ScenarioError, match="status_lag: must be a duration"):
        Scenario.from_dict({"status_lag": "-1m"})
