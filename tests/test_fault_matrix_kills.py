"""Issue 20's fault matrix: a 200-job DAG under stale and lagging statuses (up to 60 s), lost
execute answers and failing reads, with the runner SIGKILLed at random moments and resumed until
the run is done. Whatever happens: each job is executed exactly once (one intent each: nothing
fails or is cancelled here), and never before its dependencies' own executions succeeded."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import Journal, Pipeline, emulator_for
from tests.test_resume import KEY, env_for, spawn_run

EXECUTE = "/integration/api/v2/data-pools/*/data-jobs/*/execute"
JOBS = 200


def dag(p: Pipeline, rng: random.Random) -> Pipeline:
    p.pool("a", max_parallel=20).pool("b", max_parallel=30).pool("c")
    names: list[str] = []
    for i in range(JOBS):
        deps = rng.sample(names[-40:], k=min(len(names), rng.randint(0, 2)))
        name = f"j{i:03}"
        p.job(name, rng.choice("abc"), *deps, behaviour={"duration": f"{rng.randint(1, 5)}m"})
        names.append(name)
    return p


def wait_for(count: int, emu: object, proc: subprocess.Popen[str], deadline: float) -> None:
    """Until `count` executions are journaled, or the runner ended."""
    while len(Journal(emu.journal()).requests("POST", "/execute")) < count:  # type: ignore[attr-defined]
        if proc.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(int(os.environ.get("KILL_MATRIX_RUNS", "3"))))
def test_kills_and_resumes_under_stale_statuses_execute_each_job_once_in_order(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    p = dag(Pipeline(tmp_path), rng)
    p.defaults.update(timeout="2h", settle_window="5m")
    p.settings.update(
        time_scale=600,
        status_lag=f"{rng.randint(0, 60)}s",
        stale_status_for=f"{rng.randint(0, 60)}s",
        clock_offset=f"{rng.randint(-300, 300)}s",
    )
    p.settings["faults"] = [
        {
            "method": "POST",
            "path": EXECUTE,
            "action": "drop_after",
            "probability": 0.03,
            "seed": seed,
        },
        {
            "method": "POST",
            "path": EXECUTE,
            "action": "drop_before",
            "probability": 0.03,
            "seed": seed + 1,
        },
        {
            "method": "GET",
            "path": "/integration/api/pools/*",
            "action": "status",
            "status": 503,
            "probability": 0.05,
            "seed": seed + 2,
        },
    ]
    manifest, _ = p.write()
    codes: list[int] = []
    with emulator_for(p, KEY) as emu:
        env = {**env_for(p), "CELONIS_RUNNER_TIME_ORIGIN": repr(emu.clock.origin)}
        args = [str(manifest), "--base-url", emu.base_url, "--log-format", "json"]
        for attempt in range(12):
            proc = spawn_run(*args, *(["--resume"] if attempt else []), env=env)
            sent = len(Journal(emu.journal()).requests("POST", "/execute"))
            if attempt < 4:  # kill at a random point of the first four runs
                wait_for(sent + rng.randint(1, 40), emu, proc, time.monotonic() + 60)
                proc.kill()
            _, err = proc.communicate(timeout=300)
            codes.append(proc.returncode)
            if proc.returncode in (0,):
                break
            assert proc.returncode in (-9, 1, 3), err[-3000:]
        journal = Journal(emu.journal())
    print(
        f"seed {seed}: exit codes {codes}, faults {len([r for r in journal.requests() if r.get('fault')])}"
    )
    assert codes[-1] == 0, codes
    counts = {name: len(journal.executions(name)) for name in p.jobs}
    assert {n: c for n, c in counts.items() if c != 1} == {}
    journal.assert_order(p.jobs)
