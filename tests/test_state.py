"""The state file: written atomically, never more than MIN_WRITE_INTERVAL behind, readable for a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import UsageError
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


def _good_state() -> dict:
    return {
        "state_version": 1,
        "run_id": "20260101T000000Z-abcdef",
        "status": "running",
        "selection": {"select": [], "exclude": []},
        "fingerprint": {"only": {"pool_id": "p", "job_id": "j", "mode": "DELTA", "depends_on": []}},
        "jobs": {
            "only": {
                "state": "running",
                "intent_at": 1.0,
                "handle": {"mode": "DELTA", "attempts": 1, "compared": [], "before": {}},
            }
        },
    }


def _tampered(change: Callable[[dict], object]) -> str:
    data = _good_state()
    change(data)
    return json.dumps(data)


TAMPERED = {
    "bogus job state": (
        _tampered(lambda d: d["jobs"]["only"].update(state="bogus")),
        "at jobs.only.state: 'bogus' is not one of",
    ),
    "run id a number": (_tampered(lambda d: d.update(run_id=5)), "at run_id: 5 is not of type"),
    "fingerprint of the wrong type": (
        _tampered(lambda d: d["fingerprint"].update(only=5)),
        "at fingerprint.only: 5 is not of type 'object'",
    ),
    "depends_on of the wrong type": (
        _tampered(lambda d: d["fingerprint"]["only"].update(depends_on="a")),
        "at fingerprint.only.depends_on: 'a' is not of type 'array'",
    ),
    "selection of the wrong type": (
        _tampered(lambda d: d["selection"].update(select="a")),
        "at selection.select: 'a' is not of type 'array'",
    ),
    "handle of the wrong type": (
        _tampered(lambda d: d["jobs"]["only"].update(handle=[1])),
        "at jobs.only.handle",
    ),
    "handle markers of the wrong type": (
        _tampered(lambda d: d["jobs"]["only"]["handle"]["before"].update(status=5)),
        "at jobs.only.handle.before.status: 5 is not of type",
    ),
    "Infinity": (
        _tampered(lambda d: d["jobs"]["only"].update(intent_at=1.5)).replace("1.5", "Infinity"),
        "Infinity is not a number JSON allows",
    ),
    "NaN": (
        _tampered(lambda d: d["jobs"]["only"].update(intent_at=1.5)).replace("1.5", "NaN"),
        "NaN is not a number JSON allows",
    ),
    "deep nesting": (
        _tampered(lambda d: d["jobs"]["only"].update(error=1.5)).replace(
            "1.5", "[" * 100_000 + "]" * 100_000
        ),
        "nested too deeply",
    ),
    "truncated": (json.dumps(_good_state())[:-40], "not valid JSON at line 1"),
}


@pytest.mark.parametrize("name", TAMPERED)
def test_a_tampered_state_file_is_damaged_not_an_internal_error(tmp_path: Path, name: str) -> None:
    text, why = TAMPERED[name]
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        load_saved(path)
    message = str(raised.value)
    assert message.startswith(f"cannot resume from {path}: the state file is damaged: ")
    assert why in message
    assert message.endswith("; start a new run (without --resume)")


def test_a_damaged_state_file_is_refused_under_python_O(tmp_path: Path) -> None:
    """With `python -O`, an `assert` checks nothing: the state file's checks must not be asserts."""
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, _ = p.write()
    runs = tmp_path / "runs"
    runs.mkdir()
    saved = runs / "20260101T000000Z-abcdef.json"
    saved.write_text(TAMPERED["bogus job state"][0])
    result = subprocess.run(
        [sys.executable, "-O", "-m", "runner", "run", str(manifest), "--emulator", "--resume"],
        capture_output=True,
        text=True,
        env={**os.environ, "CELONIS_RUNNER_STATE_DIR": str(runs)},
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"cannot resume from {saved}: the state file is damaged: at jobs.only.state" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
