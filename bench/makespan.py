"""Benchmark: how close `run` gets to the critical path of a DAG, against a naive script.

A seeded DAG of 200 jobs in 4 pools (8 layers; each job after the first layer
depends on 1-3 earlier jobs, mostly of the layer before and of its own pool;
durations 2-30 virtual minutes; no pool limits) is served by the emulator
(`python -m runner.emulator`, a subprocess, scaled time) and run twice:

  runner: `runner.execution.executor.Executor` on the plan of the manifest (load_manifest +
          build_plan), with `CelonisClient` over requests, at --scale (600);
  naive:  a script in the style of Celonis' documentation: in topological order,
          POST execute, then `GET .../jobs/{id}` every poll interval until the job
          ends, then the next job (plain requests), at --naive-scale (3000: serial
          runs are long; both results are in virtual seconds, so the scale cancels).

From the emulator's journal (virtual seconds) it computes, for each:
  makespan      first execute .. last SUCCESS;
  critical path longest dependency chain by the jobs' actual durations (execute to
                end; the emulator's queued_for is inside a job's duration), the
                physical limit with unlimited parallelism;
  ratio         makespan / critical path (runner target <= 1.10);
  status requests per job: `logs/status` and `GET .../jobs/{id}` (the runner's
                execute reads one of each before its POST, the naive script none);
  start delay   how long after its last dependency ended each job was started.
It also reports the runner's CPU time (getrusage of this process during the run:
the emulator is in another process, so it is the runner's own) and the naive
script's, per job.

Run:  .venv/bin/python bench/makespan.py [--scale 600] [--naive-scale 3000] [--skip-naive]
                                          [--jobs 200] [--pools 4] [--seed 7] [--strict]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_API_KEY,
    ServedEmulator,
    client_for,
    cpu_seconds,
    emulator_subprocess,
    machine,
    quiet_logs,
    state_store,
    status_request,
    thread_cpu_clock,
    uid,
)

POOLS = 4
JOBS = 200
LAYERS = 8
POLL_INTERVAL = 10.0
MAX_POLL_INTERVAL = 60.0
QUEUED_FOR = 20.0
TARGET_RATIO = 1.10


@dataclass(frozen=True)
class DagJob:
    name: str
    pool: str
    duration: float
    depends_on: tuple[str, ...]

    @property
    def job_id(self) -> str:
        return uid("job", self.name)


def generate_dag(seed: int = 7, jobs: int = JOBS, pools: int = POOLS) -> list[DagJob]:
    """`jobs` jobs in `LAYERS` layers, in a topological order."""
    rng = random.Random(seed)
    pool_names = [f"pool_{p}" for p in range(pools)]
    layers: list[list[DagJob]] = []
    out: list[DagJob] = []
    per_layer = jobs // LAYERS
    for layer in range(LAYERS):
        count = per_layer + (jobs - per_layer * LAYERS if layer == LAYERS - 1 else 0)
        current: list[DagJob] = []
        for i in range(count):
            pool = pool_names[i % pools]
            deps: dict[str, None] = {}
            if layer > 0:
                for _ in range(rng.randint(1, 3)):
                    if rng.random() < 0.8:
                        source = layers[layer - 1]
                    else:
                        source = [j for lay in layers for j in lay]
                    same = [j for j in source if j.pool == pool]
                    chosen = rng.choice(same if same and rng.random() < 0.75 else source)
                    deps.setdefault(chosen.name, None)
            job = DagJob(
                name=f"l{layer}_{pool}_{i:03d}",
                pool=pool,
                duration=float(rng.randint(2 * 60, 30 * 60)),
                depends_on=tuple(deps),
            )
            current.append(job)
        layers.append(current)
        out.extend(current)
    return out


def manifest_yaml(dag: Sequence[DagJob]) -> str:
    pools = sorted({j.pool for j in dag})
    lines = [
        "version: 1",
        "defaults:",
        "  mode: DELTA",
        "  timeout: 2h",
        f"  poll_interval: {POLL_INTERVAL:g}s",
        f"  max_poll_interval: {MAX_POLL_INTERVAL:g}s",
        "pools:",
    ]
    for pool in pools:
        lines += [f"  {pool}:", f"    id: {uid('pool', pool)}"]
    lines.append("jobs:")
    for job in dag:
        lines += [f"  {job.name}:", f"    pool: {job.pool}", f"    id: {job.job_id}"]
        lines.append(f"    expected_duration: {job.duration:g}s")
        if job.depends_on:
            lines.append(f"    depends_on: [{', '.join(job.depends_on)}]")
    return "\n".join(lines) + "\n"


def scenario(dag: Sequence[DagJob]) -> dict[str, Any]:
    pools: dict[str, list[dict[str, Any]]] = {}
    for job in dag:
        pools.setdefault(job.pool, []).append(
            {"id": job.job_id, "name": job.name, "duration": job.duration}
        )
    return {
        "description": "bench/makespan.py",
        "queued_for": QUEUED_FOR,
        "pools": [
            {"id": uid("pool", pool), "name": pool, "jobs": jobs} for pool, jobs in pools.items()
        ],
    }


# -- what the journal says ---------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    scale: float
    makespan: float
    critical_path: float
    pool_status_requests: int
    job_status_requests: int
    execute_requests: int
    other_requests: int
    start_delays: list[float]
    cpu: float
    wall: float
    succeeded: int
    scheduler_cpu: float | None = None
    state: tuple[int, int, int] | None = None
    """The state file: bytes written (snapshot + journal), writes, compactions."""

    @property
    def ratio(self) -> float:
        return self.makespan / self.critical_path


def analyse(
    label: str,
    dag: Sequence[DagJob],
    journal: Sequence[Mapping[str, Any]],
    *,
    scale: float,
    cpu: float,
    wall: float,
) -> Outcome:
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    outcome: dict[str, str] = {}
    execution_job: dict[str, str] = {}
    pool_req = job_req = execute_req = other_req = 0
    for entry in journal:
        if entry["type"] == "execution" and entry["event"] == "started" and entry["by"] == "api":
            starts[entry["job_id"]] = entry["t"]
            execution_job[entry["execution_id"]] = entry["job_id"]
        elif entry["type"] == "execution" and entry["event"] == "status":
            job_id = execution_job.get(entry["execution_id"])
            if job_id is not None and entry["status"] in ("SUCCESS", "FAIL", "CANCEL", "SKIPPED"):
                ends[job_id] = entry["t"]
                outcome[job_id] = entry["status"]
        elif entry["type"] == "request":
            kind = status_request(entry)
            if kind == "pool":
                pool_req += 1
            elif kind == "job":
                job_req += 1
            elif entry["method"] == "POST" and entry["path"].endswith("/execute"):
                execute_req += 1
            else:
                other_req += 1
    by_name = {j.name: j for j in dag}
    missing = [j.name for j in dag if j.job_id not in ends]
    if missing:
        raise SystemExit(f"{label}: {len(missing)} jobs never ended, e.g. {missing[:3]}")
    finish: dict[str, float] = {}  # earliest possible end with unlimited parallelism
    delays: list[float] = []
    first = min(starts.values())
    for job in dag:  # topological order
        actual = ends[job.job_id] - starts[job.job_id]
        ready = max((finish[d] for d in job.depends_on), default=0.0)
        finish[job.name] = ready + actual
        deps_done = max((ends[by_name[d].job_id] for d in job.depends_on), default=first)
        delays.append(starts[job.job_id] - deps_done)
    successes = [ends[j.job_id] for j in dag if outcome[j.job_id] == "SUCCESS"]
    return Outcome(
        label=label,
        scale=scale,
        makespan=max(successes) - first,
        critical_path=max(finish.values()),
        pool_status_requests=pool_req,
        job_status_requests=job_req,
        execute_requests=execute_req,
        other_requests=other_req,
        start_delays=delays,
        cpu=cpu,
        wall=wall,
        succeeded=len(successes),
    )


# -- the two contenders ------------------------------------------------------------------


def run_executor(dag: Sequence[DagJob], workdir: Path, scale: float) -> Outcome:
    from runner.clock import ScaledClock
    from runner.execution.executor import Executor
    from runner.manifest.loader import load_manifest
    from runner.plan.build import build_plan

    path = workdir / "jobs.yaml"
    path.write_text(manifest_yaml(dag), encoding="utf-8")
    plan = build_plan(load_manifest(path, {}))
    with emulator_subprocess(scenario(dag), workdir, time_scale=scale, name="runner") as served:
        clock = ScaledClock(scale)
        store = state_store(workdir, served.base_url, scale)  # the state file, as `run` keeps it
        executor = Executor(
            plan, client_for(served, clock), clock, listeners=[store.note], checkpoint=store
        )
        scheduler = thread_cpu_clock()  # run() schedules on this (the main) thread
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        sched0 = time.clock_gettime(scheduler)
        state = executor.run()
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        sched = time.clock_gettime(scheduler) - sched0
        if state.status != "succeeded":
            raise SystemExit(f"the run ended {state.status}: {state.error}")
        journal = settled_journal(served)
    outcome = analyse("runner (Executor)", dag, journal, scale=scale, cpu=cpu, wall=wall)
    outcome.scheduler_cpu = sched
    outcome.state = (store.bytes_written, store.writes, store.compactions)
    return outcome


def run_naive(dag: Sequence[DagJob], workdir: Path, scale: float) -> Outcome:
    """Celonis-documentation style: one job at a time, execute, poll until done."""
    import requests

    from runner.clock import ScaledClock

    with emulator_subprocess(scenario(dag), workdir, time_scale=scale, name="naive") as served:
        clock = ScaledClock(scale)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {BENCH_API_KEY}"
        base = served.base_url
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        for job in dag:
            pool_id = uid("pool", job.pool)
            answer = session.post(
                f"{base}/integration/api/v2/data-pools/{pool_id}/data-jobs/{job.job_id}/execute",
                params={"mode": "DELTA"},
                timeout=30,
            )
            answer.raise_for_status()
            # "every poll interval": the next read is due one interval after the last one
            # was sent (at real speed the same as sleeping after each answer; scaled up,
            # it keeps the HTTP round trip from stretching the interval)
            due = clock.monotonic() + POLL_INTERVAL
            while True:
                clock.sleep(due - clock.monotonic())
                due = clock.monotonic() + POLL_INTERVAL
                answer = session.get(
                    f"{base}/integration/api/pools/{pool_id}/jobs/{job.job_id}", timeout=30
                )
                answer.raise_for_status()
                status = answer.json()["status"]
                if status not in ("QUEUED", "RUNNING"):
                    break
            if status != "SUCCESS":
                raise SystemExit(f"naive: {job.name} ended {status}")
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        journal = settled_journal(served)
    return analyse("naive script", dag, journal, scale=scale, cpu=cpu, wall=wall)


def settled_journal(served: ServedEmulator) -> list[dict[str, Any]]:
    """The journal, after one more request so every transition up to now is written."""
    import requests

    requests.get(
        f"{served.base_url}/integration/api/pools",
        headers={"Authorization": f"Bearer {BENCH_API_KEY}"},
        timeout=30,
    )
    return served.journal()


# -- output ------------------------------------------------------------------------------


def report(outcome: Outcome, jobs: int) -> None:
    delays = sorted(outcome.start_delays)
    status = outcome.pool_status_requests + outcome.job_status_requests
    print(f"\n{outcome.label}  (time scale {outcome.scale:g}, {outcome.wall:.1f} s real)")
    print(f"  jobs succeeded            : {outcome.succeeded}/{jobs}")
    print(f"  makespan                  : {outcome.makespan:9.0f} s virtual")
    print(f"  critical path (actual)    : {outcome.critical_path:9.0f} s virtual")
    print(f"  makespan / critical path  : {outcome.ratio:9.3f}")
    print(
        f"  status requests           : {status} ({outcome.pool_status_requests} logs/status, "
        f"{outcome.job_status_requests} GET jobs/{{id}}) = {status / jobs:.2f} per job"
    )
    print(
        f"  other requests            : {outcome.execute_requests} execute POSTs, "
        f"{outcome.other_requests} other"
    )
    print(
        f"  start delay after deps    : mean {sum(delays) / len(delays):6.1f} s, "
        f"median {delays[len(delays) // 2]:6.1f} s, max {delays[-1]:6.1f} s virtual"
    )
    print(
        f"  CPU of this process       : {outcome.cpu:6.2f} s = {outcome.cpu / jobs * 1000:.1f} ms "
        f"per job ({outcome.cpu / outcome.wall:.0%} of one core over the run)"
    )
    if outcome.state is not None:
        written, writes, compactions = outcome.state
        print(
            f"  state file written        : {written / jobs:.0f} bytes per job "
            f"({writes} writes, {compactions} compactions)"
        )
    if outcome.scheduler_cpu is not None:
        print(
            f"    of which scheduling thread: {outcome.scheduler_cpu:6.2f} s "
            f"({outcome.scheduler_cpu / outcome.cpu:.0%}); the rest is HTTP worker threads"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=600.0, help="runner's time scale (600)")
    parser.add_argument(
        "--naive-scale", type=float, default=3000.0, help="naive script's time scale (3000)"
    )
    parser.add_argument("--skip-naive", action="store_true", help="only run the runner")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs in the DAG ({JOBS})")
    parser.add_argument("--pools", type=int, default=POOLS, help=f"pools ({POOLS})")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.jobs < LAYERS or args.pools < 1:
        parser.error(f"--jobs must be at least {LAYERS} (the layers) and --pools at least 1")

    quiet_logs()
    dag = generate_dag(args.seed, args.jobs, args.pools)
    total = sum(j.duration for j in dag)
    print(f"machine: {machine()}")
    print(
        f"DAG: {len(dag)} jobs in {args.pools} pools, {LAYERS} layers, "
        f"{sum(len(j.depends_on) for j in dag)} dependencies, durations 2-30 min "
        f"(sum {total / 3600:.1f} h virtual), poll interval {POLL_INTERVAL:g}s "
        f"(runner backs off to {MAX_POLL_INTERVAL:g}s), queued_for {QUEUED_FOR:g}s, no pool limits"
    )
    with tempfile.TemporaryDirectory(prefix="bench-makespan-") as tmp:
        ours = run_executor(dag, Path(tmp), args.scale)
        report(ours, len(dag))
        naive = None if args.skip_naive else run_naive(dag, Path(tmp), args.naive_scale)
        if naive is not None:
            report(naive, len(dag))

    met = ours.ratio <= TARGET_RATIO
    print("\nsummary")
    print(
        f"  runner makespan / critical path : {ours.ratio:.3f} "
        f"(target <= {TARGET_RATIO:.2f}: {'met' if met else 'MISSED'})"
    )
    if naive is not None:
        print(f"  naive  makespan / critical path : {naive.ratio:.3f}")
        print(f"  naive makespan / runner makespan: {naive.makespan / ours.makespan:.1f}x")
        ours_req = (ours.pool_status_requests + ours.job_status_requests) / len(dag)
        naive_req = (naive.pool_status_requests + naive.job_status_requests) / len(dag)
        print(f"  status requests per job         : runner {ours_req:.2f}, naive {naive_req:.2f}")
        print(
            f"  CPU per job                     : runner {ours.cpu / len(dag) * 1000:.1f} ms, "
            f"naive {naive.cpu / len(dag) * 1000:.1f} ms"
        )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
