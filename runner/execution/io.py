"""Where the executor's HTTP calls run: a thread pool in production, inline in tests.

The scheduling thread submits a call with the function that applies its
result; results come back through a queue that only the scheduling thread
reads (`collect`), so job state is never touched from another thread.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

OnDone = Callable[[Future[Any]], None]


URGENT = 0
"""Cancels, settles and a failure's reason: the run's decisions wait for them."""
START = 1
"""Executes: a job that is ready starts before more statuses are read."""
NORMAL = 2
"""Status polls."""
BACKGROUND = 3
"""What holds nothing up (a finished job's task results): taken only when no other call
waits, by at most half of the workers at a time."""


class CallRunner(Protocol):
    """Runs the executor's API calls and hands their results back in order of completion."""

    def submit(self, call: Callable[[], Any], on_done: OnDone, priority: int = NORMAL) -> None:
        """Run `call` on a request thread; `on_done(future)` runs on the scheduling thread
        (in `collect`). `priority`: URGENT, START, NORMAL (the default) or BACKGROUND."""

    def collect(self) -> bool:
        """Apply every result that came back (on the calling thread); True if any did."""

    def has_results(self) -> bool: ...

    def in_flight(self) -> bool: ...

    def wait_results(self, seconds: float) -> None:
        """Block until a result is back or the time is up (real time: only while draining)."""

    def close(self, *, abandon: bool) -> None: ...


class _Results:
    """Finished futures waiting to be applied by the scheduling thread."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake
        self.inflight: dict[Future[Any], OnDone] = {}
        self.finished: collections.deque[Future[Any]] = collections.deque()

    def done(self, future: Future[Any]) -> None:
        self.finished.append(future)  # deque.append is thread-safe
        self.wake.set()

    def collect(self) -> bool:
        collected = False
        while self.finished:
            future = self.finished.popleft()
            self.inflight.pop(future)(future)
            collected = True
        return collected


class ThreadedCalls:
    """A small pool of request threads taking calls by priority (URGENT, START, NORMAL,
    BACKGROUND), first come first served within one. Requests to different pools overlap.
    When the runner is busy (thousands of jobs, or a scaled clock), a ready job's execute
    does not wait behind status polls, which come again on their own, and background reads
    never delay either."""

    def __init__(self, wake: threading.Event, workers: int = 8) -> None:
        self._results = _Results(wake)
        self._queue: list[tuple[int, int, Future[Any], Callable[[], Any]]] = []
        self._ready = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._background = 0
        self._background_limit = max(1, workers // 2)
        self._threads = [
            threading.Thread(target=self._work, name=f"celonis-io-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], Any], on_done: OnDone, priority: int = NORMAL) -> None:
        future: Future[Any] = Future()
        self._results.inflight[future] = on_done
        future.add_done_callback(self._results.done)
        with self._ready:
            heapq.heappush(self._queue, (priority, next(self._seq), future, call))
            self._ready.notify()

    def _next(self) -> tuple[Future[Any], Callable[[], Any], bool] | None:
        """The next call to run (None once closed), and whether it is a background one."""
        with self._ready:
            while True:
                if self._closed:
                    return None
                if self._queue and (
                    self._queue[0][0] < BACKGROUND or self._background < self._background_limit
                ):
                    priority, _, future, call = heapq.heappop(self._queue)
                    background = priority >= BACKGROUND
                    self._background += background
                    return future, call, background
                self._ready.wait()

    def _work(self) -> None:
        while (taken := self._next()) is not None:
            future, call, background = taken
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as error:  # handed to on_done, raised there if unexpected
                    future.set_exception(error)
            if background:
                with self._ready:
                    self._background -= 1
                    self._ready.notify()

    def collect(self) -> bool:
        return self._results.collect()

    def has_results(self) -> bool:
        return bool(self._results.finished)

    def in_flight(self) -> bool:
        return bool(self._results.inflight)

    def wait_results(self, seconds: float) -> None:
        self._results.wake.wait(seconds)
        self._results.wake.clear()

    def close(self, *, abandon: bool) -> None:
        """Cancel what has not started; wait for what runs unless `abandon` (after a hard
        stop, requests in flight are abandoned: the threads are daemons)."""
        with self._ready:
            self._closed = True
            waiting, self._queue = self._queue, []
            self._ready.notify_all()
        for _, _, future, _ in waiting:
            future.cancel()
        if not abandon:
            for thread in self._threads:
                thread.join()


class InlineCalls:
    """Runs each call when it is submitted, on the calling thread (tests: no threads, no sleeps).

    `submitted` records each call's name (`execute`, `pool_statuses`, ...) in order.
    """

    def __init__(self, wake: threading.Event) -> None:
        self._results = _Results(wake)
        self.submitted: list[str] = []

    def submit(self, call: Callable[[], Any], on_done: OnDone, priority: int = NORMAL) -> None:
        future: Future[Any] = Future()
        self.submitted.append(getattr(call, "__name__", "call"))
        try:
            future.set_result(call())
        except Exception as error:  # handed to on_done exactly as a pool thread would
            future.set_exception(error)
        self._results.inflight[future] = on_done
        self._results.done(future)

    def collect(self) -> bool:
        return self._results.collect()

    def has_results(self) -> bool:
        return bool(self._results.finished)

    def in_flight(self) -> bool:
        return bool(self._results.inflight)

    def wait_results(self, seconds: float) -> None:
        return None

    def close(self, *, abandon: bool) -> None:
        return None
