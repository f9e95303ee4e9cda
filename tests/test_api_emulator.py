"""The API client against the real emulator over loopback HTTP: faults, retries, auth, executes.

The client mostly runs on a FakeClock (every retry wait is recorded, none is
waited for real). The emulator runs on a SteppedClock: where the client must
see the emulator's time pass (stale status, runs finishing) both share it, and
time moves when the client sleeps. Only the execute whose answer times out
needs real (scaled) time, because the emulator's delay is real.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from runner import lifecycle
from runner.api import (
    ApiError,
    AuthError,
    CelonisClient,
    JobBusyError,
    KeyAuth,
    NetworkError,
    NotFoundError,
    OAuthClientAuth,
    ProtocolError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    UnclearExecuteError,
    auth_from_config,
)
from runner.api.auth import Auth, Secret
from runner.clock import Clock
from runner.emulator import Emulator, Scenario
from runner.lifecycle import Verdict
from runner.shared_types import AuthConfig
from tests.emulator_fixtures import FakeClock as SharedFakeClock

POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
JOB_2 = "5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55"
MISSING_JOB = "0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349"

API_KEY = "api-key-7f3c9e1b2a"
APP_KEY = "app-key-4d8a6c0e5f"
CLIENT_ID = "client-id-2b9e"
CLIENT_SECRET = "client-secret-8c1f5a3d"

JOB_PATH = f"/integration/api/pools/{POOL}/jobs/{JOB}"
STATUS_PATH = f"/integration/api/pools/{POOL}/logs/status"
EXECUTE_PATH = f"/integration/api/v2/data-pools/{POOL}/data-jobs/{JOB}/execute"
TOKEN_PATH = "/oauth2/token"

SCALE = 1000.0


class FakeClock(SharedFakeClock):
    """The shared fake clock, starting at 0."""

    def __init__(self) -> None:
        super().__init__(start=0.0)


class SteppedClock:
    """A clock the client and the emulator share: time moves when the client sleeps.

    Real time passes too (unscaled: milliseconds per test), so nothing in the
    emulator happens on its own while a test runs; `jump` moves only time.
    """

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() - self._start + self.offset

    def time(self) -> float:
        return 1_700_000_000.0 + self.monotonic()

    def sleep(self, seconds: float) -> None:
        self.offset += max(seconds, 0.0)

    jump = sleep

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if not event.is_set():
            self.sleep(seconds)
        return event.is_set()


def scenario(**fields: Any) -> Scenario:
    job: dict[str, Any] = {
        "id": JOB,
        "name": "Load orders",
        "duration": "60s",
        "outcome": "SUCCESS",
        "last_run": "SUCCESS",
    }
    job.update(fields.pop("job", {}))
    data: dict[str, Any] = {
        "time_scale": SCALE,
        "queued_for": "1s",
        "stale_status_for": "0s",
        "pools": [
            {
                "id": POOL,
                "name": "Sales",
                "jobs": [job, {"id": JOB_2, "name": "Transform", "duration": "30s"}],
            }
        ],
    }
    data.update(fields)
    return Scenario.from_dict(data)


@contextmanager
def emulator(sc: Scenario, clock: Clock | None = None) -> Iterator[Emulator]:
    with Emulator(
        sc,
        clock=clock if clock is not None else SteppedClock(),
        api_keys=[API_KEY],
        app_keys=[APP_KEY],
        oauth_clients={CLIENT_ID: CLIENT_SECRET},
    ) as emu:
        yield emu


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def make_client(
    base_url: str,
    session: requests.Session,
    clock: Clock,
    *,
    auth: Auth | None = None,
    retry: RetryPolicy | None = None,
    timeouts: tuple[float, float] = (2.0, 5.0),
) -> CelonisClient:
    return CelonisClient.connect(
        base_url,
        auth if auth is not None else KeyAuth("Bearer", Secret(API_KEY), "CELONIS_API_KEY"),
        session,
        clock,
        timeouts=timeouts,
        retry=retry if retry is not None else RetryPolicy(),
    )


def requests_to(emu: Emulator, path: str, method: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in emu.journal()
        if e["type"] == "request" and e["path"] == path and method in (None, e["method"])
    ]


def status_fault(path: str, status: int, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"method": method, "path": path, "action": "status", "status": status, **extra}


def retry_events(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "api.retry"]


# -- retries of reads --------------------------------------------------------------------


def test_429_waits_what_x_ratelimit_reset_asks(session: requests.Session) -> None:
    fault = status_fault(JOB_PATH, 429, headers={"x-ratelimit-reset": "7"}, times=2)
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu, capture_logs() as logs:
        status = make_client(emu.base_url, session, clock).job_status(POOL, JOB)
        assert status.status == "SUCCESS"
        assert [e["status"] for e in requests_to(emu, JOB_PATH)] == [429, 429, 200]
    assert clock.sleeps == [7.0, 7.0]
    assert [(e["status"], e["attempt"], e["wait"]) for e in retry_events(logs)] == [
        (429, 1, 7.0),
        (429, 2, 7.0),
    ]
    assert retry_events(logs)[0]["path"] == JOB_PATH
    assert retry_events(logs)[0]["method"] == "GET"


def test_429_waits_retry_after_seconds(session: requests.Session) -> None:
    fault = status_fault(JOB_PATH, 429, headers={"Retry-After": "12"}, times=1)
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu:
        make_client(emu.base_url, session, clock).job_status(POOL, JOB)
    assert clock.sleeps == [12.0]


def test_429_waits_until_a_retry_after_date(session: requests.Session) -> None:
    clock = FakeClock()
    date = email.utils.formatdate(clock.time() + 30, usegmt=True)
    fault = status_fault(JOB_PATH, 429, headers={"Retry-After": date}, times=1)
    with emulator(scenario(faults=[fault])) as emu:
        make_client(emu.base_url, session, clock).job_status(POOL, JOB)
    assert clock.sleeps == [30.0]


def test_429_wait_is_capped(session: requests.Session) -> None:
    fault = status_fault(JOB_PATH, 429, headers={"x-ratelimit-reset": "3600"}, times=1)
    clock = FakeClock()
    policy = RetryPolicy(rate_limit_cap=120.0, budget=1000.0)
    with emulator(scenario(faults=[fault])) as emu:
        make_client(emu.base_url, session, clock, retry=policy).job_status(POOL, JOB)
    assert clock.sleeps == [120.0]


def test_emulator_rate_limit_is_honoured(session: requests.Session) -> None:
    clock = FakeClock()
    sc = scenario(rate_limit={"requests": 2, "per": "1h"})
    with emulator(sc) as emu:
        client = make_client(emu.base_url, session, clock, retry=RetryPolicy(max_attempts=2))
        client.job_status(POOL, JOB)
        client.job_status(POOL, JOB)
        with pytest.raises(RateLimitedError) as info:
            client.job_status(POOL, JOB)
    assert clock.sleeps == [120.0]  # it asked for about an hour: capped
    assert info.value.retry_after is not None and info.value.retry_after > 300


def test_rate_limit_beyond_the_budget_raises_at_once(session: requests.Session) -> None:
    fault = status_fault(JOB_PATH, 429, headers={"x-ratelimit-reset": "100"})
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu:
        client = make_client(emu.base_url, session, clock, retry=RetryPolicy(budget=50.0))
        with pytest.raises(RateLimitedError) as info:
            client.job_status(POOL, JOB)
        assert len(requests_to(emu, JOB_PATH)) == 1
    assert clock.sleeps == []
    assert str(info.value) == (
        f"GET {JOB_PATH}: HTTP 429 Too Many Requests (LIMIT_RATE_EXCEEDED: Rate limit exceeded.):"
        " rate limited (the server asked to wait 100 s)"
    )


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_retried_with_backoff(session: requests.Session, code: int) -> None:
    clock = FakeClock()
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=60.0)
    with emulator(scenario(faults=[status_fault(JOB_PATH, code, times=2)])) as emu:
        status = make_client(emu.base_url, session, clock, retry=policy).job_status(POOL, JOB)
        assert [e["status"] for e in requests_to(emu, JOB_PATH)] == [code, code, 200]
    assert status.status == "SUCCESS"
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 1.0 and 0 <= clock.sleeps[1] <= 2.0


def test_501_is_not_retried(session: requests.Session) -> None:
    clock = FakeClock()
    with emulator(scenario(faults=[status_fault(JOB_PATH, 501)])) as emu:
        with pytest.raises(ServerError):
            make_client(emu.base_url, session, clock).job_status(POOL, JOB)
        assert len(requests_to(emu, JOB_PATH)) == 1


@pytest.mark.parametrize("action", ["drop_before", "drop_after"])
def test_dropped_connection_on_a_read_is_retried(session: requests.Session, action: str) -> None:
    fault = {"method": "GET", "path": JOB_PATH, "action": action, "times": 1}
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu, capture_logs() as logs:
        status = make_client(emu.base_url, session, clock).job_status(POOL, JOB)
    assert status.status == "SUCCESS"
    assert len(clock.sleeps) == 1
    assert [e["error"] for e in retry_events(logs)] == ["dropped"]


def test_read_timeout_on_a_read_is_retried(session: requests.Session) -> None:
    fault = {"method": "GET", "path": JOB_PATH, "action": "delay", "delay": 0.4, "times": 1}
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu, capture_logs() as logs:
        client = make_client(emu.base_url, session, clock, timeouts=(2.0, 0.1))
        assert client.job_status(POOL, JOB).status == "SUCCESS"
    assert [e["error"] for e in retry_events(logs)] == ["read_timeout"]


def test_time_budget_exhausted_raises_the_last_error(session: requests.Session) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=100, budget=30.0, backoff_base=2.0, backoff_cap=10.0)
    with emulator(scenario(faults=[status_fault(JOB_PATH, 503)])) as emu, capture_logs() as logs:
        with pytest.raises(ServerError) as info:
            make_client(emu.base_url, session, clock, retry=policy).job_status(POOL, JOB)
        sent = len(requests_to(emu, JOB_PATH))
    assert sum(clock.sleeps) <= 30.0
    assert sent == len(clock.sleeps) + 1 > 2
    assert str(info.value) == (
        f"GET {JOB_PATH}: HTTP 503 Service Unavailable"
        " (INTERNAL_SERVER_ERROR: Service Unavailable): a fault on Celonis' side"
    )
    assert [e["reason"] for e in logs if e["event"] == "api.giving_up"] == ["time budget"]


def test_attempt_limit(session: requests.Session) -> None:
    clock = FakeClock()
    with emulator(scenario(faults=[status_fault(JOB_PATH, 500)])) as emu:
        client = make_client(emu.base_url, session, clock, retry=RetryPolicy(max_attempts=3))
        with pytest.raises(ServerError):
            client.job_status(POOL, JOB)
        assert len(requests_to(emu, JOB_PATH)) == 3
    assert len(clock.sleeps) == 2


def test_refused_connection_is_a_network_error(session: requests.Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    client = make_client(
        f"http://127.0.0.1:{port}", session, clock, retry=RetryPolicy(max_attempts=3)
    )
    with pytest.raises(NetworkError) as info:
        client.list_pools()
    assert info.value.kind == "refused"
    assert str(info.value) == "GET /integration/api/pools: could not connect (connection refused)"
    assert len(clock.sleeps) == 2
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_an_answer_that_is_not_json(session: requests.Session) -> None:
    fault = status_fault(JOB_PATH, 200, body="<html>maintenance</html>")
    with emulator(scenario(faults=[fault])) as emu, pytest.raises(ProtocolError) as info:
        make_client(emu.base_url, session, FakeClock()).job_status(POOL, JOB)
    assert str(info.value).startswith(f"GET {JOB_PATH}: HTTP 200: the answer is not JSON (")
    assert f"{emu.base_url} does not answer like Celonis; check the base URL" in str(info.value)
    assert info.value.__context__ is None and "maintenance" not in repr(vars(info.value))


# -- auth --------------------------------------------------------------------------------


def test_bearer_and_appkey_headers(session: requests.Session) -> None:
    environ = {"CELONIS_API_KEY": API_KEY, "APP_KEY": APP_KEY}
    bearer = auth_from_config(AuthConfig(type="api_key"), environ)
    appkey = auth_from_config(AuthConfig(type="app_key", key_env="APP_KEY"), environ)
    with emulator(scenario()) as emu:
        for auth in (bearer, appkey):
            pools = make_client(emu.base_url, session, FakeClock(), auth=auth).list_pools()
            assert [(p.id, p.name) for p in pools] == [(POOL, "Sales")]
        assert [e["auth"] for e in requests_to(emu, "/integration/api/pools")] == [
            "bearer",
            "appkey",
        ]


def test_401_message_word_for_word_and_not_retried(session: requests.Session) -> None:
    auth = KeyAuth("Bearer", Secret("wrong-key-0000"), "CELONIS_API_KEY")
    with emulator(scenario()) as emu:
        with pytest.raises(AuthError) as info:
            make_client(emu.base_url, session, FakeClock(), auth=auth).job_status(POOL, JOB)
        assert len(requests_to(emu, JOB_PATH)) == 1
    assert str(info.value) == (
        f"GET {JOB_PATH}: HTTP 401 Unauthorized: the API key in $CELONIS_API_KEY"
        " (connection.auth.type api_key) was refused: check the key in $CELONIS_API_KEY"
    )
    assert info.value.exit_code == 3


def test_403_message_word_for_word(session: requests.Session) -> None:
    with emulator(scenario(forbidden_pools=[POOL])) as emu, pytest.raises(AuthError) as info:
        make_client(emu.base_url, session, FakeClock()).job_status(POOL, JOB)
    assert str(info.value) == (
        f"GET {JOB_PATH}: HTTP 403 Forbidden (ADMIN_ACCESS_ERROR: Access Denied.):"
        " the API key in $CELONIS_API_KEY (connection.auth.type api_key) needs 'view' and"
        f" 'manage' permission on pool {POOL}"
    )
    assert API_KEY not in str(info.value)


def test_404_message_word_for_word(session: requests.Session) -> None:
    with emulator(scenario()) as emu, pytest.raises(NotFoundError) as info:
        make_client(emu.base_url, session, FakeClock()).job_status(POOL, MISSING_JOB)
    assert str(info.value) == (
        f"GET /integration/api/pools/{POOL}/jobs/{MISSING_JOB}: HTTP 404 Not Found"
        f" (NOT_FOUND: Data job {MISSING_JOB} not found in data pool {POOL}.):"
        f" pool {POOL} or job {MISSING_JOB} does not exist, or the key cannot see it"
    )


def oauth(secret: str = CLIENT_SECRET) -> Auth:
    environ = {"CELONIS_CLIENT_ID": CLIENT_ID, "CELONIS_CLIENT_SECRET": secret}
    return auth_from_config(AuthConfig(type="oauth"), environ)


def test_oauth_token_is_fetched_once_and_cached(session: requests.Session) -> None:
    with emulator(scenario()) as emu:
        client = make_client(emu.base_url, session, FakeClock(), auth=oauth())
        for _ in range(3):
            client.job_status(POOL, JOB)
        tokens = requests_to(emu, TOKEN_PATH, "POST")
        assert [(e["status"], e["auth"]) for e in tokens] == [(200, "basic")]
        assert {e["auth"] for e in requests_to(emu, JOB_PATH)} == {"bearer"}


def test_oauth_token_is_refreshed_before_it_expires(session: requests.Session) -> None:
    clock = FakeClock()
    # The emulator's clock moves only in real time (milliseconds): no expiry on its side.
    with emulator(scenario(token_lifetime="120s"), clock=SteppedClock()) as emu:
        auth = oauth()
        client = make_client(emu.base_url, session, clock, auth=auth)
        client.job_status(POOL, JOB)
        clock.now += 50  # margin: min(60 s, half the lifetime) = 60 s, so due at 60 s
        client.job_status(POOL, JOB)
        assert len(requests_to(emu, TOKEN_PATH)) == 1
        clock.now += 15
        client.job_status(POOL, JOB)
        assert len(requests_to(emu, TOKEN_PATH)) == 2
        assert all(e["status"] == 200 for e in requests_to(emu, JOB_PATH))
    assert isinstance(auth, OAuthClientAuth) and auth.tokens_fetched == 2


def test_oauth_token_is_refreshed_once_on_a_401(session: requests.Session) -> None:
    # The client's clock stands still, so it believes the token is fresh; on the
    # emulator's clock an hour passes and the token expires.
    server_clock = SteppedClock()
    with (
        emulator(scenario(token_lifetime="10m"), clock=server_clock) as emu,
        capture_logs() as logs,
    ):
        client = make_client(emu.base_url, session, FakeClock(), auth=oauth())
        client.job_status(POOL, JOB)
        server_clock.jump(3600)
        assert client.job_status(POOL, JOB).status == "SUCCESS"
        assert [e["status"] for e in requests_to(emu, JOB_PATH)] == [200, 401, 200]
        assert len(requests_to(emu, TOKEN_PATH)) == 2
    assert [e["event"] for e in logs].count("api.token_refused_refreshing") == 1


def test_oauth_refused_client_message(session: requests.Session) -> None:
    with emulator(scenario()) as emu:
        with pytest.raises(AuthError) as info:
            make_client(emu.base_url, session, FakeClock(), auth=oauth("nope")).list_pools()
        assert len(requests_to(emu, TOKEN_PATH)) == 1
    assert str(info.value) == (
        "POST /oauth2/token: HTTP 401 Unauthorized (invalid_client): the OAuth token request"
        " (connection.auth.type oauth) was refused: check the client id and secret in"
        " $CELONIS_CLIENT_ID and"
        " $CELONIS_CLIENT_SECRET and that the client has the scope 'integration.data-pools'"
    )


# -- statuses ----------------------------------------------------------------------------


def test_pool_statuses_use_one_request(session: requests.Session) -> None:
    with emulator(scenario()) as emu:
        client = make_client(emu.base_url, session, FakeClock())
        statuses = client.pool_statuses(POOL, [JOB, JOB_2])
        assert len(requests_to(emu, STATUS_PATH)) == 1
        assert [e["path"] for e in emu.journal() if e["type"] == "request"] == [STATUS_PATH]
    assert statuses[JOB].status == "SUCCESS" and statuses[JOB].last_execution_start is not None
    assert statuses[JOB_2].status is None and statuses[JOB_2].last_execution_start is None


def test_pool_statuses_match_ids_in_any_case(session: requests.Session) -> None:
    with emulator(scenario()) as emu:
        client = make_client(emu.base_url, session, FakeClock())
        statuses = client.pool_statuses(POOL, [JOB.upper()])
        assert [e["path"] for e in emu.journal() if e["type"] == "request"] == [STATUS_PATH]
    assert statuses[JOB.upper()].job_id == JOB.upper()
    assert statuses[JOB.upper()].status == "SUCCESS"


@pytest.mark.parametrize("how", ["404", "403"])
def test_pool_statuses_fall_back_to_one_request_per_job(
    session: requests.Session, how: str
) -> None:
    if how == "404":
        sc = scenario(logs_status_unavailable=True)
    else:
        sc = scenario(faults=[status_fault(STATUS_PATH, 403)])
    with emulator(sc) as emu, capture_logs() as logs:
        client = make_client(emu.base_url, session, FakeClock())
        for _ in range(2):
            statuses = client.pool_statuses(POOL, [JOB, JOB_2])
            assert statuses[JOB].status == "SUCCESS"
            assert statuses[JOB].current_execution_id is not None
            assert statuses[JOB_2].status is None
        assert len(requests_to(emu, STATUS_PATH)) == 1
        assert len(requests_to(emu, JOB_PATH)) == 2
    assert [e["event"] for e in logs].count("api.pool_status_unavailable") == 1


def test_unknown_status_is_running_and_logged_once(session: requests.Session) -> None:
    sc = scenario(job={"running_at_start": "30s", "odd_status": "WAITING_FOR_RESOURCES"})
    with emulator(sc) as emu, capture_logs() as logs:
        client = make_client(emu.base_url, session, FakeClock())
        status = client.job_status(POOL, JOB)
        assert status.is_unknown and status.in_progress and not status.is_finished
        client.pool_statuses(POOL, [JOB])
        with pytest.raises(JobBusyError):
            client.execute(POOL, JOB, "DELTA")
    unknown = [e for e in logs if e["event"] == "api.unknown_status"]
    assert len(unknown) == 1 and unknown[0]["log_level"] == "warning"
    assert unknown[0]["status"] == "WAITING_FOR_RESOURCES"


def test_list_jobs_and_cancel(session: requests.Session) -> None:
    with emulator(scenario(job={"running_at_start": "30s"})) as emu:
        client = make_client(emu.base_url, session, FakeClock())
        jobs = {job.id: job for job in client.list_jobs(POOL)}
        assert jobs[JOB].name == "Load orders" and jobs[JOB].status.status == "RUNNING"
        client.cancel(POOL, JOB)
        assert client.job_status(POOL, JOB).status == "CANCEL"


# -- execute -----------------------------------------------------------------------------


def executes(emu: Emulator) -> list[dict[str, Any]]:
    return requests_to(emu, EXECUTE_PATH, "POST")


def test_execute_a_job_that_is_running_raises_job_busy(session: requests.Session) -> None:
    with emulator(scenario(job={"running_at_start": "30s"})) as emu:
        with pytest.raises(JobBusyError) as info:
            make_client(emu.base_url, session, FakeClock()).execute(POOL, JOB, "DELTA")
        assert executes(emu) == []
    assert info.value.job_status.status == "RUNNING"
    assert str(info.value) == (
        f"job {JOB} in pool {POOL} is already RUNNING (a run this runner did not start):"
        " wait for it to finish, then trigger it again"
    )


def test_execute_refused_with_409_raises_job_busy(session: requests.Session) -> None:
    fault = status_fault(EXECUTE_PATH, 409, method="POST", times=1)
    with emulator(scenario(faults=[fault])) as emu:
        with pytest.raises(JobBusyError) as info:
            make_client(emu.base_url, session, FakeClock()).execute(POOL, JOB, "DELTA")
        assert len(executes(emu)) == 1
    assert str(info.value) == (
        f"job {JOB} in pool {POOL} is already running (the API refused the execute with"
        " HTTP 409): wait for it to finish, then trigger it again"
    )
    # the refusal's moment, within bounds: after the POST went out, before its answer came
    claim = info.value.claim("DELTA", 0.0)
    assert claim.running_from_ms is not None and claim.running_at_ms is not None
    assert claim.running_from_ms < claim.running_at_ms


def test_a_busy_job_read_after_a_stale_pool_entry_claims_the_running_execution(
    session: requests.Session,
) -> None:
    # The pool's logs/status, read first, still shows the previous run (SUCCESS, its start: the
    # view lags 60 s); the job's own answer, read once the view moved on, shows someone else's
    # run RUNNING. The claim is a moment that run was going, not the previous run's start:
    # adopted with it, the history gives that run, never the previous one that ended.
    clock = SteppedClock()
    with emulator(scenario(status_lag="60s", job={"duration": "10m"}), clock=clock) as emu:
        client = make_client(emu.base_url, session, clock)
        clock.jump(10)
        client.execute(POOL, JOB, "DELTA")  # someone else's run, began at ~10
        clock.jump(55)  # the view shows ~5: the previous run
        entries = client.pool_entries(POOL)
        assert entries is not None and entries[JOB].status == "SUCCESS"
        clock.jump(10)  # the view shows ~15: the new run
        with pytest.raises(JobBusyError) as busy:
            client.execute(POOL, JOB, "DELTA", pool_entries=entries)
        assert busy.value.job_status.status == "RUNNING"
        assert busy.value.running_at_ms != entries[JOB].last_execution_start
        history = client.execution_history(POOL, JOB, lifecycle.HISTORY_LIMIT)
    adopted = busy.value.claim("DELTA", 0.0)
    assert adopted.running_from_ms is None  # a start, not a moment within bounds
    ours = lifecycle.ours_in_history(adopted, history)
    assert ours is not None and ours.status == "RUNNING", ours
    assert busy.value.running_at_ms == ours.start_date  # read again: the busy run's own start
    assert lifecycle.judge_history(adopted, history) is Verdict.ACTIVE


@pytest.mark.parametrize("offset", ["0s", "2m", "-2m", "5m", "-5m"])
def test_execute_dropped_after_start_is_settled_from_the_history_on_celonis_clock(
    session: requests.Session, offset: str
) -> None:
    # The answer is lost after the job started; status and history show the previous run
    # for 10 s; Celonis' clock is `offset` off ours. The history proves the run ours.
    fault = {"method": "POST", "path": EXECUTE_PATH, "action": "drop_after", "times": 1}
    clock = SteppedClock()
    sc = scenario(faults=[fault], stale_status_for="10s", clock_offset=offset)
    with emulator(sc, clock=clock) as emu:
        client = make_client(emu.base_url, session, clock)
        with pytest.raises(UnclearExecuteError) as caught:
            client.execute(POOL, JOB, "DELTA")
        handle = caught.value.handle
        seen = []
        for _ in range(5):
            history = client.execution_history(POOL, JOB, lifecycle.HISTORY_LIMIT)
            seen.append(lifecycle.settle(handle, history, client.celonis_floor_ms(), 300.0))
            clock.sleep(5)
        assert seen[0] is lifecycle.Settlement.UNCLEAR  # stale: the previous run only
        assert seen[-1] is lifecycle.Settlement.STARTED
        stale_then_ours = []
        for _ in range(30):
            status = client.pool_statuses(POOL, [JOB])[JOB]
            stale_then_ours.append(lifecycle.judge_status(handle, status))
            if stale_then_ours[-1] is Verdict.FINISHED:
                break
            clock.sleep(5)
        assert stale_then_ours[-1] is Verdict.FINISHED and status.is_success
        assert clock.monotonic() - handle.triggered_at >= 59  # the run lasts 60 s
        assert len(emu.executions(JOB)) == 1 and len(executes(emu)) == 1


def test_a_stale_success_is_not_the_end_of_a_run_started_at_once_after_it(
    session: requests.Session,
) -> None:
    # Run again at once: Celonis shows the previous run (status, pool entry and history)
    # for 30 s after each execute; the second run's end is its own, not the first's.
    clock = SteppedClock()
    with emulator(scenario(stale_status_for="30s"), clock=clock) as emu:
        client = make_client(emu.base_url, session, clock)
        ends = []
        for _ in range(2):
            handle = client.execute(POOL, JOB, "FULL")
            while True:
                status = client.pool_statuses(POOL, [JOB])[JOB]
                verdict = lifecycle.judge_status(handle, status)
                if verdict is Verdict.NEEDS_HISTORY:
                    history = client.execution_history(POOL, JOB, lifecycle.HISTORY_LIMIT)
                    verdict = lifecycle.judge_history(handle, history)
                if verdict is Verdict.FINISHED:
                    break
                assert clock.monotonic() - handle.triggered_at < 300, "never finished"
                clock.sleep(2)
            ends.append(clock.monotonic() - handle.triggered_at)
        assert len(emu.executions(JOB)) == 2
    assert min(ends) >= 59  # each run lasts 60 s: no stale SUCCESS was taken as its end


@pytest.mark.parametrize("code", [500, 503])
def test_execute_server_error_reads_the_status_and_never_resends(
    session: requests.Session, code: int
) -> None:
    fault = status_fault(EXECUTE_PATH, code, method="POST", times=1)
    with emulator(scenario(faults=[fault])) as emu:
        with pytest.raises(UnclearExecuteError) as caught:
            make_client(emu.base_url, session, FakeClock()).execute(POOL, JOB, "DELTA")
        assert emu.executions(JOB) == []
        assert [e["status"] for e in executes(emu)] == [code]
        gets = [e for e in emu.journal() if e["type"] == "request" and e["method"] == "GET"]
        assert len(gets) == 2  # the status before the POST; never re-sent, nothing waited for
    assert caught.value.handle.attempts == 1 and caught.value.status == code


def test_execute_429_is_sent_again_after_the_wait(session: requests.Session) -> None:
    fault = status_fault(
        EXECUTE_PATH, 429, method="POST", headers={"x-ratelimit-reset": "5"}, times=1
    )
    clock = FakeClock()
    with emulator(scenario(faults=[fault])) as emu:
        handle = make_client(emu.base_url, session, clock).execute(POOL, JOB, "DELTA")
        assert len(emu.executions(JOB)) == 1
    assert handle.attempts == 2
    assert clock.sleeps == [5.0]


def run_to_end(client: CelonisClient, clock: Clock) -> None:
    handle = client.execute(POOL, JOB, "DELTA")
    for _ in range(100):
        status = client.pool_statuses(POOL, [JOB])[JOB]
        if lifecycle.judge_status(handle, status) is Verdict.FINISHED:
            return
        clock.sleep(10)
    raise AssertionError("the run never finished")


def test_failure_reason_is_the_scenarios_message(session: requests.Session) -> None:
    message = "Extraction failed: table ORDERS does not exist in the source system"
    clock = SteppedClock()
    sc = scenario(job={"outcome": "FAIL", "message": message})
    with emulator(sc, clock=clock) as emu:
        client = make_client(emu.base_url, session, clock)
        run_to_end(client, clock)
        assert client.job_status(POOL, JOB).status == "FAIL"
        assert client.failure_reason(POOL, JOB) == message


def test_failure_reason_none_without_a_failed_task(session: requests.Session) -> None:
    with emulator(scenario()) as emu:
        client = make_client(emu.base_url, session, FakeClock())
        assert client.failure_reason(POOL, JOB) is None  # last run: SUCCESS
        assert client.failure_reason(POOL, JOB_2) is None  # never ran


def test_failure_reason_is_best_effort(session: requests.Session) -> None:
    history = f"/integration/api/pools/{POOL}/logs/{JOB}/executions"
    with emulator(scenario(faults=[status_fault(history, 500)])) as emu, capture_logs() as logs:
        client = make_client(emu.base_url, session, FakeClock(), retry=RetryPolicy(max_attempts=2))
        assert client.failure_reason(POOL, JOB) is None
    assert "api.failure_reason_unavailable" in [e["event"] for e in logs]


def test_failure_reason_raises_auth_errors(session: requests.Session) -> None:
    with emulator(scenario(forbidden_pools=[POOL])) as emu, pytest.raises(AuthError):
        make_client(emu.base_url, session, FakeClock()).failure_reason(POOL, JOB)


# -- no secret anywhere ------------------------------------------------------------------


def _texts(error: BaseException) -> list[str]:
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(vars(current)), repr(current.args)]
        current = current.__cause__ or current.__context__
    return texts


def test_no_key_token_or_secret_in_errors_or_logs(session: requests.Session) -> None:
    errors: list[BaseException] = []
    faults = [
        {"method": "POST", "path": EXECUTE_PATH, "action": "drop_after", "times": 1},
        status_fault(JOB_PATH, 500, times=1),
        {"method": "GET", "path": STATUS_PATH, "action": "drop_before", "times": 1},
    ]
    sc = scenario(token_lifetime="10m", faults=faults, job={"duration": "10h"})
    server_clock = SteppedClock()
    with emulator(sc, clock=server_clock) as emu, capture_logs() as logs:
        wrong = KeyAuth("Bearer", Secret("wrong-" + API_KEY), "CELONIS_API_KEY")
        for auth in (wrong, oauth("wrong-" + CLIENT_SECRET)):
            try:
                make_client(emu.base_url, session, FakeClock(), auth=auth).list_pools()
            except ApiError as error:
                errors.append(error)
        good = oauth()
        client = make_client(emu.base_url, session, FakeClock(), auth=good)
        try:
            client.execute(POOL, JOB, "DELTA")  # its answer is lost: unclear, not re-sent
        except ApiError as error:
            errors.append(error)
        tokens = list(emu._credentials._tokens)  # the tokens it handed out
        server_clock.jump(3600)  # the token expires on the emulator's side: a 401, a refresh
        for call in (
            lambda: client.job_status(POOL, MISSING_JOB),
            lambda: client.execute(POOL, JOB, "DELTA"),  # still running: JobBusyError
        ):
            try:
                call()
            except ApiError as error:
                errors.append(error)
        assert isinstance(good, OAuthClientAuth)
        tokens += list(emu._credentials._tokens)
        assert good.tokens_fetched == 2
    assert len(errors) == 5 and len(set(tokens)) == 2
    secrets = [API_KEY, APP_KEY, CLIENT_SECRET, CLIENT_ID, *tokens]
    haystack = "\n".join([*(t for e in errors for t in _texts(e)), *map(repr, logs)])
    for secret in secrets:
        assert secret not in haystack
    assert "Authorization" not in haystack and "Basic " not in haystack
    assert repr(good).startswith("OAuthClientAuth(") and CLIENT_ID not in repr(vars(good))
