"""The request layer: one `requests.Session`, explicit timeouts, error mapping, retries.

Reads are retried on 429 (waiting what `x-ratelimit-reset` or `Retry-After`
asks), on 500/502/503/504, on connection errors and on timeouts, with capped
exponential backoff and full jitter, within an attempt limit and a time
budget, in one loop (`Transport.call`) that takes a per-request rule. Requests
that are not idempotent are only retried when the server provably did not act
on them (429, or no connection at all); the execute POST's other failures are
settled by the client from the job's status, never by sending it again on a
timer. Every request also has an overall deadline (runner.api.deadline), and
answers are read within a size cap.
"""

from __future__ import annotations

import base64
import email.utils
import http
import http.client
import json
import random
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests
import requests.auth
import structlog
import urllib3.exceptions

from runner.api.auth import TOKEN_PATH, Auth
from runner.api.celonis_clock import CelonisClock
from runner.api.deadline import deadline as request_deadline
from runner.api.deadline import mount as mount_deadlines
from runner.api.errors import (
    ApiError,
    AuthError,
    NetworkError,
    NetworkKind,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
)
from runner.api.tls import TRUST_HINT
from runner.clock import Clock, SystemClock
from runner.logs import debug_enabled

log = structlog.get_logger(__name__)

USER_AGENT = "celonis-runner/0.1"
DEFAULT_TIMEOUTS = (5.0, 30.0)
DEFAULT_DEADLINE = 120.0
FIRST_CONTACT_BUDGET = 10.0
"""Until the base URL has answered once, a host name that does not resolve, a refused
connection or no connection at all is given up within this many seconds (a mistyped team
name, the emulator not started): retrying longer only delays the message."""
_NO_ANSWER = frozenset({"refused", "connect_timeout"})
RETRIED_SERVER_STATUSES = frozenset({500, 502, 503, 504})
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
MAX_ANSWER_BYTES = 16 * 2**20
"""Answers above this size are refused (ProtocolError), not read."""
ANSWER_CHUNK_BYTES = 64 * 1024
MAX_ERROR_TEXT = 200
"""Longest `errorCode` or `title` quoted in a message."""
MAX_MEDIA_TYPE = 80
"""Longest media type (`Content-Type` without parameters) quoted in a message."""
_EPOCH_THRESHOLD = 1_000_000_000.0
"""An `x-ratelimit-reset` above this is an epoch time, not a number of seconds."""


@dataclass(frozen=True)
class JsonBody:
    """A JSON request body (the internal execute's subset), sent with its content type."""

    encoded: bytes

    @classmethod
    def of(cls, value: object) -> JsonBody:
        return cls(json.dumps(value, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Times are seconds on the injected clock.

    One policy for every request: `Transport.call` retries an attempt only when
    the request's `may_retry` rule allows it for that error (reads: any
    transient failure; the execute POST: only failures that prove the request
    never reached Celonis, see `retryable`), then within `max_attempts` and
    `budget`. Waits end at once when the transport's interrupt event is set.
    """

    max_attempts: int = 8
    """Requests sent for one operation, the first one included."""
    budget: float = 300.0
    """No retry is started that would end after this much time since the first attempt."""
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    rate_limit_cap: float = 120.0
    """Longest wait honoured from `x-ratelimit-reset` / `Retry-After`."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.budget, self.backoff_base, self.backoff_cap, self.rate_limit_cap) < 0:
            raise ValueError("retry times must not be negative")


def _give_up(error: ApiError, state: RetryState, reason: str, **fields: float) -> float | None:
    """No further attempt: say why; None, what `next_wait` returns then."""
    log.warning(
        "api.giving_up",
        method=error.method,
        path=error.path,
        reason=reason,
        attempts=state.attempts,
        **fields,
    )
    return None


def backoff_delay(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry_number)]; retry_number from 0."""
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2.0 ** min(retry_number, 62))
    return rng.uniform(0.0, ceiling)


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """The wait a 429 asks for: `x-ratelimit-reset` (seconds), else `Retry-After`.

    `Retry-After` may be seconds or an HTTP date. An `x-ratelimit-reset` that
    looks like an epoch time is read as one. None when neither is usable.
    """
    headers = {name.lower(): value for name, value in headers.items()}
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is not None:
        return max(0.0, reset - now_epoch if reset > _EPOCH_THRESHOLD else reset)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_epoch)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to log: credentials and cookies replaced by `<redacted>`."""
    return {
        name: "<redacted>" if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }


@dataclass
class RetryState:
    """One operation's progress against the policy."""

    started: float
    attempts: int = 0
    waits: list[float] = field(default_factory=list)


class _AuthorizationHeader(requests.auth.AuthBase):
    # Setting the header through `auth=` also stops requests from using ~/.netrc instead.
    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "<Authorization header>"


class Transport:
    """Sends requests to one Celonis base URL and maps every failure to an ApiError."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        session: requests.Session,
        clock: Clock,
        *,
        timeouts: tuple[float, float] = DEFAULT_TIMEOUTS,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        interrupt: threading.Event | None = None,
        network_clock: Clock | None = None,
        deadline: float = DEFAULT_DEADLINE,
        ca_bundle: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify: str | bool = ca_bundle or True
        """A CA bundle file (runner.api.tls.ca_bundle), or the default trust store; never off."""
        self.deadline = deadline
        """Real seconds one request may take in all, body included (socket timeouts are per read)."""
        mount_deadlines(session)
        self.interrupt = interrupt
        """Once set, retry waits end at once and no further retry starts."""
        # Socket timeouts and the request deadline are real seconds even when `clock` is
        # scaled or fake (tests), so they are measured on a real clock, injected too.
        self.network_clock: Clock = network_clock or SystemClock()
        self.auth = auth
        self.session = session
        # `Session.request` would read the process environment on every request (proxy
        # variables and NO_PROXY, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE when `verify` is True):
        # it is read once here, by requests' own code, with the session's `trust_env`,
        # `proxies` and `cert`. Every request of this transport goes to `base_url` (the
        # token request too), and proxies depend only on its scheme and host: one
        # resolution holds for all of them.
        sending = session.merge_environment_settings(
            self.base_url + "/", {}, True, self.verify, None
        )
        self._proxies = dict(sending["proxies"])
        self._send_verify = sending["verify"]
        self._cert = sending["cert"]
        self.clock = clock
        self.celonis_clock = CelonisClock()
        """Celonis' clock against `clock`, from the Date header of every answer."""
        self.timeouts = timeouts
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self.answered = False
        """Whether the base URL has answered anything yet (any HTTP status)."""

    # -- what OAuth needs (runner.api.auth.TokenEndpoint) --

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def request_token(self, form: Mapping[str, str], basic_auth: tuple[str, str]) -> object:
        # A token grant can be repeated safely, so every transient failure is retried.
        response = self.request(
            "POST", TOKEN_PATH, form=form, basic_auth=basic_auth, idempotent=True
        )
        return self.json(response, "POST", TOKEN_PATH)

    # -- requests --

    def get_json(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        pool_id: str | None = None,
        job_id: str | None = None,
    ) -> object:
        """GET with retries, the parsed JSON answer."""
        response = self.request("GET", path, params=params, pool_id=pool_id, job_id=job_id)
        return self.json(response, "GET", shown_path(path, params))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        pool_id: str | None = None,
        job_id: str | None = None,
        idempotent: bool = True,
        form: Mapping[str, str] | JsonBody | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        """Send with retries per the policy; the successful response or the last ApiError."""
        return self.call(
            method,
            path,
            may_retry=may_retry_read if idempotent else may_retry_execute,
            params=params,
            pool_id=pool_id,
            job_id=job_id,
            form=form,
            basic_auth=basic_auth,
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        may_retry: RetryRule,
        params: Mapping[str, str | int] | None = None,
        pool_id: str | None = None,
        job_id: str | None = None,
        form: Mapping[str, str] | JsonBody | None = None,
        basic_auth: tuple[str, str] | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> requests.Response:
        """The one retry loop: attempts while `may_retry(error)`, the policy and no interrupt allow."""
        state = RetryState(started=self.clock.monotonic())
        while True:
            state.attempts += 1
            try:
                return self.send(
                    method,
                    path,
                    params=params,
                    pool_id=pool_id,
                    job_id=job_id,
                    form=form,
                    basic_auth=basic_auth,
                    on_send=on_send,
                )
            except ApiError as error:
                if not may_retry(error) or self.interrupted():
                    raise
                wait = self.next_wait(state, error)
                if wait is None or not self._sleep_before_retry(state, error, wait):
                    raise

    def interrupted(self) -> bool:
        return self.interrupt is not None and self.interrupt.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait on the clock; False (at once) when the interrupt is set."""
        if self.interrupt is None:
            self.clock.sleep(seconds)
            return True
        return not self.clock.wait(self.interrupt, seconds)

    def next_wait(self, state: RetryState, error: ApiError) -> float | None:
        """How long to wait before the next attempt, or None: give up (limit or budget)."""
        policy = self.retry
        if state.attempts >= policy.max_attempts:
            return _give_up(error, state, "attempt limit")
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            wait = min(error.retry_after, policy.rate_limit_cap)
        else:
            wait = backoff_delay(policy, state.attempts - 1, self.rng)
        elapsed = self.clock.monotonic() - state.started
        if self._never_answered(error, elapsed + wait):
            return _give_up(error, state, "nothing answers at this address")
        if elapsed + wait > policy.budget:
            return _give_up(error, state, "time budget", elapsed=round(elapsed, 3))
        return wait

    def _never_answered(self, error: ApiError, retry_at: float) -> bool:
        """True when nothing has answered at the base URL yet and a retry at `retry_at` seconds
        (plus its connect timeout) would end after FIRST_CONTACT_BUDGET."""
        if self.answered or not isinstance(error, NetworkError) or error.kind not in _NO_ANSWER:
            return False
        return retry_at + self.timeouts[0] > FIRST_CONTACT_BUDGET

    def _sleep_before_retry(self, state: RetryState, error: ApiError, wait: float) -> bool:
        log.warning(
            "api.retry",
            method=error.method,
            path=error.path,
            status=error.status,
            error=error_kind(error),
            attempt=state.attempts,
            wait=round(wait, 3),
        )
        state.waits.append(wait)
        if self.wait(wait):
            return True
        log.warning("api.retry_interrupted", method=error.method, path=error.path)
        return False

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        pool_id: str | None = None,
        job_id: str | None = None,
        form: Mapping[str, str] | JsonBody | None = None,
        basic_auth: tuple[str, str] | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> requests.Response:
        """One attempt (two when an OAuth token is refused and a fresh one may help).

        `on_send` is called before each request goes out. Raises ApiError for
        any answer outside 2xx and for every network failure.
        """
        shown = shown_path(path, params)
        refreshed = False
        while True:
            authorization = None if basic_auth is not None else self.auth.authorization(self)
            if on_send is not None:
                on_send()
            response = self._exchange(method, path, shown, params, form, basic_auth, authorization)
            if (
                response.status_code == 401
                and authorization is not None
                and not refreshed
                and self.auth.invalidate(authorization)
            ):
                refreshed = True
                log.info("api.token_refused_refreshing", method=method, path=shown)
                continue
            secrets = _credentials(authorization, basic_auth)
            self._raise_for_status(response, method, shown, pool_id, job_id, secrets)
            return response

    def _exchange(
        self,
        method: str,
        path: str,
        shown: str,
        params: Mapping[str, str | int] | None,
        form: Mapping[str, str] | JsonBody | None,
        basic_auth: tuple[str, str] | None,
        authorization: str | None,
    ) -> requests.Response:
        auth: requests.auth.AuthBase | None = None
        if basic_auth is not None:
            auth = requests.auth.HTTPBasicAuth(*basic_auth)
        elif authorization is not None:
            auth = _AuthorizationHeader(authorization)
        started = self.network_clock.monotonic()
        sent_at = self.clock.time()
        error: NetworkError | None = None
        with request_deadline(self.deadline) as watch:
            try:
                response = self._send_and_read(method, path, shown, params, form, auth)
            except requests.RequestException as exc:
                error = network_error(exc, method, shown, self.timeouts)
        if watch.expired:
            # Whatever the cut-off read produced (an error, or with urllib3 1.26 a short
            # body), the answer is incomplete.
            error = NetworkError(
                f"{method} {shown}: no complete answer within {self.deadline:g} s",
                method=method,
                path=shown,
                kind="read_timeout",
            )
        # Raised here, outside the except block, so nothing chains back to requests'
        # exception (which holds the request and its Authorization header).
        if error is not None:
            log.debug("api.no_answer", method=method, path=shown, error=error.kind)
            raise error
        self.answered = True
        self.celonis_clock.note(sent_at, self.clock.time(), response.headers.get("Date"))
        if debug_enabled():  # skips building the event (headers copied and redacted) per request
            log.debug(
                "api.response",
                method=method,
                path=shown,
                status=response.status_code,
                ms=round((self.network_clock.monotonic() - started) * 1000),
                headers=redact_headers(response.headers),
            )
        return response

    def _send_and_read(
        self,
        method: str,
        path: str,
        shown: str,
        params: Mapping[str, str | int] | None,
        form: Mapping[str, str] | JsonBody | None,
        auth: requests.auth.AuthBase | None,
    ) -> requests.Response:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data: Mapping[str, str] | bytes | None = None
        if isinstance(form, JsonBody):
            headers["Content-Type"] = "application/json"
            data = form.encoded
        else:
            data = form
        # What `Session.request` does, less its reading of the environment (see __init__).
        prepared = self.session.prepare_request(
            requests.Request(
                method.upper(),
                self.base_url + path,
                headers=headers,
                data=data or {},
                params=params or {},
                auth=auth,
            )
        )
        response = self.session.send(
            prepared,
            timeout=self.timeouts,
            verify=self._send_verify,
            proxies=self._proxies,
            cert=self._cert,
            allow_redirects=False,
            stream=True,  # the body is read by _read_body, within a size cap
        )
        _read_body(response, method, shown)
        return response

    def _raise_for_status(
        self,
        response: requests.Response,
        method: str,
        shown: str,
        pool_id: str | None,
        job_id: str | None,
        secrets: tuple[str, ...],
    ) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        token_request = shown == TOKEN_PATH
        code, title = _error_fields(response, token_request, secrets)
        prefix = f"{method} {shown}: HTTP {status} {_phrase(status)}{_detail(code, title)}"

        def fail(kind: type[ApiError], message: str) -> ApiError:
            return kind(
                message,
                method=method,
                path=shown,
                status=status,
                error_code=code,
                title=title,
                content_type=content_type(response),
            )

        auth_hint = self._auth_hint(status, token_request, pool_id)
        if auth_hint is not None:
            raise fail(AuthError, f"{prefix}: {auth_hint}")
        if status == 404:
            raise fail(NotFoundError, f"{prefix}: {_not_found_hint(pool_id, job_id)}")
        if status == 429:
            raise self._rate_limited(response, prefix, method, shown, code, title)
        if 500 <= status < 600:
            raise fail(ServerError, f"{prefix}: a fault on Celonis' side")
        if 300 <= status < 400:
            raise fail(ProtocolError, f"{prefix}: unexpected redirect; check the base URL")
        raise fail(ApiError, prefix)

    def _auth_hint(self, status: int, token_request: bool, pool_id: str | None) -> str | None:
        """What to do about an answer that refuses the credentials, or None: not such an answer."""
        if token_request and 400 <= status < 500 and status != 429:
            return self.auth.token_request_hint
        if status == 401:
            return self.auth.unauthorized_hint
        if status == 403:
            return self.auth.forbidden_hint(pool_id)
        return None

    def _rate_limited(
        self,
        response: requests.Response,
        prefix: str,
        method: str,
        shown: str,
        code: str | None,
        title: str | None,
    ) -> RateLimitedError:
        wait = retry_after_seconds(response.headers, self.clock.time())
        asked = f"the server asked to wait {wait:g} s" if wait is not None else "no wait given"
        return RateLimitedError(
            f"{prefix}: rate limited ({asked})",
            method=method,
            path=shown,
            status=response.status_code,
            error_code=code,
            title=title,
            retry_after=wait,
        )

    def json(self, response: requests.Response, method: str, shown: str) -> object:
        """The answer's JSON; ProtocolError when it is not JSON (the body is not quoted)."""
        try:
            return response.json()
        except ValueError:
            pass
        # Raised outside the except block: the decode error holds the whole body.
        kind = content_type(response)
        raise ProtocolError(
            f"{method} {shown}: HTTP {response.status_code}: the answer is not JSON"
            f" ({kind or 'no Content-Type'}): {self.base_url} does not answer like Celonis;"
            " check the base URL (another server on that port?)",
            method=method,
            path=shown,
            status=response.status_code,
            content_type=kind,
        )


def content_type(response: requests.Response) -> str | None:
    """The answer's media type without parameters, printable and short; None when not given."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    if not kind:
        return None
    return kind[:MAX_MEDIA_TYPE] if kind.isascii() and kind.isprintable() else "unreadable"


def _read_body(response: requests.Response, method: str, shown: str) -> None:
    """Read the whole answer into `response.content`; ProtocolError past MAX_ANSWER_BYTES.

    Read in chunks, so an answer far over the cap costs at most the cap in memory.
    """
    declared = _number(response.headers.get("content-length"))
    chunks = _chunks_within_cap(response, declared)
    if chunks is None:
        response.close()
        raise ProtocolError(
            f"{method} {shown}: HTTP {response.status_code}: the answer is larger than"
            f" {MAX_ANSWER_BYTES // 2**20} MiB; no Celonis answer the runner reads is that big",
            method=method,
            path=shown,
            status=response.status_code,
        )
    body = b"".join(chunks)
    if (
        declared is not None
        and not response.headers.get("content-encoding")
        and len(body) < declared
    ):
        # urllib3 2.x raises for this itself; 1.26 hands back the short body.
        raise requests.exceptions.ChunkedEncodingError("the answer ended before its Content-Length")
    response._content = body


def _chunks_within_cap(response: requests.Response, declared: float | None) -> list[bytes] | None:
    """The answer's chunks, or None when it is, or says it is, over MAX_ANSWER_BYTES."""
    if declared is not None and declared > MAX_ANSWER_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(ANSWER_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return chunks


RetryRule = Callable[[ApiError], bool]
"""Whether a request that failed with this error may be sent again."""


def retryable(error: ApiError, *, idempotent: bool) -> bool:
    """Whether sending the request again is safe and may help."""
    if isinstance(error, RateLimitedError):
        return True
    if isinstance(error, NetworkError):
        return error.transient and (idempotent or not error.request_may_have_arrived)
    if isinstance(error, ServerError):
        return idempotent and error.status in RETRIED_SERVER_STATUSES
    return False


def may_retry_read(error: ApiError) -> bool:
    """The rule for reads, cancels and token requests: every transient failure."""
    return retryable(error, idempotent=True)


def may_retry_execute(error: ApiError) -> bool:
    """The rule for the execute POST: only when Celonis provably did not act (429, no connection)."""
    return retryable(error, idempotent=False)


def error_kind(error: ApiError) -> str:
    """A short name for logs: the network failure kind or the HTTP status."""
    if isinstance(error, NetworkError):
        return error.kind
    return f"http_{error.status}" if error.status is not None else type(error).__name__


def shown_path(path: str, params: Mapping[str, str | int] | None) -> str:
    """The path and query as messages show them (never with credentials: none travel there)."""
    return f"{path}?{urlencode(params)}" if params else path


def network_error(
    exc: requests.RequestException, method: str, shown: str, timeouts: tuple[float, float]
) -> NetworkError:
    """Map a requests exception to a NetworkError without keeping any part of it."""
    kind, what = _classify(exc, timeouts)
    return NetworkError(f"{method} {shown}: {what}", method=method, path=shown, kind=kind)


def _classify(
    exc: requests.RequestException, timeouts: tuple[float, float]
) -> tuple[NetworkKind, str]:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect_timeout", f"no connection within {timeouts[0]:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read_timeout", f"no answer within {timeouts[1]:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", _tls_failure(_causes(exc))
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "dropped", "the connection broke while the answer was read"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _classify_connection(_causes(exc), timeouts)
    return "other", f"the request failed ({type(exc).__name__})"


def _tls_failure(causes: list[BaseException]) -> str:
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or "certificate verify failed"
            return f"the server's TLS certificate is not trusted ({reason}): {TRUST_HINT}"
    return f"TLS failure (is the server's certificate trusted?): {TRUST_HINT}"


_DROPPED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    urllib3.exceptions.ProtocolError,
)


def _classify_connection(
    causes: list[BaseException], timeouts: tuple[float, float]
) -> tuple[NetworkKind, str]:
    """A requests ConnectionError by what it wraps, with urllib3 1.26 and 2.x alike."""

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(c, types) for c in causes)

    # urllib3 2.x raises NameResolutionError from the socket.gaierror; 1.26 has no such
    # class and raises NewConnectionError with the gaierror as its context. Both chains
    # hold the gaierror, so look for that and name no class 1.26 lacks.
    if has(socket.gaierror):
        return "refused", "could not connect (the host name does not resolve)"
    if has(ConnectionRefusedError):
        return "refused", "could not connect (connection refused)"
    if has(urllib3.exceptions.NewConnectionError):
        return "refused", "could not connect"
    if has(urllib3.exceptions.ConnectTimeoutError):
        return "connect_timeout", f"no connection within {timeouts[0]:g} s"
    if has(urllib3.exceptions.ReadTimeoutError):
        return "read_timeout", f"no answer within {timeouts[1]:g} s"
    if has(*_DROPPED):
        return "dropped", "the connection was closed before an answer came"
    return "other", "the connection failed"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (args, reason, cause, context), breadth first, bounded."""
    seen: list[BaseException] = []
    queue: list[BaseException] = [exc]
    while queue and len(seen) < 20:
        current = queue.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        nested = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                nested.append(linked)
        queue.extend(nested)
    return seen


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _detail(code: str | None, title: str | None) -> str:
    if code and title:
        return f" ({code}: {title})"
    if code or title:
        return f" ({code or title})"
    return ""


def _credentials(authorization: str | None, basic_auth: tuple[str, str] | None) -> tuple[str, ...]:
    """Every form in which this request's credentials could be echoed back, longest first."""
    found: list[str] = []
    if authorization:
        found.append(authorization.partition(" ")[2])
    if basic_auth is not None:
        joined = f"{basic_auth[0]}:{basic_auth[1]}"
        found += [joined, base64.b64encode(joined.encode()).decode("ascii"), *basic_auth]
    return tuple(sorted((f for f in found if f), key=len, reverse=True))


def _error_fields(
    response: requests.Response, token_request: bool, secrets: tuple[str, ...]
) -> tuple[str | None, str | None]:
    """Celonis' `errorCode` and `title` (OAuth's `error`), short, one line, scrubbed."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("error") if token_request else body.get("errorCode")
    title = body.get("title")
    return _clean(code, secrets), _clean(title, secrets)


def _clean(value: object, secrets: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    # Scrub before cutting: a cut first could leave the start of a secret that no
    # longer matches in full.
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text[:MAX_ERROR_TEXT]


def _not_found_hint(pool_id: str | None, job_id: str | None) -> str:
    if pool_id is not None and job_id is not None:
        return f"pool {pool_id} or job {job_id} does not exist, or the key cannot see it"
    if pool_id is not None:
        return f"pool {pool_id} does not exist, or the key cannot see it"
    return "no such resource: check the base URL"
