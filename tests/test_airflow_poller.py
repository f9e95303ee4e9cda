"""runner.airflow.poller: the status poller shared by every deferred task of a pool in a triggerer.

Driven against the emulator with plain asyncio (no Airflow needed): what
reaches Celonis is read from the emulator's journal.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from runner.airflow.poller import PoolPoller, Priority, RequestPool
from runner.airflow.watch import Outcome, Wait
from runner.api import CelonisClient, KeyAuth, Secret
from runner.clock import ScaledClock
from runner.emulator import Emulator, Scenario

SCALE = 600.0
KEY = "poller-test-key-0b7e2c"
POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOBS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 21)]
POLL = (30.0, 300.0)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    jobs = [{"id": job, "duration": f"{10 + n}m"} for n, job in enumerate(JOBS)]
    scenario = Scenario.from_dict({"time_scale": SCALE, "pools": [{"id": POOL, "jobs": jobs}]})
    with Emulator(scenario, clock=ScaledClock(SCALE), api_keys=[KEY]) as emu:
        yield emu


def _client(emu: Emulator) -> CelonisClient:
    auth = KeyAuth("Bearer", Secret(KEY), "KEY")
    return CelonisClient.connect(emu.base_url, auth, requests.Session(), ScaledClock(SCALE))


def _reads(emu: Emulator, suffix: str) -> int:
    return sum(
        1
        for e in emu.journal()
        if e.get("type") == "request" and e["method"] == "GET" and e["path"].endswith(suffix)
    )


def _job_reads(emu: Emulator) -> int:
    """GETs of single jobs (`/jobs/{id}`): the fallback a shared pool read makes unneeded."""
    return sum(
        1
        for e in emu.journal()
        if e.get("type") == "request" and e["method"] == "GET" and "/jobs/" in e["path"]
    )


def _waits(client: CelonisClient, jobs: list[str], **limits: float) -> list[Wait]:
    waits = []
    for job in jobs:
        handle = client.execute(POOL, job, "DELTA")
        waits.append(
            Wait.of(
                "ours",
                handle,
                now=time.time(),
                timeout=limits.get("timeout", 3600.0),
                poll=POLL,
                scale=SCALE,
            )
        )
    return waits


def test_one_status_read_per_round_serves_every_waiting_task(emulator: Emulator) -> None:
    """20 tasks waiting at once cost about what one costs alone: one `logs/status` per round."""
    client = _client(emulator)
    alone = PoolPoller(client, POOL, RequestPool(2))
    (single,) = _waits(client, JOBS[-1:])  # the longest job, on its own
    before = _reads(emulator, "/logs/status")  # the execute read the status first
    assert asyncio.run(alone.wait_for(single)).outcome is Outcome.SUCCESS
    reads_alone = _reads(emulator, "/logs/status") - before
    assert reads_alone == alone.rounds

    shared = PoolPoller(client, POOL, RequestPool(2))
    waits = _waits(client, JOBS)
    before, job_reads = _reads(emulator, "/logs/status"), _job_reads(emulator)

    async def all_of_them() -> list[Any]:
        return await asyncio.gather(*(shared.wait_for(w) for w in waits))

    ended = asyncio.run(all_of_them())
    assert [e.outcome for e in ended] == [Outcome.SUCCESS] * len(JOBS)
    assert [e.wait.job_id for e in ended] == JOBS
    reads = _reads(emulator, "/logs/status") - before
    assert reads == shared.rounds
    assert reads <= 1.5 * reads_alone  # not 20 x
    assert _job_reads(emulator) == job_reads  # no job read on its own
    # the history is read only when a status cannot tell: here every end is tied to ours
    assert _reads(emulator, "/executions") == 0
    assert shared.waiting == 0


def test_a_cancelled_wait_leaves_the_others_polling(emulator: Emulator) -> None:
    client = _client(emulator)
    poller = PoolPoller(client, POOL, RequestPool(2))
    first, second = _waits(client, JOBS[:2])

    async def scenario() -> Any:
        gone = asyncio.create_task(poller.wait_for(first))
        kept = asyncio.create_task(poller.wait_for(second))
        await asyncio.sleep(0.2)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert poller.waiting == 1
        return await kept

    assert asyncio.run(scenario()).outcome is Outcome.SUCCESS


def test_job_timeout_and_execution_timeout_end_the_wait(emulator: Emulator) -> None:
    client = _client(emulator)
    poller = PoolPoller(client, POOL, RequestPool(2))
    short, limited = _waits(client, JOBS[:2], timeout=120.0)  # 2 min: 0.2 s here
    limited = Wait.from_dict(
        {**limited.to_dict(), "deadline": time.time() + 60, "execution_deadline": time.time() + 0.1}
    )

    async def both() -> list[Any]:
        return await asyncio.gather(poller.wait_for(short), poller.wait_for(limited))

    ended = asyncio.run(both())
    assert [e.outcome for e in ended] == [Outcome.TIMEOUT, Outcome.EXECUTION_TIMEOUT]


def test_a_cancel_goes_ahead_of_queued_reads() -> None:
    pool = RequestPool(1)
    order: list[str] = []
    busy, release = threading.Event(), threading.Event()

    def blocker() -> None:
        busy.set()
        release.wait(5)
        order.append("blocker")

    def call(name: str) -> Any:
        return lambda: order.append(name)

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(Priority.STATUS, blocker))
        assert await asyncio.to_thread(busy.wait, 5)  # the only thread is busy now
        reads = [
            asyncio.ensure_future(pool.run(Priority.STATUS, call(f"read{n}"))) for n in range(3)
        ]
        history = asyncio.ensure_future(pool.run(Priority.HISTORY, call("history")))
        cancel = asyncio.ensure_future(pool.run(Priority.CANCEL, call("cancel")))
        while pool._queue.qsize() < 5:  # every call is queued behind the blocker
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *reads, history, cancel)

    asyncio.run(scenario())
    assert order == ["blocker", "cancel", "history", "read0", "read1", "read2"]


def test_an_api_error_ends_every_wait_of_the_round_with_its_message(emulator: Emulator) -> None:
    client = _client(emulator)
    (wait,) = _waits(client, JOBS[:1])
    auth = KeyAuth("Bearer", Secret("wrong-" + KEY), "KEY")
    wrong = CelonisClient.connect(emulator.base_url, auth, requests.Session(), ScaledClock(SCALE))
    ended = asyncio.run(PoolPoller(wrong, POOL, RequestPool(1)).wait_for(wait))
    assert ended.outcome is Outcome.ERROR and ended.message
