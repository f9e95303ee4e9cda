"""The README's "Running part of a data job" example works as written: its commands, run by a
shell from the repository with only the port changed (and the state directory kept out of the
repository; the test adds the emulator's --journal to look at the executes), fail in the second
extraction, then resume only the tasks that did not succeed."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tests.test_emulator_readme import free_port, run_in_shell, shell_emulators

REPO = Path(__file__).resolve().parent.parent
README_PORT = "8081"
REFRESH_ORDERS = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"


def commands() -> tuple[str, str, list[str]]:
    """(the export line, the emulator command, the runner commands) of the README's example."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "examples/subset" in b]
    lines = block.strip().splitlines()
    [export] = [line for line in lines if line.startswith("export ")]
    [emulator] = [line.removesuffix(" &") for line in lines if "celonis-runner emulator" in line]
    runs = [line.split("#")[0].strip() for line in lines if "celonis-runner run" in line]
    return export, emulator, runs


def test_the_readme_subset_example_fails_then_resumes_only_the_unfinished_tasks(
    tmp_path: Path,
) -> None:
    export, emulator_command, (first, resume) = commands()
    port = free_port()
    assert README_PORT in emulator_command
    manifest = (REPO / "examples" / "subset" / "jobs.yaml").read_text()
    assert f"base_url: http://127.0.0.1:{README_PORT}" in manifest
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # the one change besides the port: the manifest's base_url points at README_PORT
        "CELONIS_BASE_URL": f"http://127.0.0.1:{port}",
        "CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"),
    }
    env.pop("CELONIS_RUNNER_TIME_SCALE", None)
    journal = tmp_path / "journal.jsonl"
    emulator = f"{export}; exec {emulator_command.replace(README_PORT, port)} --journal {journal}"
    with shell_emulators([emulator], REPO, env):
        results = run_in_shell(export, (first, resume), REPO, env)
    failed, resumed = results
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"SAP customers\s+failed\s+3m\s+ORA-00942", failed.stdout), failed.stdout
    assert re.search(r"Create O2C activities\s+skipped", failed.stdout), failed.stdout
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    block = resumed.stdout.split("Tasks of refresh_orders:\n")[1].split("\n\n")[0]
    names = [line.split("  ")[1] for line in block.splitlines()]
    assert [n.strip() for n in names] == ["SAP customers", "Create O2C activities", "O2C"]
    # the emulator's journal: the resumed execute carried exactly the three tasks
    entries = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    executes = [
        e
        for e in entries
        if e.get("type") == "execution"
        and e.get("event") == "started"
        and e.get("job_id") == REFRESH_ORDERS
    ]
    assert [len(e["subset"]["tasks"]) for e in executes] == [4, 3]
