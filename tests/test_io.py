"""The request threads of the executor: calls are taken by priority, background calls never
take more than half of the threads, and closing cancels what has not started."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from runner.execution.io import BACKGROUND, NORMAL, START, URGENT, ThreadedCalls


def test_queued_calls_run_by_priority_then_in_order_of_submission() -> None:
    wake = threading.Event()
    calls = ThreadedCalls(wake, workers=1)
    gate, order = threading.Event(), []
    results: list[Future[Any]] = []
    try:
        calls.submit(lambda: gate.wait(5), results.append, NORMAL)  # holds the only thread
        for name, priority in [
            ("poll-1", NORMAL),
            ("tasks-1", BACKGROUND),
            ("execute-1", START),
            ("cancel", URGENT),
            ("poll-2", NORMAL),
            ("execute-2", START),
        ]:
            calls.submit(lambda name=name: order.append(name), results.append, priority)
        gate.set()
        while len(results) < 7:
            wake.wait(5)
            wake.clear()
            calls.collect()
    finally:
        calls.close(abandon=False)
    assert order == ["cancel", "execute-1", "execute-2", "poll-1", "poll-2", "tasks-1"]
    assert all(f.exception() is None for f in results)


def test_background_calls_take_at_most_half_of_the_threads() -> None:
    wake = threading.Event()
    calls = ThreadedCalls(wake, workers=4)
    release = threading.Event()
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    two_running = threading.Event()

    def background() -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
            if running[0] == 2:
                two_running.set()
        release.wait(5)
        with lock:
            running[0] -= 1

    foreground_done = threading.Event()
    results: list[Future[Any]] = []
    try:
        for _ in range(6):
            calls.submit(background, results.append, BACKGROUND)
        assert two_running.wait(5)
        # with two threads held by background reads, a poll still finds a free thread
        calls.submit(foreground_done.set, results.append, NORMAL)
        assert foreground_done.wait(5)
        release.set()
        while len(results) < 7:
            wake.wait(5)
            wake.clear()
            calls.collect()
    finally:
        release.set()
        calls.close(abandon=False)
    assert running[1] == 2


def test_closing_cancels_what_has_not_started_and_hands_it_back() -> None:
    wake = threading.Event()
    calls = ThreadedCalls(wake, workers=1)
    gate = threading.Event()
    results: list[Future[Any]] = []
    ran: list[str] = []
    started = threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(5)

    calls.submit(hold, results.append)
    assert started.wait(5)
    calls.submit(lambda: ran.append("late"), results.append)
    threading.Timer(0.2, gate.set).start()
    calls.close(abandon=False)  # waits for the running call, cancels the queued one
    calls.collect()
    assert ran == []
    assert sorted(f.cancelled() for f in results) == [False, True]
    assert not calls.in_flight()
