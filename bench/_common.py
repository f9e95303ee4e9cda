"""Helpers shared by the benchmarks: deterministic ids, machine facts, CPU and memory readings,
and the emulator served from a subprocess (so the runner's CPU time is its own).

Not a benchmark itself; each `bench/*.py` imports it (the script's folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
NAMESPACE = uuid.UUID("5d8f0c1e-6b2a-4c3d-9e7f-0a1b2c3d4e5f")
"""uuid5 namespace: the same generated manifest (and ids) on every run."""

BENCH_API_KEY = "bench-key-not-a-secret"


def uid(*parts: object) -> str:
    """A deterministic UUID for a pool or job, from its kind and name."""
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)))


def machine() -> str:
    """One line: CPU model, core count, Python version, platform."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_clock(thread_id: int | None = None) -> int:
    """A clock id for `time.clock_gettime` measuring one thread's CPU (the main one by default)."""
    import threading

    ident = thread_id if thread_id is not None else threading.main_thread().ident
    assert ident is not None
    return time.pthread_getcpuclockid(ident)


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quiet_logs() -> None:
    """Log like `celonis-runner run --log-format json`, but into /dev/null.

    The rendering cost stays in the measurement (a real run pays it too); the
    terminal stays readable.
    """
    from runner import logs

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    logs.configure(
        log_format="json", verbosity=0, stream=sink, environ={}, redactor=logs.Redactor()
    )


@dataclass
class ServedEmulator:
    base_url: str
    journal_path: Path
    process: subprocess.Popen[str]

    def journal(self) -> list[dict[str, Any]]:
        """The journal's JSON lines as written so far."""
        entries = []
        with self.journal_path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    entries.append(json.loads(line))
        return entries


@contextlib.contextmanager
def emulator_subprocess(
    scenario: Mapping[str, Any],
    workdir: Path,
    *,
    time_scale: float,
    name: str = "emulator",
    time_origin: float | None = None,
) -> Iterator[ServedEmulator]:
    """`python -m runner.emulator` serving `scenario` on 127.0.0.1 (a free port), with a journal.

    The scenario is written as JSON (which is YAML) and loaded by the emulator's own loader.
    `time_origin`: its scaled clock's origin ($CELONIS_RUNNER_TIME_ORIGIN), to share with a
    runner process so both agree on dates.
    """
    scenario_path = workdir / f"{name}-scenario.yaml"
    journal_path = workdir / f"{name}-journal.jsonl"
    scenario_path.write_text(json.dumps(scenario), encoding="utf-8")
    env = {**os.environ, "CELONIS_API_KEY": BENCH_API_KEY, "PYTHONUNBUFFERED": "1"}
    for var in ("CELONIS_APP_KEY", "CELONIS_CLIENT_ID", "CELONIS_CLIENT_SECRET"):
        env.pop(var, None)
    if time_origin is not None:
        env["CELONIS_RUNNER_TIME_ORIGIN"] = f"{time_origin:.6f}"
    command = [
        sys.executable,
        "-m",
        "runner.emulator",
        "--scenario",
        str(scenario_path),
        "--port",
        "0",
        "--time-scale",
        str(time_scale),
        "--journal",
        str(journal_path),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        prefix = "emulator listening on "
        if not line.startswith(prefix):
            error = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"the emulator did not start: {line.strip()} {error.strip()}")
        yield ServedEmulator(line[len(prefix) :].strip(), journal_path, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def client_for(served: ServedEmulator, clock: Any) -> Any:
    """A `CelonisClient` with the emulator's key over a fresh `requests.Session`."""
    import requests

    from runner.api import CelonisClient, KeyAuth, Secret

    auth = KeyAuth("Bearer", Secret(BENCH_API_KEY), "CELONIS_API_KEY")
    return CelonisClient.connect(served.base_url, auth, requests.Session(), clock)


def status_request(entry: Mapping[str, Any]) -> str | None:
    """'pool' for a `logs/status` request, 'job' for `GET .../jobs/{id}`, None otherwise."""
    if entry.get("type") != "request" or entry.get("method") != "GET":
        return None
    path = str(entry.get("path", ""))
    if path.endswith("/logs/status"):
        return "pool"
    parts = path.strip("/").split("/")
    # integration/api/pools/{pool}/jobs/{job}
    if len(parts) == 6 and parts[:3] == ["integration", "api", "pools"] and parts[4] == "jobs":
        return "job"
    return None


def state_store(workdir: Path, base_url: str, scale: float) -> Any:
    """The state file as `celonis-runner run` keeps it (snapshot + journal, throttled on real
    time): pass it to the Executor as `checkpoint` and its `note` as a listener, like run.py."""
    from runner.clock import SystemClock
    from runner.execution.statefile import StateStore

    return StateStore(
        workdir / "runs" / "bench.json",
        select=[],
        exclude=[],
        clock=SystemClock(),
        target=base_url,
        clock_rate=scale,
    )


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc), e.g. the emulator's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
