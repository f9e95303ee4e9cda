"""Unit tests of the API client's pure parts: base URL rules, auth, backoff, headers, the handle."""

from __future__ import annotations

import http.client
import random
import socket

import pytest
import requests
import urllib3.exceptions

from runner.api import (
    JobBusyError,
    JobStatus,
    KeyAuth,
    NetworkError,
    OAuthClientAuth,
    RetryPolicy,
    Secret,
    auth_from_config,
    backoff_delay,
    redact_headers,
    resolve_base_url,
    retry_after_seconds,
)
from runner.api.transport import network_error
from runner.errors import ExitCode, UsageError
from runner.shared_types import AuthConfig, Connection
from tests.emulator_fixtures import FakeClock as SharedFakeClock

POOL = "11111111-1111-1111-1111-111111111111"
JOB = "22222222-2222-2222-2222-222222222222"


class FakeClock(SharedFakeClock):
    """The shared fake clock, starting at 0."""

    def __init__(self) -> None:
        super().__init__(start=0.0)


# -- base URL --


def test_base_url_override_wins_then_env_then_manifest() -> None:
    conn = Connection(team="acme", realm="eu-1")
    env = {"CELONIS_BASE_URL": "https://env.eu-2.celonis.cloud/"}
    assert resolve_base_url(conn, "https://cli.us-1.celonis.cloud", env) == (
        "https://cli.us-1.celonis.cloud"
    )
    assert resolve_base_url(conn, None, env) == "https://env.eu-2.celonis.cloud"
    assert resolve_base_url(conn, None, {}) == "https://acme.eu-1.celonis.cloud"
    assert resolve_base_url(conn, "", {"CELONIS_BASE_URL": ""}) == "https://acme.eu-1.celonis.cloud"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:9000", "http://127.0.0.2"]
)
def test_base_url_http_allowed_on_loopback(url: str) -> None:
    assert resolve_base_url(Connection(), url, {}) == url.rstrip("/")


def test_base_url_missing() -> None:
    with pytest.raises(UsageError) as info:
        resolve_base_url(Connection(), None, {})
    assert str(info.value) == (
        "no Celonis base URL: set connection.base_url (or connection.team and connection.realm)"
        " in the manifest, set $CELONIS_BASE_URL, or pass --base-url"
    )
    assert info.value.exit_code == ExitCode.INVALID


def test_base_url_http_refused_for_remote_host() -> None:
    with pytest.raises(UsageError) as info:
        resolve_base_url(Connection(), None, {"CELONIS_BASE_URL": "http://acme.eu-1.celonis.cloud"})
    assert str(info.value) == (
        "base URL from $CELONIS_BASE_URL uses http:// for acme.eu-1.celonis.cloud:"
        " only https:// is allowed (http:// only for 127.0.0.1, ::1 and localhost)"
    )


@pytest.mark.parametrize("url", ["acme.eu-1.celonis.cloud", "ftp://x.celonis.cloud", "https://"])
def test_base_url_not_a_url(url: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_base_url(Connection(base_url=url), None, {})
    assert str(info.value) == (
        f"base URL from the manifest's connection is not a URL: {url.rstrip('/')!r}"
        " (expected https://TEAM.REALM.celonis.cloud)"
    )


def test_base_url_with_a_bad_port() -> None:
    with pytest.raises(UsageError) as info:
        resolve_base_url(Connection(), "https://acme.eu-1.celonis.cloud:http", {})
    assert str(info.value) == (
        "base URL from --base-url is not a URL: 'https://acme.eu-1.celonis.cloud:http'"
    )
    assert info.value.__context__ is None


def test_base_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(UsageError) as info:
        resolve_base_url(Connection(), "https://me:hunter2@acme.eu-1.celonis.cloud", {})
    assert "hunter2" not in str(info.value)
    assert "must not contain a user name or password" in str(info.value)


# -- auth --


def test_auth_headers_bearer_and_appkey() -> None:
    api = auth_from_config(AuthConfig(type="api_key"), {"CELONIS_API_KEY": "s3cret-key"})
    app = auth_from_config(AuthConfig(type="app_key", key_env="MY_APP_KEY"), {"MY_APP_KEY": "ak"})
    assert api.authorization(None) == "Bearer s3cret-key"  # type: ignore[arg-type]
    assert app.authorization(None) == "AppKey ak"  # type: ignore[arg-type]
    assert isinstance(api, KeyAuth)
    assert "s3cret-key" not in repr(api) + str(api) + repr(vars(api))
    assert repr(api) == "KeyAuth(scheme='Bearer', key_env='CELONIS_API_KEY')"


def test_auth_missing_variable_names_it() -> None:
    with pytest.raises(UsageError) as info:
        auth_from_config(AuthConfig(type="api_key"), {"CELONIS_API_KEY": "  "})
    assert str(info.value) == (
        "$CELONIS_API_KEY is not set: connection.auth.type is api_key, so it must hold"
        " a Celonis API key"
    )
    with pytest.raises(UsageError) as info:
        auth_from_config(AuthConfig(type="oauth"), {"CELONIS_CLIENT_ID": "cid"})
    assert str(info.value) == (
        "$CELONIS_CLIENT_SECRET is not set: connection.auth.type is oauth, so $CELONIS_CLIENT_ID"
        " must hold the OAuth client id and $CELONIS_CLIENT_SECRET its secret"
    )


def test_auth_control_characters_refused_without_the_value() -> None:
    with pytest.raises(UsageError) as info:
        auth_from_config(AuthConfig(), {"CELONIS_API_KEY": "abc\rdef"})
    assert "abc" not in str(info.value)
    assert "$CELONIS_API_KEY contains a line break" in str(info.value)


def test_oauth_repr_hides_secrets() -> None:
    env = {"CELONIS_CLIENT_ID": "the-id", "CELONIS_CLIENT_SECRET": "the-secret"}
    auth = auth_from_config(AuthConfig(type="oauth"), env)
    assert isinstance(auth, OAuthClientAuth)
    shown = repr(auth) + str(auth) + repr(vars(auth))
    assert "the-secret" not in shown and "the-id" not in shown
    assert repr(Secret("x")) == str(Secret("x")) == "<secret>"


# -- backoff and rate-limit headers --


def test_backoff_full_jitter_is_capped() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=10.0)

    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [backoff_delay(policy, n, Highest()) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    rng = random.Random(7)
    samples = [backoff_delay(policy, 3, rng) for _ in range(200)]
    assert all(0 <= s <= 8 for s in samples) and min(samples) < 2 and max(samples) > 6
    assert backoff_delay(policy, 10_000, rng) <= 10


def test_retry_after_headers() -> None:
    now = 1_700_000_000.0
    assert retry_after_seconds({"x-ratelimit-reset": "17"}, now) == 17
    assert retry_after_seconds({"X-RateLimit-Reset": "3", "Retry-After": "99"}, now) == 3
    assert retry_after_seconds({"Retry-After": "42"}, now) == 42
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # now + 20 s
    assert retry_after_seconds({"Retry-After": date}, now) == pytest.approx(20)
    assert retry_after_seconds({"x-ratelimit-reset": str(now + 5)}, now) == pytest.approx(5)
    assert retry_after_seconds({"Retry-After": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None
    assert retry_after_seconds({"Retry-After": "-3"}, now) == 0


def test_redact_headers() -> None:
    headers = {"Authorization": "Bearer k", "Set-Cookie": "s=1", "x-ratelimit-remaining": "9"}
    assert redact_headers(headers) == {
        "Authorization": "<redacted>",
        "Set-Cookie": "<redacted>",
        "x-ratelimit-remaining": "9",
    }


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- network errors --


def _connection_error(reason: BaseException) -> requests.exceptions.ConnectionError:
    request = requests.Request("GET", "https://x", headers={"Authorization": "Bearer k"}).prepare()
    return requests.exceptions.ConnectionError(reason, request=request)


@pytest.mark.parametrize(
    ("exc", "kind", "may_have_arrived"),
    [
        (
            _connection_error(
                urllib3.exceptions.MaxRetryError(
                    None,  # type: ignore[arg-type]
                    "/",
                    urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[arg-type]
                )
            ),
            "refused",
            False,
        ),
        (
            _connection_error(
                urllib3.exceptions.ProtocolError(
                    "Connection aborted.", http.client.RemoteDisconnected("closed")
                )
            ),
            "dropped",
            True,
        ),
        (
            _connection_error(
                urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104))
            ),
            "dropped",
            True,
        ),
        (requests.exceptions.ReadTimeout("read timed out"), "read_timeout", True),
        (requests.exceptions.ConnectTimeout("connect timed out"), "connect_timeout", False),
        (requests.exceptions.SSLError("bad cert"), "tls", False),
    ],
)
def test_network_errors_are_classified(
    exc: requests.RequestException, kind: str, may_have_arrived: bool
) -> None:
    error = network_error(exc, "POST", "/x", (5.0, 30.0))
    assert isinstance(error, NetworkError)
    assert error.kind == kind
    assert error.request_may_have_arrived is may_have_arrived
    assert "Bearer" not in str(error) and error.__cause__ is None and error.__context__ is None


def _new_connection_error(cause: OSError, name_resolution: bool) -> BaseException:
    """What urllib3 raises when a connection cannot be opened, as 1.26 and 2.x build it.

    1.26: `raise NewConnectionError(...)` inside `except OSError`: the cause is the context.
    2.x: `raise NameResolutionError(...) from e` for a gaierror, else NewConnectionError.
    """
    error_type: type[urllib3.exceptions.NewConnectionError] = urllib3.exceptions.NewConnectionError
    if name_resolution:
        error_type = getattr(urllib3.exceptions, "NameResolutionError", error_type)
    try:
        try:
            raise cause
        except OSError as exc:
            if name_resolution and error_type is not urllib3.exceptions.NewConnectionError:
                raise error_type("host", None, exc) from exc  # type: ignore[call-arg,arg-type]
            raise error_type(None, f"Failed to establish a new connection: {exc}") from None  # type: ignore[arg-type]
    except urllib3.exceptions.NewConnectionError as built:
        if not name_resolution or error_type is urllib3.exceptions.NewConnectionError:
            built.__context__ = cause  # what `raise` inside `except` records in 1.26
            built.__suppress_context__ = False
        return _connection_error(
            urllib3.exceptions.MaxRetryError(None, "/", built)  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("urllib3_1_26", [False, True], ids=["urllib3-2", "urllib3-1.26"])
@pytest.mark.parametrize(
    ("cause", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "does not resolve"),
    ],
)
def test_connection_failures_are_classified_with_urllib3_1_26_and_2(
    monkeypatch: pytest.MonkeyPatch, urllib3_1_26: bool, cause: OSError, words: str
) -> None:
    if urllib3_1_26:
        # urllib3 1.26 has no NameResolutionError: nothing may rely on it.
        monkeypatch.delattr(urllib3.exceptions, "NameResolutionError", raising=False)
    exc = _new_connection_error(cause, isinstance(cause, socket.gaierror))
    error = network_error(exc, "GET", "/x", (5.0, 30.0))  # type: ignore[arg-type]
    assert error.kind == "refused" and not error.request_may_have_arrived and error.transient
    assert words in str(error)


# -- JobStatus and ExecutionHandle --


def test_job_status_helpers() -> None:
    running = JobStatus(JOB, "RUNNING", "e1", "i1", 5)
    assert running.is_active and not running.is_finished and running.in_progress
    assert running.markers() == {
        "currentExecutionId": "e1",
        "latestExecutionItemId": "i1",
        "lastExecutionStartDate": 5,
    }
    odd = JobStatus(JOB, "PAUSED")
    assert odd.is_unknown and odd.in_progress and not odd.is_finished
    never = JobStatus(JOB, None)
    assert not (never.is_active or never.is_finished or never.is_unknown)
    assert JobStatus(JOB, "SKIPPED").is_finished and not JobStatus(JOB, "FAIL").is_success


def test_job_busy_error_message() -> None:
    error = JobBusyError(JobStatus(JOB, "RUNNING"), pool_id=POOL)
    assert str(error) == (
        f"job {JOB} in pool {POOL} is already RUNNING (a run this runner did not start):"
        " wait for it to finish, then trigger it again"
    )
    assert error.exit_code == ExitCode.API_UNUSABLE
