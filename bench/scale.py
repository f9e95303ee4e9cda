"""Benchmark: 2,000 jobs running at once in 10 pools: requests, CPU and memory per poll round.

The emulator (`python -m runner.emulator`, a subprocess, scaled time) serves 2,000
independent jobs (10 pools x 200) that each run 10 virtual hours, so all of them are
running together. `runner.execution.executor.Executor` starts them all, then polls. Two phases:

  start:  from `run()` until every job is running: wall and CPU time, status
          requests and answer bytes per started job (the execute reads the job and
          its pool's `logs/status` before the POST);
  steady: the next --rounds poll rounds, then `request_stop(...)` with
          cancel_on_stop=False. A round is the time in which every running job's
          status was read once: rounds = job statuses read / jobs running.
          Reported: status requests per round (target: one per pool, 10), the
          runner's CPU per round (getrusage of this process: the emulator runs in
          another one), as a share of the round's wall time and against a
          baseline measured in the same run: a bare loop that GETs the 10 pools'
          `logs/status` with requests and parses the JSON, nothing else.
  memory: ru_maxrss of this process (peak RSS, MiB) before the run (imports,
          manifest and plan loaded) and after it; with --tracemalloc also the
          peak of Python allocations during the run (slows the run down: CPU
          numbers of such a run are not comparable).

Run:  .venv/bin/python bench/scale.py [--jobs 2000] [--pools 10] [--rounds 15] [--scale 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BENCH_API_KEY,
    client_for,
    cpu_seconds,
    emulator_subprocess,
    machine,
    max_rss_mib,
    quiet_logs,
    state_store,
    thread_cpu_clock,
    uid,
)

DURATION = 10 * 3600.0
POLL_INTERVAL = 10.0
MAX_POLL_INTERVAL = 60.0


def names(jobs: int, pools: int) -> list[tuple[str, str]]:
    """(job name, pool name), jobs spread round robin over the pools."""
    return [(f"job_{i:05d}", f"pool_{i % pools:02d}") for i in range(jobs)]


def manifest_yaml(jobs: Sequence[tuple[str, str]]) -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  timeout: 24h",
        f"  poll_interval: {POLL_INTERVAL:g}s",
        f"  max_poll_interval: {MAX_POLL_INTERVAL:g}s",
        "pools:",
    ]
    for pool in sorted({p for _, p in jobs}):
        lines += [f"  {pool}:", f"    id: {uid('pool', pool)}"]
    lines.append("jobs:")
    for name, pool in jobs:
        lines += [f"  {name}:", f"    pool: {pool}", f"    id: {uid('job', name)}"]
    return "\n".join(lines) + "\n"


def scenario(jobs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    pools: dict[str, list[dict[str, Any]]] = {}
    for name, pool in jobs:
        pools.setdefault(pool, []).append({"id": uid("job", name), "name": name})
    return {
        "description": "bench/scale.py",
        "default_duration": DURATION,
        "pools": [{"id": uid("pool", p), "name": p, "jobs": js} for p, js in pools.items()],
    }


@dataclass
class Counts:
    """Requests as the runner's session saw them (response hook), by kind."""

    pool_status: int = 0
    job_status: int = 0
    execute: int = 0
    other: int = 0
    status_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    mine: threading.local = field(default_factory=threading.local, repr=False)
    """Status requests made by the current thread (to attribute them to one call)."""

    def status_of_this_thread(self) -> int:
        return int(getattr(self.mine, "status", 0))

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        path = response.request.path_url.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path.endswith("/logs/status") or (
            len(parts) == 6 and parts[:3] == ["integration", "api", "pools"]
        ):
            self.mine.status = self.status_of_this_thread() + 1
        with self.lock:
            if path.endswith("/logs/status"):
                self.pool_status += 1
                self.status_bytes += len(response.content)
            elif len(parts) == 6 and parts[:3] == ["integration", "api", "pools"]:
                self.job_status += 1
                self.status_bytes += len(response.content)
            elif path.endswith("/execute"):
                self.execute += 1
            else:
                self.other += 1

    def snapshot(self) -> tuple[int, int, int, int]:
        with self.lock:
            return (self.pool_status, self.job_status, self.execute, self.status_bytes)


@dataclass(frozen=True)
class Mark:
    """A moment of the run: wall clock, process CPU, scheduling-thread CPU, request counts."""

    wall: float
    cpu: float
    scheduler_cpu: float
    counts: tuple[int, int, int, int]


class Probe:
    """Wraps the client: notes when all jobs run, counts statuses read, stops after N rounds."""

    def __init__(self, client: Any, jobs: int, rounds: int, counts: Counts) -> None:
        self.client = client
        self.jobs = jobs
        self.rounds = rounds
        self.counts = counts
        self.executor: Any = None
        self.running = 0
        self.steady = threading.Event()
        self.scheduler_clock = thread_cpu_clock()  # Executor.run() runs on the main thread
        self.steady_at: Mark | None = None
        self.end_at: Mark | None = None
        self.read_in_steady = 0
        self.requests_in_steady = 0
        """Status requests made by the `pool_statuses` calls that count."""
        self.lock = threading.Lock()

    def mark(self) -> Mark:
        return Mark(
            time.perf_counter(),
            cpu_seconds(),
            time.clock_gettime(self.scheduler_clock),
            self.counts.snapshot(),
        )

    # what the Executor calls
    def execute(self, pool_id: str, job_id: str, mode: Any, **options: Any) -> Any:
        return self.client.execute(pool_id, job_id, mode, **options)

    def pool_entries(self, pool_id: str) -> Any:
        return self.client.pool_entries(pool_id)

    def execution_history(self, pool_id: str, job_id: str, limit: int) -> Any:
        return self.client.execution_history(pool_id, job_id, limit)

    def celonis_floor_ms(self, local: float | None = None) -> int:
        floor: int = self.client.celonis_floor_ms(local)
        return floor

    def celonis_ceiling_ms(self, local: float | None = None) -> int:
        ceiling: int = self.client.celonis_ceiling_ms(local)
        return ceiling

    def cancel(self, pool_id: str, job_id: str) -> None:
        self.client.cancel(pool_id, job_id)

    def failure_reason(self, pool_id: str, job_id: str) -> str | None:
        result: str | None = self.client.failure_reason(pool_id, job_id)
        return result

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> Any:
        ids = list(job_ids)
        counted = self.steady.is_set()  # a request started before all ran does not count
        before = self.counts.status_of_this_thread()
        result = self.client.pool_statuses(pool_id, ids)
        if counted:
            sent = self.counts.status_of_this_thread() - before
            with self.lock:
                self.read_in_steady += len(ids)
                self.requests_in_steady += sent
                done = self.read_in_steady >= self.rounds * self.jobs and self.end_at is None
                if done:
                    self.end_at = self.mark()
            if done:
                self.executor.request_stop(f"bench: {self.rounds} poll rounds measured")
        return result

    # an Executor listener (on the scheduling thread)
    def listen(self, state: Any, job: Any) -> None:
        if job.state == "running":
            self.running += 1
            if self.running == self.jobs:
                self.steady_at = self.mark()
                self.steady.set()


def bare_rounds(base_url: str, pool_ids: Sequence[str], rounds: int) -> tuple[float, float]:
    """(CPU, wall) seconds of `rounds` rounds of GET logs/status + JSON parse per pool."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {BENCH_API_KEY}"
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(rounds):
        for pool_id in pool_ids:
            answer = session.get(
                f"{base_url}/integration/api/pools/{pool_id}/logs/status", timeout=30
            )
            answer.raise_for_status()
            answer.json()
    return cpu_seconds() - cpu0, time.perf_counter() - wall0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15, help="steady poll rounds to measure")
    parser.add_argument("--scale", type=float, default=60.0, help="time scale (60)")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (slower)"
    )
    args = parser.parse_args(argv)

    import requests

    from runner.clock import ScaledClock
    from runner.execution.executor import Executor
    from runner.manifest.loader import load_manifest
    from runner.plan.build import build_plan

    quiet_logs()
    print(f"machine: {machine()}")
    jobs = names(args.jobs, args.pools)
    print(
        f"{args.jobs} jobs in {args.pools} pools, no dependencies, each runs "
        f"{DURATION / 3600:g} h virtual; poll interval {POLL_INTERVAL:g}s backing off to "
        f"{MAX_POLL_INTERVAL:g}s; time scale {args.scale:g}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        path = Path(tmp) / "jobs.yaml"
        path.write_text(manifest_yaml(jobs), encoding="utf-8")
        plan = build_plan(load_manifest(path, {}))
        with emulator_subprocess(scenario(jobs), Path(tmp), time_scale=args.scale) as served:
            clock = ScaledClock(args.scale)
            client = client_for(served, clock)
            counts = Counts()
            session: requests.Session = client.transport.session
            session.hooks["response"].append(counts.hook)
            probe = Probe(client, args.jobs, args.rounds, counts)
            store = state_store(Path(tmp), served.base_url, args.scale)  # as `run` keeps it
            executor = Executor(
                plan,
                probe,
                clock,
                cancel_on_stop=False,
                listeners=[probe.listen, store.note],
                checkpoint=store,
            )
            probe.executor = executor
            rss_before = max_rss_mib()
            if args.tracemalloc:
                tracemalloc.start()
            start = probe.mark()
            state = executor.run()
            cpu_total, wall_total = cpu_seconds() - start.cpu, time.perf_counter() - start.wall
            traced_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
            if args.tracemalloc:
                tracemalloc.stop()
            rss_after = max_rss_mib()
            state_written = (store.bytes_written, store.writes, store.compactions)
            if probe.steady_at is None or probe.end_at is None:
                raise SystemExit(
                    f"the run ended ({state.status}: {state.error}) before {args.rounds} rounds; "
                    f"{probe.running} of {args.jobs} jobs ran"
                )
            pool_ids = [uid("pool", f"pool_{p:02d}") for p in range(args.pools)]
            bare_cpu, bare_wall = bare_rounds(served.base_url, pool_ids, args.rounds)

    steady, end = probe.steady_at, probe.end_at
    start_wall, start_cpu = steady.wall - start.wall, steady.cpu - start.cpu
    start_sched = steady.scheduler_cpu - start.scheduler_cpu
    st_pool, st_job, st_exec, st_bytes = steady.counts
    rounds = probe.read_in_steady / args.jobs
    d_pool, d_job = end.counts[0] - st_pool, end.counts[1] - st_job
    per_round = probe.requests_in_steady / rounds
    round_wall = (end.wall - steady.wall) / rounds
    round_cpu = (end.cpu - steady.cpu) / rounds
    round_sched = (end.scheduler_cpu - steady.scheduler_cpu) / rounds
    bare_round_cpu = bare_cpu / args.rounds

    print(f"\nstart phase: all {args.jobs} jobs running after {start_wall:.1f} s real")
    print(f"  execute POSTs                 : {st_exec}")
    print(
        f"  status requests               : {st_pool} logs/status + {st_job} GET jobs/{{id}} "
        f"= {(st_pool + st_job) / args.jobs:.2f} per started job"
    )
    print(
        f"  status answer bytes           : {st_bytes / 1e6:.1f} MB "
        f"= {st_bytes / args.jobs / 1024:.1f} KiB per started job"
    )
    print(
        f"  runner CPU                    : {start_cpu:.2f} s = {start_cpu / args.jobs * 1000:.2f} ms "
        f"per started job ({start_cpu / start_wall:.0%} of one core)"
    )
    print(
        f"    of which scheduling thread  : {start_sched:.2f} s ({start_sched / start_cpu:.0%}); "
        f"HTTP worker threads and the rest: {start_cpu - start_sched:.2f} s"
    )
    print(f"\nsteady phase: {rounds:.1f} rounds in {end.wall - steady.wall:.1f} s real")
    print(
        f"  status requests per round     : {per_round:.2f}; target {args.pools} (one per pool): "
        f"ratio {per_round / args.pools:.2f}"
    )
    print(
        f"    (all requests in the window : {d_pool} logs/status, {d_job} GET jobs/{{id}}, "
        "including polls already in flight when it opened)"
    )
    print(
        f"  runner CPU per round          : {round_cpu * 1000:.1f} ms "
        f"= {round_cpu / round_wall:.1%} of the round's {round_wall:.2f} s wall time"
    )
    print(
        f"    of which scheduling thread  : {round_sched * 1000:.1f} ms ({round_sched / round_cpu:.0%})"
    )
    print(
        f"  baseline: bare GET+parse of {args.pools} logs/status : {bare_round_cpu * 1000:.1f} ms "
        f"CPU per round ({bare_wall / args.rounds * 1000:.0f} ms wall)"
    )
    print(f"  runner / baseline CPU per round: {round_cpu / bare_round_cpu:.2f}")
    print("\nmemory (ru_maxrss, peak RSS of this process; the emulator is another process)")
    print(f"  before the run (imports, manifest, plan): {rss_before:7.1f} MiB")
    print(f"  peak by the end of the run              : {rss_after:7.1f} MiB")
    print(
        f"  growth during the run                   : {rss_after - rss_before:7.1f} MiB "
        f"= {(rss_after - rss_before) * 1024 / args.jobs:.1f} KiB per job"
    )
    if traced_peak is not None:
        print(f"  tracemalloc peak during the run         : {traced_peak / 2**20:7.1f} MiB")
    print(
        f"\nstate file written: {state_written[0] / args.jobs:.0f} bytes per job "
        f"({state_written[1]} writes, {state_written[2]} compactions)"
    )
    print(
        f"\nwhole run: {wall_total:.1f} s real, {cpu_total:.2f} s CPU; ended {state.status} "
        f"({state.stop_reason})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
