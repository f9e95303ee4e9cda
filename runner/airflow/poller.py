"""One status poller per (Celonis base URL, credentials, data pool) in a triggerer process.

Every deferred `CelonisJobTrigger` hands its `Wait` to the `PoolPoller` of its
pool: one `logs/status` read per round serves every task of the pool waiting
in this process, as the CLI's executor polls a pool. A round is due when the
first of its waiters is due (each waiter's next poll comes from `Wait.observe`,
i.e. `runner.lifecycle`'s intervals); every waiter is judged by the round's
answer. The execution history is read only for a waiter whose status showed
an end it cannot tie to its claim (`Step.read_history`).

Requests run on a `RequestPool`: threads of its own (never asyncio's default
executor, which other code shares), where a cancel goes ahead of every queued
read. The triggerer's event loop never waits on HTTP. No Airflow import.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from runner.airflow.credentials import Endpoint
from runner.airflow.watch import Outcome, Step, Wait
from runner.api import CelonisClient, JobStatus
from runner.errors import RunnerError
from runner.lifecycle import HISTORY_LIMIT

T = TypeVar("T")

REQUEST_THREADS = 8
"""Request threads per triggerer process. With one status read per pool per round they are
seldom all busy; a cancel never queues behind reads (`Priority`)."""


class Priority(IntEnum):
    """The order queued requests are sent in: a cancel first, then history reads, then polls."""

    CANCEL = 0
    HISTORY = 1
    STATUS = 2


class RequestPool:
    """A fixed number of threads running blocking client calls, most urgent first."""

    def __init__(self, size: int = REQUEST_THREADS) -> None:
        self.size = size
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], Any], Future[Any]]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, priority: Priority, call: Callable[[], T]) -> T:
        """`call()` in one of the pool's threads; awaiting it never blocks the event loop."""
        future: Future[T] = Future()
        self._queue.put((priority, next(self._order), call, future))
        self._start()
        return await asyncio.wrap_future(future)

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"celonis-requests-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            _, _, call, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue  # its trigger was cancelled while it queued
            try:
                result = call()
            except BaseException as error:  # handed to the awaiting coroutine
                future.set_exception(error)
            else:
                future.set_result(result)


_REQUESTS: RequestPool | None = None
_REQUESTS_LOCK = threading.Lock()


def request_pool() -> RequestPool:
    """The process's request threads (one pool, whatever the event loop)."""
    global _REQUESTS
    with _REQUESTS_LOCK:
        if _REQUESTS is None:
            _REQUESTS = RequestPool()
        return _REQUESTS


@dataclass(frozen=True)
class Ended:
    """How one wait ended: what the trigger's event carries."""

    outcome: Outcome
    wait: Wait
    message: str | None = None


@dataclass
class _Waiter:
    wait: Wait
    due: float
    """Real epoch seconds of its next status read."""
    done: asyncio.Future[Ended]
    busy: bool = False
    """Its execution history is being read: no status round judges it meanwhile."""

    def end(self, outcome: Outcome, message: str | None = None) -> None:
        """End the wait, unless it ended already (or its trigger was cancelled)."""
        if not self.done.done():
            self.done.set_result(Ended(outcome, self.wait, message))


class PoolPoller:
    """Polls one data pool for every task of it waiting in this event loop."""

    def __init__(
        self,
        client: CelonisClient,
        pool_id: str,
        requests: RequestPool,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.pool_id = pool_id
        self.rounds = 0
        """Status reads so far (one per round)."""
        self._requests = requests
        self._clock = clock
        self._waiters: dict[int, _Waiter] = {}
        self._keys = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def wait_for(self, wait: Wait) -> Ended:
        """Until the wait ends (the job's end, a timeout, an API error). Cancelling the caller
        only removes its wait."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        self._waiters[key] = _Waiter(wait, self._first_due(wait), loop.create_future())
        if self._task is None or self._task.done():
            # a fresh context: the loop outlives the trigger that started it
            self._task = loop.create_task(self._loop(), context=contextvars.Context())
        self._wake.set()
        try:
            return await self._waiters[key].done
        finally:
            del self._waiters[key]
            self._wake.set()

    def _first_due(self, wait: Wait) -> float:
        """A new wait is read one poll interval after its execute (not at once: a task that
        joins must not cost its pool an extra read); a resumed one, at the next round."""
        due = wait.started + wait.poll_interval / wait.scale
        return min(max(due, self._clock()), wait.limit)

    async def _loop(self) -> None:
        try:
            while self._waiters:
                self._wake.clear()
                now = self._clock()
                self._end_over_time(now)
                due = min((w.due for w in self._idle()), default=None)
                if due is None or due > now:
                    delay = None if due is None else due - now
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
                await self._round()
        except Exception as error:  # a defect here must not leave tasks waiting for ever
            for waiter in self._waiters.values():
                if not waiter.done.done():
                    waiter.done.set_exception(error)

    def _idle(self) -> list[_Waiter]:
        return [w for w in self._waiters.values() if not w.busy and not w.done.done()]

    def _end_over_time(self, now: float) -> None:
        for waiter in self._idle():
            outcome = waiter.wait.over_time(now)
            if outcome is not None:
                waiter.end(outcome)

    async def _round(self) -> None:
        """One `logs/status` read for every idle waiter (jobs missing from it, or a pool
        without that endpoint, are read one by one by `pool_statuses`)."""
        waiters = self._idle()
        ids = list(dict.fromkeys(w.wait.job_id for w in waiters))
        self.rounds += 1
        read = functools.partial(self.client.pool_statuses, self.pool_id, ids)
        try:
            statuses: dict[str, JobStatus] = await self._requests.run(Priority.STATUS, read)
        except RunnerError as error:
            for waiter in waiters:
                waiter.end(Outcome.ERROR, str(error))
            return
        now = self._clock()
        for waiter in waiters:
            if waiter.done.done():
                continue  # its trigger was cancelled meanwhile
            step = waiter.wait.observe(statuses[waiter.wait.job_id], now)
            if step.read_history:
                waiter.busy = True
                task = asyncio.get_running_loop().create_task(self._read_history(waiter))
                self._reads.add(task)
                task.add_done_callback(self._reads.discard)
            else:
                self._apply(waiter, step, now)

    async def _read_history(self, waiter: _Waiter) -> None:
        job_id = waiter.wait.job_id
        read = functools.partial(self.client.execution_history, self.pool_id, job_id, HISTORY_LIMIT)
        try:
            history = await self._requests.run(Priority.HISTORY, read)
        except RunnerError as error:
            waiter.end(Outcome.ERROR, str(error))
            return
        finally:
            waiter.busy = False
            self._wake.set()
        if not waiter.done.done():
            now = self._clock()
            self._apply(waiter, waiter.wait.observe_history(history, now), now)

    def _apply(self, waiter: _Waiter, step: Step, now: float) -> None:
        waiter.wait = step.wait
        if step.outcome is not None:
            waiter.end(step.outcome)
        else:
            waiter.due = now + step.sleep


def credentials_key(endpoint: Endpoint) -> tuple[str, str]:
    """The base URL and a digest of the credentials (the secrets are never kept in a key)."""
    digest = hashlib.sha256("\0".join(endpoint.secrets).encode()).hexdigest()
    return endpoint.base_url, digest


class Pollers:
    """The clients and pool pollers of one event loop (the triggerer's): shared by its triggers."""

    def __init__(self, requests: RequestPool) -> None:
        self.requests = requests
        self._clients: dict[tuple[str, str], CelonisClient] = {}
        self._pollers: dict[tuple[str, str, str], PoolPoller] = {}

    def client(self, endpoint: Endpoint, make: Callable[[], CelonisClient]) -> CelonisClient:
        key = credentials_key(endpoint)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = make()
        return client

    def poller(self, endpoint: Endpoint, pool_id: str, client: CelonisClient) -> PoolPoller:
        key = (*credentials_key(endpoint), pool_id.lower())
        poller = self._pollers.get(key)
        if poller is None:
            poller = self._pollers[key] = PoolPoller(client, pool_id, self.requests)
        return poller

    async def cancel(self, client: CelonisClient, pool_id: str, job_id: str) -> None:
        """The cancel, ahead of every queued read."""
        await self.requests.run(Priority.CANCEL, functools.partial(client.cancel, pool_id, job_id))


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pollers] = (
    weakref.WeakKeyDictionary()
)


def pollers() -> Pollers:
    """The running event loop's pollers (the triggerer runs every trigger in one loop)."""
    loop = asyncio.get_running_loop()
    shared = _BY_LOOP.get(loop)
    if shared is None:
        shared = _BY_LOOP[loop] = Pollers(request_pool())
    return shared
