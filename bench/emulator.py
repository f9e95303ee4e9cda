"""Benchmark: does a request to the emulator cost the same with 40 jobs and with 10,000?

For each size an emulator (`python -m runner.emulator`, a subprocess on
127.0.0.1) serves the jobs in pools of 40, each running 100 virtual hours at
time scale 1, and every job is started first (all executing). Then a
keep-alive client measures, for --seconds in all per size and request, the
throughput of `GET .../pools/{pool}/jobs/{job}` (a random job) and of
`GET .../pools/{pool}/logs/status` (a random pool: 40 entries at any size, so
the answer is the same size). Both emulators run side by side and take turns
in slices of 0.25 s, so load from elsewhere on the machine hits both; the
ratios (throughput at the large size / at the small one) are what is
compared: target >= 0.5. Loopback only; bounded by --seconds and the
start-up executes.

Run:  .venv/bin/python bench/emulator.py [--sizes 40 10000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

import requests
from _common import BENCH_API_KEY, emulator_subprocess, machine, uid

POOL_SIZE = 40
DURATION = "100h"


def scenario(jobs: int) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Pools of POOL_SIZE jobs; the (pool, job) ids."""
    pools: list[dict[str, object]] = []
    ids: list[tuple[str, str]] = []
    for p in range(max(1, -(-jobs // POOL_SIZE))):
        pool_id = uid("bench-emulator-pool", p)
        members = range(p * POOL_SIZE, min(jobs, (p + 1) * POOL_SIZE))
        pool_jobs = [{"id": uid("bench-emulator-job", j), "duration": DURATION} for j in members]
        pools.append({"id": pool_id, "name": f"pool {p}", "jobs": pool_jobs})
        ids += [(pool_id, str(job["id"])) for job in pool_jobs]
    return {"description": "bench/emulator.py", "pools": pools}, ids


REQUESTS = ("GET job", "logs/status")
SLICE = 0.25
"""Seconds per slice: the sizes take turns, so a busy neighbour on the machine hits both."""


class Served:
    """One emulator with every job started, and the two requests measured against it."""

    def __init__(self, base: str, ids: list[tuple[str, str]], seed: int) -> None:
        self.base = base
        self.ids = ids
        self.pools = sorted({pool for pool, _ in ids})
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {BENCH_API_KEY}"
        self.counts: dict[str, tuple[int, float]] = {name: (0, 0.0) for name in REQUESTS}

    def start_all(self) -> float:
        """Execute every job; executes per second."""
        started = time.perf_counter()
        for pool_id, job_id in self.ids:
            url = f"{self.base}/integration/api/v2/data-pools/{pool_id}/data-jobs/{job_id}/execute"
            check(self.session.post(url, params={"mode": "FULL"}, timeout=10))
        rate = len(self.ids) / (time.perf_counter() - started)
        entries = self.status().json()
        if any(entry["status"] not in ("QUEUED", "RUNNING") for entry in entries):
            raise RuntimeError("not every job is executing")
        return rate

    def job(self) -> requests.Response:
        pool_id, job_id = self.rng.choice(self.ids)
        url = f"{self.base}/integration/api/pools/{pool_id}/jobs/{job_id}"
        return self.session.get(url, timeout=10)

    def status(self) -> requests.Response:
        url = f"{self.base}/integration/api/pools/{self.rng.choice(self.pools)}/logs/status"
        return self.session.get(url, timeout=10)

    def slice(self, name: str, seconds: float) -> None:
        """Send `name` requests back to back for `seconds`; add to its count and time."""
        call = self.job if name == "GET job" else self.status
        count, start = 0, time.perf_counter()
        while True:
            check(call())
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        total, spent = self.counts[name]
        self.counts[name] = (total + count, spent + elapsed)

    def rate(self, name: str) -> float:
        count, seconds = self.counts[name]
        return count / seconds


def check(response: requests.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")


def measure(small: int, large: int, seconds: float) -> list[tuple[str, float, float]]:
    """(what, per second at `small`, per second at `large`) for executes and the two requests."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-emulator-")))
        served: dict[int, Served] = {}
        executes: dict[int, float] = {}
        for n in (small, large):
            data, ids = scenario(n)
            emulator = emulator_subprocess(data, tmp, time_scale=1, name=f"emulator-{n}")
            served[n] = Served(stack.enter_context(emulator).base_url, ids, seed=n)
            executes[n] = served[n].start_all()
        for n in (small, large):  # warm up: connections, caches, the first transitions
            for name in REQUESTS:
                served[n].slice(name, SLICE)
                served[n].counts[name] = (0, 0.0)
        for _ in range(max(1, round(seconds / SLICE))):
            for name in REQUESTS:
                for n in (small, large):
                    served[n].slice(name, SLICE)
        rows = [("execute", executes[small], executes[large])]
        return rows + [
            (name, served[small].rate(name), served[large].rate(name)) for name in REQUESTS
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[40, 10_000], metavar="N")
    parser.add_argument("--seconds", type=float, default=3.0, help="per size and request (3)")
    args = parser.parse_args(argv)
    small, large = args.sizes
    print(f"machine: {machine()}")
    print(f"jobs in pools of {POOL_SIZE}, all executing; requests/s over {args.seconds:g} s each")
    rows = measure(small, large, args.seconds)
    print(f"{'':14}{small:>10} jobs{large:>10} jobs   ratio")
    worst = 1.0
    for name, a, b in rows:
        ratio = b / a
        if name != "execute":
            worst = min(worst, ratio)
        print(f"{name:14}{a:>13.0f}/s{b:>13.0f}/s   {ratio:.2f}")
    verdict = "met" if worst >= 0.5 else "NOT met"
    print(
        f"target: GET job and logs/status at {large} >= 0.5 x at {small}: {verdict} ({worst:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
