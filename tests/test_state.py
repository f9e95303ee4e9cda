"""The state file: written atomically, never more than MIN_WRITE_INTERVAL behind, readable for a resume."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.execution.statefile import MIN_WRITE_INTERVAL, StateStore, load_saved
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline
from tests.emulator_fixtures import FakeClock

Cli = Callable[..., CliResult]


def test_store_defers_unforced_writes_and_says_when(tmp_path: Path) -> None:
    from runner.execution.executor import Executor

    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap")
    manifest, _ = p.write()
    plan = build_plan(load_manifest(manifest, {}))
    clock = FakeClock()
    state = Executor(plan, api=None, clock=clock).state  # type: ignore[arg-type]
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock)
    assert store(state, False) is None and store.writes == 1
    clock.now += MIN_WRITE_INTERVAL / 5
    assert store(state, False) == pytest.approx(MIN_WRITE_INTERVAL * 4 / 5)
    assert store.writes == 1
    assert store(state, True) is None and store.writes == 2  # before an execute: always
    clock.now += MIN_WRITE_INTERVAL
    assert store(state, False) is None and store.writes == 3
    saved = load_saved(path)
    assert saved.data["jobs"]["a"]["state"] == "pending"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_state_file_follows_the_run_while_it_waits(cli: Cli, tmp_path: Path) -> None:
    """A job's success reaches the state file even when nothing else happens for a long time."""
    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.settings["time_scale"] = 600
    p.job("quick", "sap", behaviour={"duration": "2m"})
    p.job(
        "slow", "crm", behaviour={"duration": "20m"}
    )  # 2 s real: long enough to look, short to wait
    manifest, scenario = p.write()
    journal_path = tmp_path / "journal.jsonl"
    runs = tmp_path / "runs"
    stop = threading.Event()
    result: list[CliResult] = []

    def run() -> None:
        result.append(
            cli(
                "run",
                str(manifest),
                "--emulator",
                "--scenario",
                str(scenario),
                "--emulator-journal",
                str(journal_path),
                "--state-dir",
                str(runs),
                "--log-format",
                "json",
            )
        )
        stop.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    seen = None
    while time.monotonic() < deadline:
        files = list(runs.glob("*.json")) if runs.exists() else []
        if (
            files
            and journal_path.exists()
            and Journal.read(journal_path).success_time("quick") is not None
        ):
            time.sleep(0.1)  # a few poll rounds (10 s each at x600 is 17 ms)
            seen = json.loads(files[0].read_text())
            break
        time.sleep(0.02)
    assert seen is not None, "quick never succeeded"
    assert seen["jobs"]["quick"]["state"] == "succeeded"
    assert (
        seen["jobs"]["slow"]["state"] == "running"
        and seen["jobs"]["slow"]["handle"]["before"] is not None
    )
    assert not stop.is_set()  # the run was still going when the file showed it
    thread.join(timeout=30)
    assert result[0].code == 0
