"""Benchmark: bytes of state file written per job, and the store's CPU per job, at any run size.

Drives `runner.execution.statefile.StateStore` (the executor's checkpoint) the way the executor
does, without Celonis: jobs of a layered DAG start in batches (a forced write before each batch's
executes), become running, and succeed, with unforced writes between passes (the real-time
throttle is moved on by hand so that every one of them writes). Counted: bytes written to the
snapshot and the journal, writes, compactions, and this process's CPU seconds inside the store.
The state file's cost should not grow with the run's size: bytes and CPU per job flat.

Run:  .venv/bin/python bench/state_bytes.py [--jobs 1000 10000] [--batch 20] [--gc-freeze]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import machine, uid

from runner.api.client import ExecutionHandle, JobStatus
from runner.clock import SystemClock
from runner.execution.executor import Executor
from runner.execution.runstate import JobState, RunState
from runner.execution.statefile import MIN_WRITE_INTERVAL, StateStore
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan


class Timer:
    """The store's real-time source, moved on by hand past the throttle."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_state(folder: Path, jobs: int) -> RunState:
    spec = {
        "version": 1,
        "pools": {f"p{i}": {"id": uid("pool", i)} for i in range(10)},
        "jobs": {
            f"j{n}": {
                "pool": f"p{n % 10}",
                "id": uid("job", n),
                **({"depends_on": [f"j{n - 100}"]} if n >= 100 else {}),
            }
            for n in range(jobs)
        },
    }
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = build_plan(load_manifest(path, {}))
    return Executor(plan, api=None, clock=SystemClock(), run_id="bench").state  # type: ignore[arg-type]


def measure(jobs: int, batch: int, *, freeze: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        state = run_state(Path(tmp), jobs)
        if freeze:  # what the manifest and plan left is never garbage: keep the collector off it
            gc.collect()
            gc.freeze()
        timer = Timer()
        store = StateStore(
            Path(tmp) / "runs" / "bench.json",
            select=[],
            exclude=[],
            clock=SystemClock(),
            timer=timer,
        )
        names = list(state.jobs)
        cpu = time.process_time()
        store(state, True)
        for first in range(0, jobs, batch):
            group = [state.jobs[name] for name in names[first : first + batch]]
            for job in group:
                job.state, job.attempts, job.intent_at = JobState.STARTING, 1, time.time()
                store.note(state, job)  # run.py passes the store as a listener of the executor
            store(state, True)  # before the executes go out
            for job in group:
                before = JobStatus(job_id=job.planned.job.job_id, status="SUCCESS")
                job.handle = ExecutionHandle(
                    job.planned.job.pool_id, job.planned.job.job_id, "DELTA", before, 0.0, 1
                )
                job.state, job.started_at = JobState.RUNNING, time.time()
                store.note(state, job)
            timer.now += MIN_WRITE_INTERVAL
            store(state, False)
            for job in group:
                job.state, job.finished_at = JobState.SUCCEEDED, time.time()
                store.note(state, job)
            timer.now += MIN_WRITE_INTERVAL
            store(state, False)
        state.status = "succeeded"
        store(state, True)
        cpu = time.process_time() - cpu
        gc.unfreeze()
    return {
        "jobs": jobs,
        "bytes_per_job": store.bytes_written / jobs,
        "writes": store.writes,
        "compactions": store.compactions,
        "cpu_ms_per_job": cpu * 1000 / jobs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch", type=int, default=20, help="jobs started per scheduler pass")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after the plan is built (the garbage collector's full passes over the "
        "plan otherwise grow with the run's size)",
    )
    args = parser.parse_args(argv)
    print(machine())
    print(f"{'jobs':>7} {'bytes/job':>10} {'writes':>7} {'compactions':>12} {'CPU ms/job':>11}")
    for jobs in args.jobs:
        r = measure(jobs, args.batch, freeze=args.gc_freeze)
        print(
            f"{r['jobs']:>7} {r['bytes_per_job']:>10.0f} {r['writes']:>7} "
            f"{r['compactions']:>12} {r['cpu_ms_per_job']:>11.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
