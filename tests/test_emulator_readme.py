"""The README's two-terminal example works as written: emulator + `run --base-url`, fast, true.

The test takes the commands from README.md's `celonis-runner emulator` section,
changes only the port (to a free one), runs them as a shell would, and checks
that the run succeeds in under 30 s with the job durations of jobs.yaml, and
that the emulator's start line prints that same runner command.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from runner.manifest.loader import load_manifest

REPO = Path(__file__).resolve().parent.parent
README_PORT = "8491"


def example() -> tuple[dict[str, str], str, str]:
    """(exported variables, the emulator command, the runner command) from README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    [block] = [b for b in blocks if "celonis-runner emulator --manifest" in b]
    exports: dict[str, str] = {}
    emulator = runner = ""
    for line in block.strip().splitlines():
        if line.startswith("export "):
            # what the shell makes of it: $(date +%s) is the time origin both processes share
            text = line.removeprefix("export ").replace("$(date +%s)", str(int(time.time())))
            for pair in text.split():
                name, _, value = pair.partition("=")
                exports[name] = value
        elif "celonis-runner emulator" in line:
            assert line.endswith(" &"), line
            emulator = line.removesuffix(" &")
        elif "celonis-runner run" in line:
            runner = line
    assert emulator and runner, block
    return exports, emulator, runner


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@contextlib.contextmanager
def shell_emulators(
    scripts: Sequence[str], cwd: Path, env: Mapping[str, str], stop_within: float = 10
) -> Iterator[list[str]]:
    """Emulators started as a shell would (each script execs one): yields what each printed up
    to the runner command it suggests; stopped with SIGTERM at the end."""
    processes = [
        subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in scripts
    ]
    try:
        yield [_start_lines(process) for process in processes]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=stop_within)


def _start_lines(emulator: subprocess.Popen[str]) -> str:
    assert emulator.stdout is not None
    start = ""
    while "run the runner against it:" not in start and emulator.poll() is None:
        start += emulator.stdout.readline()
    return start


def run_in_shell(
    export: str, commands: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Each command run by bash after the README's export line, one after the other."""
    return [
        subprocess.run(
            ["bash", "-c", f"{export}; {command}"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for command in commands
    ]


def seconds(text: str) -> float:
    """'1h7m', '19m48s', '12m', '45s' -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


def expected_durations() -> dict[str, float]:
    manifest = load_manifest(REPO / "jobs.yaml", {"CELONIS_API_KEY": "x"}, strict_env=False)
    return {
        name: job.expected_duration
        for name, job in manifest.jobs.items()
        if job.expected_duration is not None
    }


def test_the_readme_emulator_example_runs_as_written_in_under_30_seconds(tmp_path: Path) -> None:
    exports, emulator_command, runner_command = example()
    port = free_port()
    assert README_PORT in emulator_command and README_PORT in runner_command
    emulator_command = emulator_command.replace(README_PORT, port)
    runner_command = runner_command.replace(README_PORT, port)
    shutil.copy(REPO / "jobs.yaml", tmp_path / "jobs.yaml")
    env = {**os.environ, **exports}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CELONIS_RUNNER_TIME_SCALE", None)
    with shell_emulators([f"exec {emulator_command}"], tmp_path, env) as [start]:
        assert f"run the runner against it: {runner_command}\n" in start, start
        assert "time scale: 600" in start
        began = time.monotonic()
        run = subprocess.run(
            ["bash", "-c", runner_command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        elapsed = time.monotonic() - began
    assert run.returncode == 0, run.stdout + run.stderr
    assert elapsed < 30, f"the example took {elapsed:.1f} s"
    reported = {
        m.group(1): seconds(m.group(2))
        for m in re.finditer(r"^(\w+)\s+\w+\s+succeeded\s+(\S+)\s*$", run.stdout, re.M)
    }
    expected = expected_durations()
    assert set(reported) == set(expected), run.stdout
    for job, duration in expected.items():
        # slack for polls (every 10s, backing off by 5% of the time run) and for a busy
        # machine (the suite runs in 4 workers): at 600x a tenth of a real second is a
        # virtual minute. With only the emulator sped up, every job (5m to 25m) lasted one
        # poll interval (10s): far outside this.
        assert abs(reported[job] - duration) <= 0.25 * duration + 60, (job, reported, expected)
