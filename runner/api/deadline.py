"""An overall deadline for each HTTP request, on top of the per-read socket timeouts.

A socket read timeout restarts with every byte, so a server that trickles one
byte a second never trips it. `mount(session)` installs an adapter whose
connection pools tell the current request's `Deadline` which connection it
uses; when the deadline passes, a timer shuts that socket down, the blocked
read returns, and the transport reports a timeout. Works with urllib3 1.26 and
2.x (`ConnectionCls` pools and `_make_request` exist in both).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import requests.adapters
import urllib3.connectionpool

_current = threading.local()


class Deadline:
    """One request's deadline: shuts the connection down when `seconds` (real) have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._connection: object = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def attach(self, connection: object) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            _shut(self._connection)


def _shut(connection: object) -> None:
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run the block (one request, its body read included) under a deadline."""
    watch = Deadline(seconds)
    _current.deadline = watch
    watch._timer.start()
    try:
        yield watch
    finally:
        watch._timer.cancel()
        _current.deadline = None


def _note(connection: object) -> None:
    watch = getattr(_current, "deadline", None)
    if isinstance(watch, Deadline):
        watch.attach(connection)


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _note(conn)
        return super()._make_request(conn, *args, **kwargs)


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _note(conn)
        return super()._make_request(conn, *args, **kwargs)


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def mount(session: requests.Session) -> None:
    """Make `session`'s http and https requests deadline-aware (keeps no other state)."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.get_adapter(prefix), _DeadlineAdapter):
            session.mount(prefix, _DeadlineAdapter())
