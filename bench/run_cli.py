"""Benchmark: `celonis-runner run` as users run it, at 1,000 and 10,000 jobs, state file on.

The path users take (README: the emulator in one terminal, the runner in another): the emulator
(`python -m runner.emulator`, scaled time) is one process, and `celonis-runner run jobs.yaml
--base-url ...` with `$CELONIS_RUNNER_TIME_SCALE` and the emulator's `$CELONIS_RUNNER_TIME_ORIGIN`
is another (through bench/_cli_child.py, which only counts what the state file wrote). Default polls, the state file on, JSON logs to a file.
Two shapes, each at every size in --jobs (pools of --pool-size jobs, so a pool's `logs/status`
answer is the same size at any run size):

  dag:  a layered DAG (bench/makespan.py's generator: 8 layers, 1-3 dependencies each,
        durations 2-30 virtual minutes);
  flat: "all at once": the same number of independent jobs, durations 2-30 virtual minutes.

Measured per run: the runner process's CPU (resource usage of the child, user + system), bytes
the state file wrote (snapshot + journal) per job, and from the emulator's journal the makespan
against the critical path. Ratios against the smallest size measured in the same run:
CPU per job at N / CPU per job at the smallest N (target <= 1.5) and, for the DAG at the largest
size, makespan / critical path (target <= 1.05).

Run:  .venv/bin/python bench/run_cli.py [--jobs 1000 10000] [--shapes dag flat] [--scale 300]
                                         [--pool-size 250] [--seed 7] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import BENCH_API_KEY, ROOT, emulator_subprocess, machine, process_cpu, uid
from makespan import DagJob, analyse, generate_dag, scenario, settled_journal

CPU_TARGET = 1.5
MAKESPAN_TARGET = 1.05


def flat_jobs(seed: int, jobs: int, pools: int) -> list[DagJob]:
    rng = random.Random(seed)
    return [
        DagJob(f"f_{n:05d}", f"pool_{n % pools}", float(rng.randint(2 * 60, 30 * 60)), ())
        for n in range(jobs)
    ]


def manifest_yaml(jobs: list[DagJob]) -> str:
    """Default polls (no poll_interval): what a user who sets nothing gets."""
    lines = ["version: 1", "defaults:", "  mode: DELTA", "  timeout: 24h", "pools:"]
    for pool in sorted({j.pool for j in jobs}):
        lines += [f"  {pool}:", f"    id: {uid('pool', pool)}"]
    lines.append("jobs:")
    for job in jobs:
        lines += [f"  {job.name}:", f"    pool: {job.pool}", f"    id: {job.job_id}"]
        if job.depends_on:
            lines.append(f"    depends_on: [{', '.join(job.depends_on)}]")
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    shape: str
    jobs: int
    cpu: float
    wall: float
    state_bytes: int
    state_writes: int
    compactions: int
    makespan: float
    critical_path: float
    succeeded: int
    emulator_cpu: float
    status_requests: int
    start_delay_mean: float
    start_delay_max: float

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu * 1000 / self.jobs


def run_once(shape: str, jobs: list[DagJob], scale: float, workdir: Path) -> Result:
    manifest = workdir / "jobs.yaml"
    manifest.write_text(manifest_yaml(jobs), encoding="utf-8")
    facts_path, log_path = workdir / "facts.json", workdir / "run.log"
    origin = time.time()  # both scaled clocks start from it, so they agree on dates
    with emulator_subprocess(
        scenario(jobs), workdir, time_scale=scale, time_origin=origin
    ) as served:
        env = {
            **os.environ,
            "CELONIS_API_KEY": BENCH_API_KEY,
            "CELONIS_RUNNER_TIME_SCALE": f"{scale:g}",
            "CELONIS_RUNNER_TIME_ORIGIN": f"{origin:.6f}",
        }
        command = [sys.executable, str(ROOT / "bench" / "_cli_child.py"), str(facts_path)]
        command += ["run", str(manifest), "--base-url", served.base_url, "--log-format", "json"]
        command += ["--state-dir", str(workdir / "runs"), "--report", str(workdir / "r.json")]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the emulator is not reaped yet
        wall0 = time.perf_counter()
        with log_path.open("w") as log:
            done = subprocess.run(command, stdout=log, stderr=log, cwd=workdir, env=env)
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            tail = log_path.read_text(encoding="utf-8")[-2000:]
            raise SystemExit(f"{shape} {len(jobs)}: run exited {done.returncode}\n{tail}")
        journal = settled_journal(served)
        emulator_cpu = process_cpu(served.process.pid)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    outcome = analyse(shape, jobs, journal, scale=scale, cpu=cpu, wall=wall)
    facts = json.loads(facts_path.read_text(encoding="utf-8"))
    return Result(
        shape, len(jobs), cpu, wall, facts["state_bytes"], facts["state_writes"],
        facts["compactions"], outcome.makespan, outcome.critical_path, outcome.succeeded,
        emulator_cpu, outcome.pool_status_requests + outcome.job_status_requests,
        sum(outcome.start_delays) / len(outcome.start_delays), max(outcome.start_delays),
    )  # fmt: skip


def show(r: Result, base: Result) -> None:
    ratio = r.cpu_ms_per_job / base.cpu_ms_per_job
    print(
        f"{r.shape:>5} {r.jobs:>7} {r.succeeded:>7} {r.wall:>7.1f} {r.cpu:>7.1f} "
        f"{r.cpu_ms_per_job:>8.2f} {ratio:>6.2f} {r.state_bytes / r.jobs:>9.0f} "
        f"{r.state_writes:>7} {r.compactions:>5} {r.makespan / r.critical_path:>8.3f}",
        flush=True,
    )
    print(
        f"      critical path {r.critical_path:.0f} s virtual; start delay after the last "
        f"dependency: mean {r.start_delay_mean:.0f} s, max {r.start_delay_max:.0f} s virtual; "
        f"{r.status_requests / r.jobs:.1f} status requests per job; emulator CPU {r.emulator_cpu:.1f} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--shapes", nargs="+", choices=["dag", "flat"], default=["dag", "flat"])
    parser.add_argument("--scale", type=float, default=300.0, help="time scale (300)")
    parser.add_argument("--pool-size", type=int, default=250, help="jobs per pool (250)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--keep", type=Path, help="keep each run's files (manifest, log, journal, state) here"
    )
    args = parser.parse_args(argv)
    sizes = sorted(args.jobs)
    print(f"machine: {machine()}")
    print(f"time scale {args.scale:g}, {args.pool_size} jobs per pool, default polls, state on")
    print(
        f"{'shape':>5} {'jobs':>7} {'ok':>7} {'wall s':>7} {'CPU s':>7} {'ms/job':>8} "
        f"{'ratio':>6} {'B/job':>9} {'writes':>7} {'comp':>5} {'mk/cp':>8}"
    )
    missed: list[str] = []
    for shape in args.shapes:
        base: Result | None = None
        for size in sizes:
            pools = max(1, size // args.pool_size)
            make = generate_dag if shape == "dag" else flat_jobs
            if args.keep is not None:
                kept = args.keep / f"{shape}-{size}"
                kept.mkdir(parents=True, exist_ok=True)
                r = run_once(shape, make(args.seed, size, pools), args.scale, kept)
            else:
                with tempfile.TemporaryDirectory(prefix=f"bench-cli-{shape}-") as tmp:
                    r = run_once(shape, make(args.seed, size, pools), args.scale, Path(tmp))
            base = base or r
            show(r, base)
            if r.cpu_ms_per_job > CPU_TARGET * base.cpu_ms_per_job:
                missed.append(
                    f"{shape} {size}: CPU per job x{r.cpu_ms_per_job / base.cpu_ms_per_job:.2f}"
                )
            if (
                shape == "dag"
                and size == sizes[-1]
                and r.makespan > MAKESPAN_TARGET * r.critical_path
            ):
                missed.append(
                    f"dag {size}: makespan / critical path {r.makespan / r.critical_path:.3f}"
                )
    print(
        f"targets: CPU per job <= {CPU_TARGET} x the smallest size; DAG makespan at the largest "
        f"<= {MAKESPAN_TARGET} x critical path: " + ("; ".join(missed) or "all met")
    )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
