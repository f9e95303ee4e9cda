"""The state file: written atomically, never more than MIN_WRITE_INTERVAL behind, readable for a resume."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.api.client import ExecutionHandle, JobStatus
from runner.errors import UsageError
from runner.execution.runstate import JobState, RunState
from runner.execution.statefile import (
    COMPACT_MIN_BYTES,
    MIN_WRITE_INTERVAL,
    StateStore,
    load_saved,
    resume_from,
)
from runner.logs import REDACTED, Redactor
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from runner.runresult.read import journal_path
from tests.conftest import CliResult
from tests.e2e import Pipeline
from tests.emulator_fixtures import FakeClock

Cli = Callable[..., CliResult]


def _one_job_state(tmp_path: Path, clock: FakeClock, names: tuple[str, ...] = ("a",)) -> RunState:
    from runner.execution.executor import Executor

    p = Pipeline(tmp_path).pool("sap")
    for name in names:
        p.job(name, "sap")
    manifest, _ = p.write()
    plan = build_plan(load_manifest(manifest, {}))
    return Executor(plan, api=None, clock=clock, run_id="r").state  # type: ignore[arg-type]


class RealTime:
    """The store's real-time source, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_defers_unforced_writes_on_real_time_and_says_when(tmp_path: Path) -> None:
    clock, real = FakeClock(), RealTime()
    state = _one_job_state(tmp_path, clock)
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=real, clock_rate=300)
    assert store(state, False) is None and store.writes == 1
    clock.now += 100 * MIN_WRITE_INTERVAL  # the run's (scaled) clock does not open the throttle
    real.now += MIN_WRITE_INTERVAL / 5
    # 4/5 of the interval in real time, said in clock seconds (300 per real second)
    assert store(state, False) == pytest.approx(300 * MIN_WRITE_INTERVAL * 4 / 5)
    assert store.writes == 1
    assert store(state, True) is None and store.writes == 2  # before an execute: always
    real.now += MIN_WRITE_INTERVAL
    assert store(state, False) is None and store.writes == 3
    saved = load_saved(path)
    assert saved.data["jobs"]["a"]["state"] == "pending"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json", "r.jsonl"]  # no temp file


def test_a_write_appends_only_the_jobs_that_changed(tmp_path: Path) -> None:
    clock = FakeClock()
    names = tuple(f"j{i}" for i in range(50))
    state = _one_job_state(tmp_path, clock, names)
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    store(state, True)
    snapshot = path.read_bytes()
    state.jobs["j7"].state = JobState.STARTING
    state.jobs["j7"].intent_at = 1234.5
    before = store.bytes_written
    store(state, True)
    assert path.read_bytes() == snapshot  # the snapshot was not rewritten
    [line] = journal_path(path).read_text().splitlines()
    assert json.loads(line)["job"] == "j7"
    assert store.bytes_written - before == len(line) + 1
    store(state, True)  # nothing changed: nothing written
    assert store.bytes_written - before == len(line) + 1
    saved = load_saved(path)
    assert saved.data["jobs"]["j7"]["state"] == "starting"
    assert {n: h.sent_at for n, h in resume_from(saved, state.plan).uncertain.items()} == {
        "j7": 1234.5
    }


def test_the_journal_is_compacted_and_the_last_write_leaves_one_file(tmp_path: Path) -> None:
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, tuple(f"j{i}" for i in range(20)))
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    store(state, True)
    for attempt in range(1, 3000):  # enough lines to pass COMPACT_MIN_BYTES
        state.jobs["j3"].attempts = attempt
        store(state, True)
    assert store.compactions >= 2
    assert journal_path(path).stat().st_size < COMPACT_MIN_BYTES + 1000
    assert load_saved(path).data["jobs"]["j3"]["attempts"] == 2999
    state.status = "succeeded"
    store(state, True)
    assert not journal_path(path).exists()
    assert load_saved(path).data["status"] == "succeeded"


def test_a_torn_last_journal_line_is_ignored_and_one_in_the_middle_is_damage(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, ("a", "b"))
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    store(state, True)
    state.jobs["a"].state = JobState.SKIPPED
    store(state, True)
    state.jobs["b"].state = JobState.SKIPPED
    store(state, True)
    journal = journal_path(path)
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-20])  # the crash cut the last write short
    saved = load_saved(path)
    assert (saved.data["jobs"]["a"]["state"], saved.data["jobs"]["b"]["state"]) == (
        "skipped",
        "pending",
    )
    first, second = whole.splitlines(keepends=True)
    journal.write_bytes(first[:-20] + b"\n" + second)
    with pytest.raises(UsageError, match=r"r\.jsonl: the state file is damaged: line 1 "):
        load_saved(path)


def test_journal_lines_of_an_older_generation_are_ignored(tmp_path: Path) -> None:
    """A compaction killed after the new snapshot was written, before the journal was emptied."""
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock)
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    store(state, True)
    state.jobs["a"].state = JobState.STARTING
    state.jobs["a"].intent_at = 5.0
    store(state, True)
    old_journal = journal_path(path).read_bytes()
    state.jobs["a"].state = JobState.SKIPPED
    store._compact(state)
    journal_path(path).write_bytes(old_journal)
    assert load_saved(path).data["jobs"]["a"]["state"] == "skipped"


def test_state_file_follows_the_run_while_it_waits(cli: Cli, tmp_path: Path) -> None:
    """A job's success reaches the state file even when nothing else happens for a long time."""
    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.settings["time_scale"] = 600
    p.job("quick", "sap", behaviour={"duration": "2m"})
    p.job(
        "slow", "crm", behaviour={"duration": "20m"}
    )  # 2 s real: long enough to look, short to wait
    manifest, scenario = p.write()
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
    while seen is None and time.monotonic() < deadline and not stop.is_set():
        for path in runs.glob("*.json") if runs.exists() else []:
            try:
                data = load_saved(path).data  # the snapshot and the journal since
            except UsageError:
                continue  # caught mid-write: read again
            if data["jobs"]["quick"]["state"] == "succeeded":
                seen = data
        time.sleep(0.02)
    assert seen is not None, "the state file never showed quick's success while the run went on"
    assert (
        seen["jobs"]["slow"]["state"] == "running"
        and seen["jobs"]["slow"]["handle"]["before"] is not None
    )
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
        "at jobs.only.state: must be one of pending, starting, waiting, running, succeeded, failed,",
    ),
    "run id a number": (
        _tampered(lambda d: d.update(run_id=5)),
        "at run_id: must be of type string, got 5",
    ),
    "fingerprint of the wrong type": (
        _tampered(lambda d: d["fingerprint"].update(only=5)),
        "at fingerprint.only: must be of type object, got 5",
    ),
    "depends_on of the wrong type": (
        _tampered(lambda d: d["fingerprint"]["only"].update(depends_on="a")),
        "at fingerprint.only.depends_on: must be of type array, got 'a'",
    ),
    "selection of the wrong type": (
        _tampered(lambda d: d["selection"].update(select="a")),
        "at selection.select: must be of type array, got 'a'",
    ),
    "handle of the wrong type": (
        _tampered(lambda d: d["jobs"]["only"].update(handle=[1])),
        "at jobs.only.handle",
    ),
    "handle markers of the wrong type": (
        _tampered(lambda d: d["jobs"]["only"]["handle"]["before"].update(status=5)),
        "at jobs.only.handle.before.status: must be of type string or null, got 5",
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


def test_the_store_scrubs_secrets_from_every_text_it_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, ("a", "b"))
    secret = "s3cret-token-value"
    path = tmp_path / "runs" / "r.json"
    store = StateStore(
        path, select=[], exclude=[], clock=clock, timer=RealTime(), redactor=Redactor([secret])
    )
    state.jobs["a"].error = f"401 Unauthorized: token {secret} refused"
    store(state, True)  # the snapshot
    state.jobs["b"].state = JobState.FAILED
    state.jobs["b"].error = f"FAIL: {secret}"
    store(state, True)  # a journal line
    written = path.read_text() + journal_path(path).read_text()
    assert "FAIL: " in journal_path(path).read_text() and "401 Unauthorized" in written
    assert secret not in written
    state.status = "failed"
    store(state, True)  # the last compaction
    assert secret not in path.read_text() and "FAIL: " in path.read_text()


@pytest.mark.parametrize("secret", ['k"ey\\slash-\u00e9t\u00e9', "tab\there-and-\U0001f511"])
def test_a_secret_that_json_escapes_is_scrubbed_too(tmp_path: Path, secret: str) -> None:
    """The store writes a line as is when no secret shows in it; a secret with characters JSON
    escapes shows only in its escaped form, and must be found in that form."""
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, ("a", "b"))
    path = tmp_path / "runs" / "r.json"
    store = StateStore(
        path, select=[], exclude=[], clock=clock, timer=RealTime(), redactor=Redactor([secret])
    )
    state.jobs["a"].error = f"refused: {secret}"
    store(state, True)
    state.jobs["b"].state = JobState.FAILED
    state.jobs["b"].error = f"FAIL: {secret}!"
    store(state, True)
    written = path.read_text() + journal_path(path).read_text()
    escaped = json.dumps(secret)[1:-1]
    assert secret not in written and escaped not in written
    assert "refused: " in written and "FAIL: " in written
    loaded = [json.loads(line) for line in journal_path(path).read_text().splitlines()]
    assert loaded[-1]["data"]["error"] == f"FAIL: {REDACTED}!"


def test_unclear_jobs_come_back_as_uncertain_with_their_sent_at(tmp_path: Path) -> None:
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, ("a", "b"))
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    job = state.jobs["a"]
    job.intent_at = 1000.0
    job.handle = ExecutionHandle(
        job.planned.job.pool_id,
        job.planned.job.job_id,
        "DELTA",
        JobStatus(job_id=job.planned.job.job_id, status=None),
        0.0,
        1,
        sent_at=1002.5,
    )
    job.state = JobState.UNCLEAR
    store(state, True)
    uncertain = resume_from(load_saved(path), state.plan).uncertain
    assert {n: h.sent_at for n, h in uncertain.items()} == {"a": 1002.5}
    job.state = JobState.RUNNING  # a running job's handle comes back with its sent_at too
    store(state, True)
    assert resume_from(load_saved(path), state.plan).running["a"].sent_at == 1002.5
    job.state = JobState.UNCLEAR
    job.handle = None  # never sent: the intent is the earliest it can have started
    store(state, True)
    uncertain = resume_from(load_saved(path), state.plan).uncertain
    assert {n: h.sent_at for n, h in uncertain.items()} == {"a": 1000.0}


def test_once_told_what_changed_a_write_looks_at_those_jobs_only(tmp_path: Path) -> None:
    clock = FakeClock()
    state = _one_job_state(tmp_path, clock, ("a", "b", "c"))
    path = tmp_path / "runs" / "r.json"
    store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
    store(state, True)
    state.jobs["a"].state = JobState.SKIPPED
    store.note(state, state.jobs["a"])
    state.jobs["b"].attempts = 3  # changed without an event: waits for the next compaction
    store(state, True)
    lines = journal_path(path).read_text().splitlines()
    assert [json.loads(line)["job"] for line in lines] == ["a"]
    state.status = "succeeded"
    store(state, True)
    assert load_saved(path).data["jobs"]["b"]["attempts"] == 3


def test_the_state_schema_is_a_valid_json_schema() -> None:
    import jsonschema

    from runner.runresult.read import STATE_SCHEMA
    from runner.schema import load_schema

    jsonschema.Draft202012Validator.check_schema(load_schema(STATE_SCHEMA))


@functools.cache
def _written_run() -> tuple[bytes, bytes, RunState]:
    """A snapshot and a journal of three changes, written once for the examples below."""
    with tempfile.TemporaryDirectory(prefix="journal-") as name:
        folder = Path(name)
        clock = FakeClock()
        state = _one_job_state(folder, clock, ("a", "b", "c"))
        path = folder / "runs" / "r.json"
        store = StateStore(path, select=[], exclude=[], clock=clock, timer=RealTime())
        store(state, True)
        for job, new in (("a", JobState.STARTING), ("b", JobState.SKIPPED), ("a", JobState.FAILED)):
            state.jobs[job].state = new
            state.jobs[job].intent_at = 5.0
            store(state, True)
        return path.read_bytes(), journal_path(path).read_bytes(), state


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(min_value=0, max_value=4000), noise=st.binary(max_size=40))
def test_any_cut_or_noise_in_the_journal_reads_or_is_damaged(
    tmp_path_factory: pytest.TempPathFactory, cut: int, noise: bytes
) -> None:
    """Whatever a crash or a hand did to the journal: a run to resume, or 'damaged' (exit 2)."""
    snapshot, whole, state = _written_run()
    path = tmp_path_factory.mktemp("journal") / "r.json"
    path.write_bytes(snapshot)
    journal = journal_path(path)
    journal.write_bytes(whole[: cut % (len(whole) + 1)] + noise)
    try:
        saved = load_saved(path)
    except UsageError as exc:
        assert str(exc).startswith(f"cannot resume from {journal}: the state file is damaged: ")
    else:
        resume_from(saved, state.plan)
