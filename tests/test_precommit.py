"""The pre-commit hook in .pre-commit-hooks.yaml: its settings, and its entry run on manifests."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent


def hook() -> dict[str, object]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list)
    [found] = [h for h in hooks if h["id"] == "celonis-runner-validate"]
    return dict(found)


def test_hook_settings() -> None:
    h = hook()
    assert h["entry"] == "celonis-runner validate"
    assert h["language"] == "python"
    assert h["pass_filenames"] is True
    assert {"id", "name", "entry", "language", "files"} <= set(h)


def test_hook_files_pattern() -> None:
    pattern = re.compile(str(hook()["files"]))  # pre-commit matches with re.search
    for name in ("jobs.yaml", "jobs.yml", "etl/jobs.yaml", "prod.jobs.yaml", "a/dev.jobs.yml"):
        assert pattern.search(name), name
    for name in ("myjobs.yaml", "jobs.yaml.bak", "jobs.json", "jobs/other.yaml", "schema.yaml"):
        assert not pattern.search(name), name


def run_entry(*files: Path) -> subprocess.CompletedProcess[str]:
    program, *args = shlex.split(str(hook()["entry"]))
    assert program == "celonis-runner"  # the console script; `python -m runner` is the same CLI
    return subprocess.run(
        [sys.executable, "-m", "runner", *args, *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "", "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_hook_passes_a_good_manifest_and_fails_a_bad_one(tmp_path: Path) -> None:
    good = ROOT / "jobs.yaml"
    done = run_entry(good)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid (9 jobs in 3 pools)" in done.stdout

    bad = tmp_path / "prod.jobs.yaml"
    bad.write_text(
        good.read_text().replace("depends_on: [transform_o2c]", "depends_on: [transform_o2]")
    )
    assert bad.read_text() != good.read_text()
    done = run_entry(good, bad)
    assert done.returncode == 2
    assert f"{bad}:" in done.stdout and "unknown job 'transform_o2'" in done.stdout
    assert "Traceback" not in done.stderr
