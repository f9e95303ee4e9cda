"""An overall deadline for each HTTP request, on top of the per-read socket timeouts.

A socket read timeout restarts with every byte, so a server that trickles one
byte a second never trips it. `mount(session)` installs an adapter whose
connection pools tell the current request's `Deadline` which connection it
uses; when the deadline passes, the watchdog shuts that socket down, the
blocked read returns, and the transport reports a timeout. Works with urllib3
1.26 and 2.x (`ConnectionCls` pools and `_make_request` exist in both).

One watchdog thread per process serves every request (a timer thread per
request cost a thread start each: 8% of the runner's CPU at 10,000 jobs). It
keeps a heap of pending deadlines and sleeps until the earliest; a request that
ends marks its entry cancelled, and the watchdog drops such entries lazily.
Times are real (time.monotonic), whatever clock the caller runs on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import requests.adapters
import urllib3.connectionpool
import urllib3.poolmanager

_current = threading.local()

WATCHDOG_THREAD_NAME = "request-deadlines"


class Deadline:
    """One request's deadline: shuts the connection down when `seconds` (real) have passed.

    `start()` hands it to the process' watchdog; `cancel()` (the request ended) makes sure
    it never fires: once `cancel` returns, the connection is left alone.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.cancelled = False
        self._lock = threading.Lock()
        self._connection: object = None

    def attach(self, connection: object) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut(connection)

    def start(self) -> None:
        _WATCHDOG.watch(time.monotonic() + self.seconds, self)

    def cancel(self) -> None:
        with self._lock:
            if self.cancelled or self.expired:
                return
            self.cancelled = True
            self._connection = None  # the entry may wait in the heap a while: keep nothing alive
        _WATCHDOG.forget()

    def _expire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.expired = True
            _shut(self._connection)


def _shut(connection: object) -> None:
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """The one thread that expires deadlines: a heap of (due, seq, Deadline), earliest first."""

    COMPACT_ABOVE = 256
    """Cancelled entries are swept out of the heap when more than this many are at least
    half of it (otherwise they wait to reach its top: 120 s with the default deadline)."""

    def __init__(self) -> None:
        self._wake = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._thread: threading.Thread | None = None

    def watch(self, due: float, deadline: Deadline) -> None:
        entry = (due, next(self._seq), deadline)
        with self._wake:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=WATCHDOG_THREAD_NAME, daemon=True
                )
                self._thread.start()
            elif self._heap[0] is entry:
                self._wake.notify()  # earlier than what the watchdog sleeps towards

    def forget(self) -> None:
        """One more entry was cancelled; sweep them out when they are many."""
        with self._wake:
            self._cancelled += 1
            if self._cancelled > self.COMPACT_ABOVE and 2 * self._cancelled >= len(self._heap):
                self._heap = [e for e in self._heap if not e[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _next_due(self) -> Deadline:
        """Wait for the earliest live deadline to pass; take it off the heap."""
        with self._wake:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled = max(0, self._cancelled - 1)
                if not self._heap:
                    self._wake.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)[2]
                self._wake.wait(wait)

    def _run(self) -> None:
        while True:
            due = self._next_due()
            # Expired outside the heap's lock: `cancel` takes the deadline's lock first.
            with contextlib.suppress(Exception):  # one odd connection must not end the watchdog
                due._expire()


_WATCHDOG = _Watchdog()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run the block (one request, its body read included) under a deadline."""
    watch = Deadline(seconds)
    _current.deadline = watch
    watch.start()
    try:
        yield watch
    finally:
        watch.cancel()
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


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Requests through an HTTP(S) proxy use the proxy manager's pools: make them
        # deadline-aware too. A SOCKS manager (not a ProxyManager) keeps its own pools.
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.poolmanager.ProxyManager):
            manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager


def mount(session: requests.Session) -> None:
    """Make `session`'s http and https requests deadline-aware (keeps no other state)."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.get_adapter(prefix), _DeadlineAdapter):
            session.mount(prefix, _DeadlineAdapter())
