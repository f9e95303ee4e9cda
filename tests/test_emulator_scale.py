"""The emulator's state at size: a request touches only the jobs whose state changes.

`State` keeps a heap of each job's next transition and a pool -> jobs index,
so neither `advance` nor a pool's `logs/status` scans every job.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from runner.emulator import Scenario
from runner.emulator.journal import Journal
from runner.emulator.state import State


def _id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def _scenario(pools: int, per_pool: int, durations: list[float]) -> Scenario:
    data = {
        "queued_for": "1s",
        "pools": [
            {
                "id": _id("pool", p),
                "jobs": [
                    {"id": _id("job", p, j), "duration": durations[p * per_pool + j]}
                    for j in range(per_pool)
                ],
            }
            for p in range(pools)
        ],
    }
    return Scenario.from_dict(data)


class _NoScan(dict[str, Any]):
    """The state's job table, refusing to be walked: only lookups by id are allowed."""

    def _refuse(self, *args: object) -> NoReturn:
        raise AssertionError("scanned every job")

    values = items = keys = _refuse

    def __iter__(self) -> Iterator[str]:
        self._refuse()


def test_executes_reads_and_advances_do_not_scan_every_job() -> None:
    scenario = _scenario(50, 40, [36000.0] * 2000)
    state = State(scenario, Journal(), wall_offset=0.0)
    state.begin(0.0)
    state.jobs = _NoScan(state.jobs)
    job_ids = [job.id for pool in scenario.pools for job in pool.jobs]
    for n, job_id in enumerate(job_ids):
        assert state.execute(job_id, "FULL", 0.5 + n * 1e-4) == "started"
    state.advance(1.4)
    pool = scenario.pools[7]
    entries = [state.status_entry(job, 1.4) for job in state.pool_jobs(pool.id)]
    assert [e["id"] for e in entries] == [job.id for job in pool.jobs]
    assert {e["status"] for e in entries} == {"QUEUED"}
    assert state.job_view(state.jobs[job_ids[-1]], 1.4)["status"] == "QUEUED"


def test_every_transition_is_journaled_at_its_time_in_order() -> None:
    rng = random.Random(7)
    durations = [float(rng.randint(2, 400)) for _ in range(300)]
    scenario = _scenario(10, 30, durations)
    journal = Journal()
    state = State(scenario, journal, wall_offset=0.0)
    state.begin(0.0)
    job_ids = [job.id for pool in scenario.pools for job in pool.jobs]
    starts: dict[str, float] = {}
    now = 0.0
    for job_id in rng.sample(job_ids, len(job_ids)):
        now += rng.random() * 3
        state.execute(job_id, "DELTA", now)
        starts[job_id] = now
    while now < 2000:
        now += rng.random() * 50
        state.advance(now)
    seen: dict[str, list[tuple[float, str]]] = {}
    times = []
    for entry in journal.snapshot():
        times.append(entry["t"])
        if entry.get("event") == "status":
            seen.setdefault(entry["job_id"], []).append((entry["t"], entry["status"]))
    assert times == sorted(times)
    for job_id, duration in zip(job_ids, durations, strict=True):
        t0 = starts[job_id]
        assert [status for _, status in seen[job_id]] == ["QUEUED", "RUNNING", "SUCCESS"]
        assert [t for t, _ in seen[job_id]] == pytest.approx([t0, t0 + 1, t0 + duration])


@pytest.mark.slow
def test_the_emulator_bench_runs() -> None:
    """bench/emulator.py on a tiny input: it runs and reports the ratios (no targets here)."""
    root = Path(__file__).resolve().parent.parent
    bench = [sys.executable, str(root / "bench" / "emulator.py")]
    done = subprocess.run(
        [*bench, "--sizes", "40", "80", "--seconds", "0.25"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for row in ("execute", "GET job", "logs/status"):
        assert re.search(rf"^{row} +\d+/s +\d+/s +\d+\.\d\d$", done.stdout, re.M), done.stdout
    assert "target: GET job and logs/status at 80 >= 0.5 x at 40" in done.stdout
