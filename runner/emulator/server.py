"""The emulator: an HTTP server on loopback that answers like the Celonis data-job API.

Each request goes: faults (status, delay, drop_before, drop_after) -> rate
limit -> auth -> endpoint, with the job state advanced to the clock's
`monotonic()` first, and is journaled (without any key or token).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runner.clock import Clock, ScaledClock
from runner.emulator.auth import AuthKind, Credentials, auth_kind
from runner.emulator.faults import FaultPlan
from runner.emulator.journal import Journal
from runner.emulator.ratelimit import RateLimiter
from runner.emulator.responses import (
    Request,
    Response,
    celonis_error,
    default_error_body,
    json_response,
)
from runner.emulator.routes import Routes
from runner.emulator.scenario import Fault, Scenario
from runner.emulator.state import State
from runner.emulator.tls import TlsFiles
from runner.errors import UsageError

MAX_BODY_BYTES = 1024 * 1024
_SECRET_WORDS = ("secret", "token", "key", "password", "auth", "credential")


class Emulator:
    """Serves `scenario` on http://host:port in a daemon thread; a context manager."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Iterable[str] | None = None,
        app_keys: Iterable[str] | None = None,
        oauth_clients: Mapping[str, str] | None = None,
        journal_path: Path | str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock if clock is not None else ScaledClock(scenario.time_scale)
        self.host = host
        self._port = port
        # tokens live in real seconds: the virtual time of a ScaledClock divided by its scale
        scale = self.clock.scale if isinstance(self.clock, ScaledClock) else 1.0
        self._credentials = Credentials(
            api_keys, app_keys, oauth_clients, scenario.token_lifetime, scale
        )
        self._journal_path = Path(journal_path) if journal_path is not None else None
        self._journal = Journal(self._journal_path)
        self._state = State(
            scenario, self._journal, wall_offset=self.clock.time() - self.clock.monotonic()
        )
        self._api = Routes(self._state, self._credentials)
        self._faults = FaultPlan(scenario.faults)
        self._limiter: RateLimiter | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.tls = tls
        self._ssl = tls.context() if tls is not None else None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None or self._stopped:
            raise RuntimeError("an Emulator starts once")
        try:
            self._journal.open()
        except OSError as exc:
            raise UsageError(
                f"cannot write the journal {self._journal_path}: {exc.strerror or exc}"
            ) from None
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = server_class((self.host, self._port), self, self._ssl)
        except OSError as exc:
            self._journal.close()
            raise UsageError(
                f"cannot listen on {self.host}:{self._port}: {exc.strerror or exc}"
            ) from None
        self._port = server.server_address[1]
        with self._state.lock:
            now = self.clock.monotonic()
            if self.scenario.rate_limit is not None:
                self._limiter = RateLimiter(self.scenario.rate_limit, now)
            self._state.begin(now)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"celonis-emulator:{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close open connections and the journal file. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
            with self._state.lock:  # the journal ends at the moment of stopping
                if not self._stopped:
                    self._state.advance(self.clock.monotonic())
                self._stopped = True
        self._stopped = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._journal.close()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests and the CLI read ------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        if self._server is None and not self._stopped:
            raise RuntimeError("the emulator is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self._port}"

    @property
    def api_key(self) -> str:
        """A Bearer key the emulator accepts: the first given, else one it generated."""
        return self._credentials.api_key

    def issued_tokens(self) -> list[str]:
        """Every OAuth access token handed out so far, for tests that check none leaked."""
        return self._credentials.issued_tokens()

    def fault_hits(self) -> list[int]:
        """How many requests each of the scenario's faults has hit so far, in its order."""
        return self._faults.hits()

    def journal(self) -> list[dict[str, Any]]:
        """A snapshot of the journal, with executions advanced to now."""
        with self._state.lock:
            if self._server is not None and not self._stopped:
                self._state.advance(self.clock.monotonic())
            return self._journal.snapshot()

    def executions(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The journal's "execution started" records, of one job or all."""
        wanted = job_id.lower() if job_id is not None else None
        return [
            entry
            for entry in self.journal()
            if entry["type"] == "execution"
            and entry["event"] == "started"
            and (wanted is None or entry["job_id"] == wanted)
        ]

    # -- one request ---------------------------------------------------------------

    def wall_time(self, now: float | None = None) -> float:
        """Epoch seconds on Celonis' clock (what the Date header shows) at virtual time `now`
        (default: the clock's now)."""
        return self._state.wall(self.clock.monotonic() if now is None else now)

    def handle(self, handler: _Handler) -> None:
        handler.answered_at = None
        split = urlsplit(handler.path)
        query = _first_values(split.query)
        authorization = handler.headers.get("Authorization")
        kind = auth_kind(authorization)
        try:
            body = _read_body(handler)
        except ValueError as exc:
            handler.close_connection = True
            response = celonis_error(400, str(exc), "BAD_REQUEST")
            self._journal_request(handler.command, split.path, query, response.status, None, kind)
            _send(handler, response)
            return
        request = Request(
            method=handler.command,
            path=split.path,
            query=query,
            authorization=authorization,
            body=body,
        )
        fault = self._faults.pick(request.method, request.path)
        action = fault.action if fault is not None else None
        if fault is not None and fault.action == "delay":
            time.sleep(fault.delay)  # real time on purpose: it exercises HTTP read timeouts
        if action == "drop_before":
            self._journal_request(request.method, request.path, query, None, action, kind)
            _drop(handler)
            return
        with self._state.lock:
            if self._stopped:  # e.g. a delayed request that outlived stop()
                _drop(handler)
                return
            now = self.clock.monotonic()
            self._state.advance(now)
            response = self._response(request, fault, now)
            status = None if action == "drop_after" else response.status
            self._record_request(now, request.method, request.path, query, status, action, kind)
            handler.answered_at = now
        if action == "drop_after":
            _drop(handler)
        else:
            _send(handler, response)

    def _response(self, request: Request, fault: Fault | None, now: float) -> Response:
        """A fault's answer (action 'status'), else the API's."""
        if fault is not None and fault.action == "status":
            return self._fault_response(fault, now)
        return self._answer(request, now)

    def _answer(self, request: Request, now: float) -> Response:
        if self._limiter is None:
            return self._respond(request, now)
        if self._limiter.admit(now):
            response = self._respond(request, now)
        else:
            response = json_response(
                429,
                default_error_body(429),
                {"x-ratelimit-reset": str(self._limiter.reset_after(now))},
            )
        response.headers = {**self._limiter.headers(now), **response.headers}
        return response

    def _respond(self, request: Request, now: float) -> Response:
        try:
            return self._api.respond(request, now)
        except Exception:  # a bug in the emulator: answer 500 and show it, keep serving
            traceback.print_exc(file=sys.stderr)
            return celonis_error(500, "Internal Server Error (emulator bug)", "INTERNAL_ERROR")

    def _fault_response(self, fault: Fault, now: float) -> Response:
        status = fault.status if fault.status is not None else 500
        body = fault.body if fault.has_body else default_error_body(status)
        if body is None:
            response = Response(status)
        elif isinstance(body, str):
            response = Response(status, body.encode("utf-8"), {"Content-Type": "text/plain"})
        else:
            response = json_response(status, body)
        headers = self._limiter.headers(now) if self._limiter is not None else {}
        headers.update(response.headers)
        # a fault's own headers win, whatever their case
        for name, value in fault.headers.items():
            for existing in [h for h in headers if h.lower() == name.lower()]:
                del headers[existing]
            headers[name] = value
        response.headers = headers
        return response

    def _journal_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        status: int | None,
        fault: str | None,
        kind: AuthKind,
    ) -> None:
        with self._state.lock:
            if self._stopped:
                return
            now = self.clock.monotonic()
            self._state.advance(now)
            self._record_request(now, method, path, query, status, fault, kind)

    def _record_request(
        self,
        now: float,
        method: str,
        path: str,
        query: Mapping[str, str],
        status: int | None,
        fault: str | None,
        kind: AuthKind,
    ) -> None:
        self._journal.record(
            now,
            {
                "type": "request",
                "method": method,
                "path": path,
                "query": {k: _redacted(k, v) for k, v in query.items()},
                "status": status,
                "fault": fault,
                "auth": kind,
            },
        )


def _redacted(name: str, value: str) -> str:
    lowered = name.lower()
    return "<redacted>" if any(word in lowered for word in _SECRET_WORDS) else value


def _first_values(query: str) -> dict[str, str]:
    """The query's parameters, each with its first value."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(name, value)
    return found


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler)
    text = handler.headers.get("Content-Length")
    if text is None:
        return b""
    try:
        length = int(text)
    except ValueError:
        raise ValueError("Invalid Content-Length.") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise ValueError("Invalid Content-Length.")
    return handler.rfile.read(length) if length else b""


def _read_chunked(handler: BaseHTTPRequestHandler) -> bytes:
    """A chunked body (its trailers read and dropped); ValueError when malformed or too large."""
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = handler.rfile.readline(1024)
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise ValueError("Malformed chunked request body.") from None
        if size == 0:
            while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError("Request body too large.")
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline(1024)


def _send(handler: BaseHTTPRequestHandler, response: Response) -> None:
    try:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(response.body)
    except OSError:
        handler.close_connection = True  # the client gave up (e.g. its read timeout)


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without a byte of answer."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY every keep-alive
    # answer waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "celonis-emulator"
    timeout = 60  # real seconds an idle keep-alive connection stays open
    answered_at: float | None = None
    """The virtual time the answer being sent was made at (None: not made from the state)."""

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header of every answer: Celonis' clock, i.e. the emulator's virtual wall
        clock, not this machine's."""
        if timestamp is None:
            timestamp = self._emulator().wall_time(self.answered_at)
        return formatdate(timestamp, usegmt=True)

    def _emulator(self) -> Emulator:
        server = self.server
        assert isinstance(server, _Server)
        return server.emulator

    def setup(self) -> None:
        super().setup()
        server = self.server
        assert isinstance(server, _Server)
        server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            server = self.server
            assert isinstance(server, _Server)
            server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._emulator().handle(self)

    def do_POST(self) -> None:
        self._emulator().handle(self)

    def do_PUT(self) -> None:
        self._emulator().handle(self)

    def do_PATCH(self) -> None:
        self._emulator().handle(self)

    def do_DELETE(self) -> None:
        self._emulator().handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the journal is the record."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], emulator: Emulator, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.emulator = emulator
        self._ssl = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self._ssl is None:
            return connection, address
        # the handshake happens on the first read, in the handler's thread: a slow or
        # plain-HTTP client never blocks the accept loop
        wrapped = self._ssl.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away; a traceback for anything else."""
        # ssl.SSLError: a client that does not trust the certificate, or speaks plain HTTP
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End keep-alive connections, so no handler answers after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Server6(_Server):
    address_family = socket.AF_INET6
