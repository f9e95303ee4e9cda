"""The overall request deadline (runner.api.deadline): one watchdog thread for every request,
each deadline firing at its own time, a cancelled one never.

The trickling-server case through a whole Transport is in test_api_answers.py
(`test_a_trickling_server_is_cut_off_at_the_request_deadline`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from runner.api import KeyAuth, RetryPolicy, Secret, Transport
from runner.api.deadline import WATCHDOG_THREAD_NAME, Deadline, deadline
from tests.emulator_fixtures import FakeClock
from tests.test_api_answers import KEY, answer, local_server


class _Connection:
    """What a deadline shuts down: anything with a `sock`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


@contextmanager
def _socket_pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs = [socket.socketpair() for _ in range(count)]
    try:
        yield pairs
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def _is_shut(sock: socket.socket) -> bool:
    """A socket shut down for reading returns b'' at once; a live one has nothing to read."""
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_overlapping_deadlines_fire_each_at_its_own_time_and_a_cancelled_one_never() -> None:
    with _socket_pairs(3) as pairs:
        short, long, cancelled = Deadline(0.3), Deadline(1.0), Deadline(0.5)
        for watch, (sock, _) in zip((long, cancelled, short), pairs, strict=True):
            watch.start()
            watch.attach(_Connection(sock))
        started = time.monotonic()
        cancelled.cancel()
        while not short.expired and time.monotonic() - started < 3:
            time.sleep(0.01)
        short_took = time.monotonic() - started
        assert short.expired and not long.expired
        assert 0.25 <= short_took < 0.9
        assert _is_shut(pairs[2][0]) and not _is_shut(pairs[0][0])
        while not long.expired and time.monotonic() - started < 3:
            time.sleep(0.01)
        long_took = time.monotonic() - started
        assert long.expired and 0.95 <= long_took < 2.0
        assert _is_shut(pairs[0][0])
        time.sleep(0.1)
        assert not cancelled.expired and not _is_shut(pairs[1][0])
        pairs[1][1].sendall(b"x")  # the cancelled deadline's connection still works
        assert pairs[1][0].recv(1) == b"x"


def test_a_deadline_that_passed_before_the_connection_was_attached_shuts_it_at_once() -> None:
    with _socket_pairs(1) as [(sock, _)]:
        watch = Deadline(0.05)
        watch.start()
        while not watch.expired:
            time.sleep(0.01)
        watch.attach(_Connection(sock))
        assert _is_shut(sock)


def test_a_deadline_that_ends_in_time_leaves_its_connection_alone() -> None:
    with _socket_pairs(1) as [(sock, peer)]:
        with deadline(0.2) as watch:
            watch.attach(_Connection(sock))
        time.sleep(0.4)
        assert not watch.expired
        peer.sendall(b"y")
        assert sock.recv(1) == b"y"


def test_many_cancelled_deadlines_are_swept_and_a_later_one_still_fires() -> None:
    for _ in range(2000):
        with deadline(300.0):
            pass
    with _socket_pairs(1) as [(sock, _)], deadline(0.1) as watch:
        watch.attach(_Connection(sock))
        time.sleep(0.5)
        assert watch.expired and _is_shut(sock)


def test_requests_through_a_transport_start_no_thread_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    me = threading.current_thread()
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        if threading.current_thread() is me:
            started.append(thread.name)
        real_start(thread)

    with local_server(answer(200, {"content": []})) as url:
        monkeypatch.setattr(threading.Thread, "start", counting_start)
        transport = Transport(
            url,
            KeyAuth("Bearer", Secret(KEY), "CELONIS_API_KEY"),
            requests.Session(),
            FakeClock(),
            retry=RetryPolicy(max_attempts=1),
        )
        for _ in range(50):
            assert transport.get_json("/integration/api/pools") == {"content": []}
        monkeypatch.undo()
    assert [name for name in started if name != WATCHDOG_THREAD_NAME] == []
    watchdogs = [t for t in threading.enumerate() if t.name == WATCHDOG_THREAD_NAME]
    assert len(watchdogs) == 1 and watchdogs[0].daemon
