"""examples/environments/README.md works as written: its commands, run by a shell from a copy
of the repository's example (only the two ports changed), find the job QA lacks, run in dev
with dev's ids, and refuse QA before any execute."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tests.test_emulator_readme import free_port, run_in_shell, shell_emulators

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "environments"
PORTS = ("8091", "8092")


def commands() -> tuple[str, list[str], list[str]]:
    """(the export line, the emulator commands, the runner commands) of the README."""
    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = block.strip().splitlines()
    [export] = [line for line in lines if line.startswith("export ")]
    emulators = [line.removesuffix(" &") for line in lines if "celonis-runner emulator" in line]
    runs = [line.split("#")[0].strip() for line in lines if line.startswith("celonis-runner")]
    return export, emulators, [r for r in runs if "emulator" not in r]


def journal_executes(path: Path) -> list[str]:
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e["path"] for e in entries if e.get("method") == "POST" and "execute" in e["path"]]


def test_the_environments_example_runs_as_its_readme_says(tmp_path: Path) -> None:
    export, emulator_commands, (drift, dev_run, qa_run) = commands()
    ports = {p: str(free_port()) for p in PORTS}
    copy = tmp_path / "examples" / "environments"
    copy.mkdir(parents=True)
    for source in EXAMPLE.iterdir():
        text = source.read_text()
        for old, new in ports.items():
            text = text.replace(old, new)
        (copy / source.name).write_text(text)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"),
    }
    for name in ("CELONIS_RUNNER_TIME_SCALE", "CELONIS_BASE_URL", "CELONIS_RUNNER_ENV"):
        env.pop(name, None)
    journals = {team: tmp_path / f"{team}.jsonl" for team in ("dev", "qa")}
    scripts = []
    for team, command in zip(("dev", "qa"), emulator_commands, strict=True):
        for old, new in ports.items():
            command = command.replace(old, new)
        scripts.append(f"{export}; exec env {command} --journal {journals[team]}")
    with shell_emulators(scripts, tmp_path, env, stop_within=30):
        results = run_in_shell(export, (drift, dev_run, qa_run), tmp_path, env)
    drifted, dev, qa = results
    assert drifted.returncode == 1, drifted.stderr
    assert re.search(
        r"transform_o2c\s+2d6b8c74-3f50-4eac-9b42-808fae1d2c33\s+missing", drifted.stdout
    )
    assert "jobs.yaml:41:5: jobs.transform_o2c.celonis_name" in drifted.stderr
    assert dev.returncode == 0, dev.stderr
    assert qa.returncode == 2, qa.stderr
    assert "nothing was started" in qa.stderr
    assert len(journal_executes(journals["dev"])) == 3
    assert journal_executes(journals["qa"]) == []
