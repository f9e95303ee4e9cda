"""The client against hostile answers: secrets echoed in errors, bad dates, huge and slow bodies.

Each test starts a tiny HTTP server on 127.0.0.1 that answers what the test
asks (the emulator cannot echo credentials or trickle bytes), bounded so it
stops by itself.
"""

from __future__ import annotations

import http.server
import json
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import requests

from runner.api import (
    ApiError,
    AuthError,
    CelonisClient,
    KeyAuth,
    NetworkError,
    OAuthClientAuth,
    ProtocolError,
    RateLimitedError,
    RetryPolicy,
    Secret,
    Transport,
    auth_from_config,
)
from runner.api import transport as transport_module
from runner.clock import SystemClock
from runner.errors import ExitCode, UsageError
from runner.shared_types import AuthConfig
from tests.emulator_fixtures import FakeClock

POOL = "11111111-1111-1111-1111-111111111111"
JOB = "22222222-2222-2222-2222-222222222222"
KEY = "k" * 40
CLIENT_ID = "client-0123456789"
CLIENT_SECRET = "s3cret-0123456789abcdef"

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextmanager
def local_server(handle: Handler) -> Iterator[str]:
    """A server on 127.0.0.1 calling `handle` for every request; yields its base URL."""

    class _Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def answer(status: int, body: object) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return handle


def client_for(base_url: str, auth: KeyAuth | OAuthClientAuth | None = None) -> CelonisClient:
    return CelonisClient.connect(
        base_url,
        auth or KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
        requests.Session(),
        FakeClock(),
        timeouts=(2.0, 5.0),
        retry=RetryPolicy(max_attempts=1),
    )


# -- secrets never reach an error text --


def test_a_key_after_190_characters_of_title_is_redacted_in_full() -> None:
    title = "x" * 190 + KEY
    handler = answer(401, {"errorCode": "UNAUTHORIZED", "title": title})
    with local_server(handler) as url, pytest.raises(AuthError) as caught:
        client_for(url).job_status(POOL, JOB)
    text = str(caught.value) + repr(caught.value) + str(caught.value.title)
    assert KEY[:8] not in text and "<redacted>" in text


@pytest.mark.parametrize(
    "echo",
    [
        f"{CLIENT_ID}:{CLIENT_SECRET}",
        f"bad secret {CLIENT_SECRET}",
        "Basic " + __import__("base64").b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
    ],
)
def test_a_token_endpoint_echoing_the_client_secret_does_not_leak_it(echo: str) -> None:
    body = {"error": echo, "title": f"invalid client {echo}"}
    auth = OAuthClientAuth(
        Secret(CLIENT_ID),
        Secret(CLIENT_SECRET),
        "integration.data-pools",
        client_id_env="CELONIS_CLIENT_ID",
        client_secret_env="CELONIS_CLIENT_SECRET",
    )
    with local_server(answer(401, body)) as url, pytest.raises(AuthError) as caught:
        client_for(url, auth).job_status(POOL, JOB)
    text = str(caught.value) + repr(caught.value)
    assert CLIENT_SECRET not in text and CLIENT_SECRET[:10] not in text
    assert "CELONIS_CLIENT_SECRET" in text


# -- malformed answers are protocol errors --


@pytest.mark.parametrize(
    "raw_date",
    ["NaN", "Infinity", "-Infinity", "1e400", '"\u0661\u0662\u0663"', '"\u00b2"', "-5", "1e30"],
)
def test_bad_dates_are_protocol_errors(raw_date: str) -> None:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        data = (
            f'{{"id": "{JOB}", "status": "SUCCESS", "lastExecutionStartDate": {raw_date}}}'
        ).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    with local_server(handle) as url, pytest.raises(ProtocolError) as caught:
        client_for(url).job_status(POOL, JOB)
    assert "lastExecutionStartDate is not a date" in str(caught.value)
    assert caught.value.exit_code == ExitCode.API_UNUSABLE


def test_an_answer_over_the_cap_is_refused_without_reading_it_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = 1 * 2**20
    monkeypatch.setattr(transport_module, "MAX_ANSWER_BYTES", cap)
    sent = [0]

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        # No Content-Length: the size is only known by reading (1.5 GB if read to the end).
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        block = b"[" + b"0," * 32767 + b"0"
        try:
            for _ in range(1_500_000_000 // len(block)):
                h.wfile.write(block)
                sent[0] += len(block)
        except OSError:
            pass  # the client hung up, as it should

    tracemalloc.start()
    try:
        with local_server(handle) as url, pytest.raises(ProtocolError) as caught:
            client_for(url).list_pools()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "larger than 1 MiB" in str(caught.value)
    assert peak < 8 * cap
    assert sent[0] < 200 * cap


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(2**40))
        h.end_headers()

    with local_server(handle) as url, pytest.raises(ProtocolError, match="larger than 16 MiB"):
        client_for(url).list_pools()


# -- credentials from the environment --


@pytest.mark.parametrize("value", ["k\u2019ey", "k\u00a0ey", "\u043a\u043b\u044e\u0447"])
def test_a_key_with_a_non_ascii_character_is_a_usage_error(value: str) -> None:
    cfg = AuthConfig(type="api_key", key_env="CELONIS_API_KEY")
    with pytest.raises(UsageError) as caught:
        auth_from_config(cfg, {"CELONIS_API_KEY": value})
    assert "$CELONIS_API_KEY" in str(caught.value) and value not in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID
    assert not isinstance(caught.value, ApiError)


# -- settle: what counts as evidence --


def _job_server(history: list[dict[str, object]]) -> Handler:
    job = {"id": JOB, "status": "SUCCESS", "currentExecutionId": "e-1"}

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.endswith("/logs/status"):
            answer(200, [{"id": JOB, "status": "SUCCESS"}])(h)
        elif "/executions" in h.path:
            answer(200, {"executionItems": history})(h)
        else:
            answer(200, job)(h)

    return handle


def trickle(*, headers_too: bool, stop: threading.Event) -> Handler:
    """Answer one byte every 0.3 s (for at most 6 s): each read is quick, the whole never ends."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        if not headers_too:
            h.wfile.write(head)
            h.wfile.flush()
            head = b"[" + b" " * 99
        for byte in head[:20]:
            if stop.wait(0.3):
                return
            try:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
            except OSError:
                return  # the client hung up

    return handle


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_trickling_server_is_cut_off_at_the_request_deadline(headers_too: bool) -> None:
    stop = threading.Event()
    clock = SystemClock()
    with local_server(trickle(headers_too=headers_too, stop=stop)) as url:
        transport = Transport(
            url,
            KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
            requests.Session(),
            FakeClock(),
            timeouts=(2.0, 2.0),  # longer than the gap between two bytes
            retry=RetryPolicy(max_attempts=1),
            deadline=1.0,
        )
        started = clock.monotonic()
        try:
            with pytest.raises(NetworkError) as caught:
                CelonisClient(transport).list_pools()
        finally:
            stop.set()
        took = clock.monotonic() - started
    assert caught.value.kind == "read_timeout"
    assert "no complete answer within 1 s" in str(caught.value)
    assert 0.9 <= took < 3.0


def test_an_interrupt_ends_a_retry_wait_at_once() -> None:
    calls = [0]

    def rate_limited(h: http.server.BaseHTTPRequestHandler) -> None:
        calls[0] += 1
        h.send_response(429)
        h.send_header("x-ratelimit-reset", "60")
        h.send_header("Content-Length", "0")
        h.end_headers()

    interrupt = threading.Event()
    clock = SystemClock()
    with local_server(rate_limited) as url:
        client = CelonisClient.connect(
            url,
            KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
            requests.Session(),
            clock,
            retry=RetryPolicy(max_attempts=5),
            interrupt=interrupt,
        )
        timer = threading.Timer(0.2, interrupt.set)
        timer.start()
        started = clock.monotonic()
        with pytest.raises(RateLimitedError):
            client.list_pools()
        took = clock.monotonic() - started
        timer.cancel()
        # Once set, a single request still goes out (a cancel during a stop must work)
        # but no retry starts.
        with pytest.raises(RateLimitedError):
            client.list_pools()
    assert took < 2.0
    assert calls[0] == 2


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    ("auth_type", "variables"),
    [
        ("api_key", ["CELONIS_API_KEY"]),
        ("app_key", ["CELONIS_API_KEY"]),
        ("oauth", ["CELONIS_CLIENT_ID", "CELONIS_CLIENT_SECRET"]),
    ],
)
def test_auth_errors_name_the_auth_type_and_variable(
    status: int, auth_type: str, variables: list[str]
) -> None:
    environ = {"CELONIS_API_KEY": KEY, "CELONIS_CLIENT_ID": CLIENT_ID}
    environ["CELONIS_CLIENT_SECRET"] = CLIENT_SECRET
    auth = auth_from_config(AuthConfig(type=auth_type), environ)  # type: ignore[arg-type]

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path == "/oauth2/token":
            answer(200, {"access_token": "t" * 30, "expires_in": 600})(h)
        else:
            answer(status, {"errorCode": "DENIED"})(h)

    with local_server(handle) as url, pytest.raises(AuthError) as caught:
        client_for(url, auth).job_status(POOL, JOB)  # type: ignore[arg-type]
    text = str(caught.value)
    assert f"connection.auth.type {auth_type}" in text
    assert all(f"${name}" in text for name in variables)
    assert not any(secret in text for secret in (KEY, CLIENT_SECRET, "t" * 30))


def test_an_answer_shorter_than_its_content_length_is_a_dropped_connection() -> None:
    # urllib3 2.x notices this itself; 1.26 would hand back the short body.
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(b'[{"id": "p1"}]')
        h.close_connection = True

    with local_server(handle) as url, pytest.raises(NetworkError) as caught:
        client_for(url).list_pools()
    assert caught.value.kind == "dropped"


@pytest.mark.parametrize("allow", [False, True])
def test_the_retry_rule_decides_per_request(allow: bool) -> None:
    seen: list[int | None] = []
    calls = [0]

    def unavailable(h: http.server.BaseHTTPRequestHandler) -> None:
        calls[0] += 1
        answer(503, {})(h)

    def rule(error: ApiError) -> bool:
        seen.append(error.status)
        return allow

    clock = FakeClock()
    with local_server(unavailable) as url:
        transport = Transport(
            url,
            KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
            requests.Session(),
            clock,
            retry=RetryPolicy(max_attempts=3),
        )
        with pytest.raises(ApiError):
            transport.call("GET", "/integration/api/pools", may_retry=rule)
    assert calls[0] == (3 if allow else 1)
    assert seen == [503] * (3 if allow else 1)
    assert len(clock.sleeps) == (2 if allow else 0)


def test_a_pool_status_entry_is_checked_only_for_the_jobs_asked_about() -> None:
    """A pool answers for all its jobs; a poll reads the entries of the jobs it watches. An
    unusable entry of another job does not stop the run; one of a watched job still does."""
    other = "33333333-3333-3333-3333-333333333333"
    entries = [
        {"id": JOB.upper(), "status": "RUNNING", "lastExecutionStartDate": 1_700_000_000_000},
        {"id": other, "status": "SUCCESS", "lastExecutionStartDate": "NaN"},
    ]
    with local_server(answer(200, entries)) as url:
        client = client_for(url)
        (status,) = client.pool_statuses(POOL, [JOB]).values()
        assert (status.job_id, status.status, status.last_execution_start) == (
            JOB,
            "RUNNING",
            1_700_000_000_000,
        )
        with pytest.raises(ProtocolError, match="lastExecutionStartDate is not a date"):
            client.pool_statuses(POOL, [other])


@pytest.mark.parametrize(
    ("failing", "status"),
    [("/logs/status", 503), ("/execute", 400), ("/execute", 422)],
)
def test_an_execute_that_certainly_did_not_start_says_so(failing: str, status: int) -> None:
    """A read before the POST that fails, or a POST Celonis refuses with a definite answer:
    the error says the execute took no effect (the executor then says "not started")."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.split("?")[0].endswith(failing):
            answer(status, {"title": "no"})(h)
        elif h.path.endswith("/logs/status"):
            answer(200, [{"id": JOB, "status": "SUCCESS"}])(h)
        else:
            answer(200, {"id": JOB, "status": "SUCCESS"})(h)

    with local_server(handle) as url, pytest.raises(ApiError) as caught:
        client_for(url).execute(POOL, JOB, "FULL")
    assert caught.value.status == status
    assert caught.value.took_no_effect
