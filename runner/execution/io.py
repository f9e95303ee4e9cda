"""Where the executor's HTTP calls run: a thread pool in production, inline in tests.

The scheduling thread submits a call with the function that applies its
result; results come back through a queue that only the scheduling thread
reads (`collect`), so job state is never touched from another thread.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

OnDone = Callable[[Future[Any]], None]


class CallRunner(Protocol):
    """Runs the executor's API calls and hands their results back in order of completion."""

    def submit(self, call: Callable[[], Any], on_done: OnDone) -> None: ...

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
    """A small thread pool: requests to different pools overlap."""

    def __init__(self, wake: threading.Event, workers: int = 8) -> None:
        self._results = _Results(wake)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="celonis-io")

    def submit(self, call: Callable[[], Any], on_done: OnDone) -> None:
        future = self._pool.submit(call)
        self._results.inflight[future] = on_done
        future.add_done_callback(self._results.done)

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
        # after a hard stop, requests still in flight are abandoned, not waited for
        self._pool.shutdown(wait=not abandon, cancel_futures=True)


class InlineCalls:
    """Runs each call when it is submitted, on the calling thread (tests: no threads, no sleeps).

    `submitted` records each call's name (`execute`, `pool_statuses`, ...) in order.
    """

    def __init__(self, wake: threading.Event) -> None:
        self._results = _Results(wake)
        self.submitted: list[str] = []

    def submit(self, call: Callable[[], Any], on_done: OnDone) -> None:
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
