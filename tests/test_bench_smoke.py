"""The benchmarks in bench/ still run: each script on a tiny input, in its own process.

Only properties are checked (exit code, the report's lines, makespan >= critical path),
never performance targets: those belong to `make bench` on a known machine.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark scripts on tiny inputs: make test-slow runs them

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=100,
    )


def test_validate_bench_runs() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[bench]')")
    result = run_bench(
        "validate.py", "--jobs", "200", "400", "--pools", "4", "--runs", "1", "--split-runs", "1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (200 jobs in 4 pools)" in result.stdout
    assert "valid (400 jobs in 4 pools)" in result.stdout
    assert result.stdout.count("ratio ours/theirs") == 2
    assert "time per job: " in result.stdout
    assert "validate does not import it" in result.stdout


def test_makespan_bench_runs() -> None:
    result = run_bench(
        "makespan.py", "--jobs", "16", "--pools", "2", "--scale", "3000", "--naive-scale", "6000"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ratios = re.findall(r"^  makespan / critical path\s*:\s*([0-9.]+)", result.stdout, re.M)
    assert len(ratios) == 2, result.stdout
    # the critical path is a lower bound: a ratio under 1 would mean the analysis is wrong
    assert all(float(r) >= 0.999 for r in ratios), ratios
    assert "jobs succeeded            : 16/16" in result.stdout


def test_scale_bench_runs() -> None:
    result = run_bench("scale.py", "--jobs", "40", "--pools", "2", "--rounds", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    per_round = re.search(r"status requests per round\s*:\s*([0-9.]+)", result.stdout)
    assert per_round is not None, result.stdout
    assert "bench: 3 poll rounds measured" in result.stdout


def test_run_cli_bench_runs() -> None:
    result = run_bench("run_cli.py", "--jobs", "16", "32", "--pool-size", "8", "--scale", "6000")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^\s*(dag|flat)\s+(\d+)\s+(\d+)\s.*\s([0-9.]+)$", result.stdout, re.M)
    assert [(shape, jobs) for shape, jobs, _, _ in rows] == [
        ("dag", "16"), ("dag", "32"), ("flat", "16"), ("flat", "32"),
    ], result.stdout  # fmt: skip
    # every job succeeded, through the real CLI, and the critical path is a lower bound
    assert all(ok == jobs for _, jobs, ok, _ in rows), result.stdout
    assert all(float(ratio) >= 0.999 for *_, ratio in rows), result.stdout
    assert "targets: " in result.stdout


def test_http_request_bench_runs() -> None:
    result = run_bench("http_request.py", "--calls", "30", "--rounds", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Transport.get_json: \d+ us CPU per call", result.stdout)
    assert "ratio ours/baseline: " in result.stdout


def test_diff_bench_runs() -> None:
    result = run_bench("diff.py", "--jobs", "200", "--pools", "4", "--runs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (200 jobs in 4 pools)" in result.stdout
    assert re.search(r"ratio diff/validate\s*:\s*[0-9.]+", result.stdout), result.stdout
    assert "diff says: changed ['pool_00_extract_0000']" in result.stdout
