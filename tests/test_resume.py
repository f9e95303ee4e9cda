"""Resume and interruption, end to end: the runner stops (API outage, SIGKILL, SIGTERM) and a resume completes
the run without ever triggering a job twice or before its inputs succeeded."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.errors import UsageError
from runner.runresult.read import load_saved
from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline, emulator_for

Cli = Callable[..., CliResult]
KEY = "test-key-0123456789"


def env_for(pipeline: Pipeline) -> dict[str, str]:
    return {
        "CELONIS_API_KEY": KEY,
        "CELONIS_RUNNER_TIME_SCALE": str(pipeline.settings.get("time_scale", 3000)),
        "CELONIS_RUNNER_STATE_DIR": str(pipeline.folder / "runs"),
    }


def executions_by_name(entries: list[dict], names: list[str]) -> dict[str, int]:
    journal = Journal(entries)
    return {name: len(journal.executions(name)) for name in names}


def outage(skip: int) -> dict[str, object]:
    """After `skip` reads, every read fails for longer than the retry budget (9 x 503)."""
    return {
        "method": "GET",
        "path": "/integration/api/pools/*",
        "action": "status",
        "status": 503,
        "skip": skip,
        "times": 9,
    }


def run_against(
    cli: Cli, p: Pipeline, base_url: str, *extra: str, environ: dict[str, str] | None = None
) -> CliResult:
    """`run` of the pipeline's manifest against an emulator that outlives the run (in
    `environ`, else the pipeline's own environment)."""
    env = environ if environ is not None else env_for(p)
    return cli("run", str(p.folder / "jobs.yaml"), "--base-url", base_url, *extra, environ=env)


def spawn_run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`celonis-runner run ARGS` in its own process, so that it can be signalled or killed."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
    )


def spawn_with_emulator(p: Pipeline, *extra: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """`run --emulator` on the pipeline in its own process; (process, journal file, report file)."""
    manifest, scenario = p.write()
    journal_path, report = p.folder / "journal.jsonl", p.folder / "report.json"
    proc = spawn_run(
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--emulator-journal",
        str(journal_path),
        "--report",
        str(report),
        "--log-format",
        "json",
        "--state-dir",
        str(p.folder / "runs"),
        *extra,
    )
    return proc, journal_path, report


def wait_for_execution(read: Callable[[], Journal], name: str) -> None:
    """Until the emulator has started `name` (real time, at most 30 s)."""
    wait_until(lambda: read().executions(name), f"{name} start")


def wait_for_a_poll_after_execution(read: Callable[[], Journal], name: str) -> None:
    """Until the runner read the pool's status after `name` started: it holds the execute's
    answer then (real time, at most 30 s)."""
    wait_for_execution(read, name)

    def polled() -> bool:
        journal = read()
        started = journal.executions(name)[0]["t"]
        return any(r["t"] > started for r in journal.requests("GET", "/logs/status"))

    wait_until(polled, f"a poll after {name} started")


def wait_for_state(runs: Path, shows: Callable[[dict[str, Any]], bool]) -> None:
    """Until the live run's state file (snapshot and journal) `shows` something (real time, at
    most 30 s); a file caught mid-write is read again."""

    def shown() -> bool:
        for path in runs.glob("*.json") if runs.exists() else []:
            try:
                if shows(load_saved(path).data):
                    return True
            except UsageError:
                pass
        return False

    wait_until(shown, f"the state file in {runs} show it")


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Until `condition()` is true (real time, at most 30 s)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def journal_file(path: Path) -> Callable[[], Journal]:
    return lambda: Journal.read(path) if path.exists() else Journal([])


def test_api_outage_exits_3_and_resume_completes(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("first", "sap", behaviour={"duration": "20m"})
    p.job("second", "sap", "first")
    # after the start and a few polls, every status read fails for longer than the retry budget
    p.settings["faults"] = [outage(skip=6)]
    p.write()
    with emulator_for(p, KEY) as emu:
        report = tmp_path / "report.json"
        first = run_against(cli, p, emu.base_url, "--report", str(report))
        assert first.code == 3, first.err
        data = json.loads(report.read_text())
        assert data["status"] == "api_error"
        assert {j["name"]: j["status"] for j in data["jobs"]} == {
            "first": "running",
            "second": "not_started",
        }
        assert "--resume" in first.out

        second = run_against(
            cli, p, emu.base_url, "--resume", "--report", str(report), "--log-format", "json"
        )
        assert second.code == 0, second.err
        data = json.loads(report.read_text())
        assert {j["name"]: j["status"] for j in data["jobs"]} == {
            "first": "succeeded",
            "second": "succeeded",
        }
        journal = Journal(emu.journal())
        assert executions_by_name(journal.entries, ["first", "second"]) == {"first": 1, "second": 1}
        journal.assert_order(p.jobs)
        assert '"taken up from the earlier run; not triggered again"' in second.err


def test_killed_runner_resumes_without_retriggering(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.settings["time_scale"] = 600
    p.job("a", "sap", behaviour={"duration": "3m"})
    p.job("b", "sap", "a", behaviour={"duration": "30m"})
    p.job("c", "crm", behaviour={"duration": "40m"})
    p.job("d", "crm", "b", "c", behaviour={"duration": "2m"})
    manifest, _ = p.write()
    with emulator_for(p, KEY) as emu:
        proc = spawn_run(
            str(manifest), "--base-url", emu.base_url, "--log-format", "json", env=env_for(p)
        )
        try:
            wait_for_state(p.folder / "runs", lambda data: bool(data["jobs"]["b"].get("handle")))
        finally:
            proc.kill()
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL

        resumed = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        assert resumed.code == 0, resumed.err
        journal = Journal(emu.journal())
        assert executions_by_name(journal.entries, list(p.jobs)) == {"a": 1, "b": 1, "c": 1, "d": 1}
        journal.assert_order(p.jobs)
        taken_up = {
            json.loads(line)["job"]
            for line in resumed.err.splitlines()
            if "taken up from the earlier run" in line
        }
        assert taken_up >= {"b", "c"}


def test_sigterm_cancels_running_jobs_and_exits_143(tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    p.job("long", "sap", behaviour={"duration": "2h"})
    p.job("after", "sap", "long")
    # the grace bounds the wait for Celonis to confirm the cancel (60 s is 100 ms real at 600x)
    proc, journal_path, report = spawn_with_emulator(p, "--grace", "1200")
    wait_for_a_poll_after_execution(journal_file(journal_path), "long")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    data = json.loads(report.read_text())
    assert data["status"] == "interrupted"
    assert {j["name"]: j["status"] for j in data["jobs"]} == {
        "long": "cancelled",
        "after": "not_started",
    }
    assert len(Journal.read(journal_path).requests("POST", "/cancel")) == 1
    assert "Traceback" not in err


def test_resume_refuses_a_changed_manifest(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap", behaviour={"outcome": "FAIL"})
    manifest, scenario = p.write()
    first = cli(
        "run", str(manifest), "--emulator", "--scenario", str(scenario), "--log-format", "json"
    )
    assert first.code == 1
    manifest.write_text(
        manifest.read_text().replace("poll_interval: 10s", "poll_interval: 10s\n  mode: FULL")
    )
    refused = cli("run", str(manifest), "--emulator", "--resume", "--log-format", "json")
    assert refused.code == 2
    assert "job 'only': mode changed from 'DELTA' to 'FULL'" in refused.err
    forced = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--resume",
        "--force",
        "--log-format",
        "json",
    )
    assert forced.code == 1  # resumed, not refused: the job ran again (and failed again)
    assert '"event": "job_running"' in forced.err


def test_resume_runs_only_what_did_not_succeed(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("good", "sap")
    p.job("bad", "sap", behaviour={"outcomes": ["FAIL", "SUCCESS"]})
    p.job("after", "sap", "bad")
    p.write()
    with emulator_for(p, KEY) as emu:
        first = run_against(cli, p, emu.base_url)
        assert first.code == 1
        report = tmp_path / "report.json"
        second = run_against(cli, p, emu.base_url, "--resume", "--report", str(report))
        assert second.code == 0, second.err
        counts = executions_by_name(emu.journal(), ["good", "bad", "after"])
        assert counts == {"good": 1, "bad": 2, "after": 1}
        good = next(job for job in json.loads(report.read_text())["jobs"] if job["name"] == "good")
        assert good["status"] == "succeeded" and good["error"] is None
        assert good["started_at"] and good["finished_at"]  # from the earlier run


def test_corrupt_state_file_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "20260101T000000Z-abcdef.json").write_text('{"state_version": 1, "run_id": "x", "jo')
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, _ = p.write()
    result = cli("run", str(manifest), "--emulator", "--resume")
    assert result.code == 2
    assert result.err.startswith("celonis-runner: error: cannot resume from ")
    assert "not valid JSON at line 1" in result.err and "Traceback" not in result.err


def test_resume_without_earlier_run(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, _ = p.write()
    result = cli("run", str(manifest), "--emulator", "--resume")
    assert result.code == 2 and "no earlier run to resume" in result.err


@pytest.mark.parametrize("drop", ["drop_after", "drop_before"])
def test_unclear_execute_then_outage_never_runs_the_job_twice_on_resume(
    cli: Cli, tmp_path: Path, drop: str
) -> None:
    """The execute's answer is lost (after the job started, or before anything happened) and the
    API fails before the runner can tell: the run ends (exit 3) with the job "may be running".
    The resume settles it from the history: a run that shows up is taken up; when none shows a
    full settle window after the send, it is executed again, once (issue 20 #9)."""
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap", behaviour={"duration": "10m"}, timeout="30m")
    p.settings["faults"] = [
        {
            "method": "POST",
            "path": "/integration/api/v2/data-pools/*",
            "action": drop,
            "times": 1,
        },
        outage(skip=2),
    ]
    p.write()
    with emulator_for(p, KEY) as emu:
        report = tmp_path / "report.json"
        first = run_against(cli, p, emu.base_url, "--report", str(report))
        assert first.code == 3, first.err
        [job] = json.loads(report.read_text())["jobs"]
        assert job["status"] in ("running", "unclear"), job
        assert job["error"].startswith(("may be running in Celonis", "unclear")), job
        second = run_against(cli, p, emu.base_url, "--resume", "--report", str(report))
        journal = Journal(emu.journal())
    assert second.code == 0, second.err
    assert executions_by_name(journal.entries, ["only"]) == {"only": 1}
    resent = "job_resent_after_unclear" in second.err
    assert resent is (drop == "drop_before")  # only when no execution ever showed
    assert len(journal.requests("POST", "/execute")) == (2 if resent else 1)


def test_no_cancel_leaves_remote_jobs_running(tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    p.job("long", "sap", behaviour={"duration": "2h"})
    proc, journal_path, report = spawn_with_emulator(p, "--no-cancel")
    wait_for_a_poll_after_execution(journal_file(journal_path), "long")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert json.loads(report.read_text())["jobs"][0]["status"] == "running"
    assert Journal.read(journal_path).requests("POST", "/cancel") == []
    assert "May still be running in Celonis: long (run --resume takes them up)" in out
    saved = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert saved["jobs"]["long"]["state"] == "running" and saved["jobs"]["long"]["handle"]


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    p.job("long", "sap", behaviour={"duration": "2h"})
    # after the execute's own reads, every status read hangs for 8 real seconds
    p.settings["faults"] = [
        {
            "method": "GET",
            "path": "/integration/api/pools/*/logs/status",
            "skip": 1,
            "action": "delay",
            "delay": "8s",
        }
    ]
    manifest, _ = p.write()
    report = tmp_path / "report.json"
    with emulator_for(p, KEY) as emu:  # outside the runner: its hanging answers are not cut short
        # a grace of 30 min at x600 is 3 real seconds: the second signal comes within it
        proc = spawn_run(
            str(manifest),
            "--base-url",
            emu.base_url,
            "--report",
            str(report),
            "--grace",
            "1800",
            env=env_for(p),
        )
        wait_for_execution(lambda: Journal(emu.journal()), "long")
        wait_until(lambda: emu.fault_hits() == [1], "a status read to hang")
        proc.send_signal(signal.SIGINT)
        # the first signal is handled (it cancels) before the second is sent: two signals
        # pending at once would be one
        wait_until(lambda: Journal(emu.journal()).requests("POST", "/cancel"), "a cancel")
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 3, "did not exit at once"
    assert proc.returncode == 130, err
    assert json.loads(report.read_text())["status"] == "interrupted"
    assert "May still be running in Celonis: long" in out


KILLED_WRITER = """
import os
import shlex
import signal
import sys
from pathlib import Path

from runner.execution.executor import Executor
from runner.execution.statefile import StateStore
from runner.execution.statejournal import JournalFile
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from tests.emulator_fixtures import FakeClock

plan = build_plan(load_manifest(Path(sys.argv[1]), {}))
state = Executor(plan, api=None, clock=FakeClock(), run_id="r").state
store = StateStore(Path(sys.argv[2]), select=[], exclude=[], clock=FakeClock(), timer=lambda: 0.0)
moment = sys.argv[3]
store(state, True)
names = list(state.jobs)
write = os.write


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def torn(fd, data):
    write(fd, bytes(data[: len(data) // 2]))
    die()


for k in range(1, 10**6):
    state.jobs[names[k % len(names)]].attempts = k
    if k == 45 and moment == "torn journal line":
        os.write = torn
    store(state, True)  # forced: synced before it returns, as before an execute
    print("acked", k, flush=True)
    if k % 20 == 0:
        if k == 40 and moment == "snapshot written, not renamed":
            os.replace = die
        if k == 40 and moment == "snapshot renamed, journal not emptied":
            JournalFile.reset = die
        store._compact(state)
"""


@pytest.mark.parametrize(
    "moment",
    [
        "snapshot written, not renamed",
        "snapshot renamed, journal not emptied",
        "torn journal line",
    ],
)
def test_sigkill_during_compaction_leaves_a_state_that_resumes(tmp_path: Path, moment: str) -> None:
    """SIGKILLed at each moment of a compaction (and while appending a journal line): the saved
    state holds every write that was acknowledged (forced), reads without damage, and a resumed
    store carries on from it."""
    from runner.execution.executor import Executor
    from runner.execution.statefile import StateStore, load_saved, resume_from
    from runner.manifest.loader import load_manifest
    from runner.plan.build import build_plan
    from tests.emulator_fixtures import FakeClock

    p = Pipeline(tmp_path).pool("sap")
    names = [f"j{i}" for i in range(300)]
    for name in names:
        p.job(name, "sap")
    manifest, _ = p.write()
    path = tmp_path / "runs" / "r.json"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(manifest), str(path), moment],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acked = int(proc.stdout.splitlines()[-1].split()[1])
    assert acked in (40, 44)  # killed in the second compaction, or in the 45th append
    saved = load_saved(path)
    jobs = saved.data["jobs"]
    assert all(jobs[names[k % len(names)]]["attempts"] == k for k in range(1, acked + 1))
    assert jobs[names[45]]["attempts"] == 0  # the torn line (or nothing) was not taken
    plan = build_plan(load_manifest(manifest, {}))
    assert resume_from(saved, plan).succeeded == frozenset()
    # a resumed run writes its own snapshot over what the killed one left, and reads back whole
    resumed = StateStore(path, select=[], exclude=[], clock=FakeClock())
    state = Executor(plan, api=None, clock=FakeClock(), run_id="r").state  # type: ignore[arg-type]
    state.jobs["j1"].attempts = 7
    resumed(state, True)
    state.jobs["j2"].attempts = 9
    resumed(state, True)
    again = load_saved(path).data["jobs"]
    assert (again["j1"]["attempts"], again["j2"]["attempts"]) == (7, 9)


def test_a_second_run_of_the_same_manifest_is_refused_while_the_first_runs(
    cli: Cli, tmp_path: Path
) -> None:
    """Two processes: the second `run` (and `--resume`) exits 2 naming the first; once the first
    is SIGKILLed, the OS has released its lock and a resume goes ahead."""
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    p.job("long", "sap", behaviour={"duration": "1h"})
    p.job("after", "sap", "long")
    manifest, _ = p.write()
    with emulator_for(p, KEY) as emu:
        first = spawn_run(
            str(manifest), "--base-url", emu.base_url, "--log-format", "json", env=env_for(p)
        )
        try:
            wait_for_execution(lambda: Journal(emu.journal()), "long")
            for extra in ((), ("--resume",)):
                second = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "runner",
                        "run",
                        str(manifest),
                        "--base-url",
                        emu.base_url,
                        *extra,
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ, **env_for(p)},
                    timeout=60,
                )
                assert second.returncode == 2, second.stderr
                assert f"another run of {manifest} with the state in {tmp_path / 'runs'}" in (
                    second.stderr
                )
                assert f"(process {first.pid} on " in second.stderr
        finally:
            first.kill()
            first.communicate()
        resumed = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        assert resumed.code == 0, resumed.err
        assert executions_by_name(emu.journal(), ["long", "after"]) == {"long": 1, "after": 1}


def test_resume_against_another_target_is_refused_unless_forced(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap", behaviour={"outcomes": ["FAIL", "SUCCESS"]})
    p.write()
    with emulator_for(p, KEY) as first, emulator_for(p, KEY) as other:
        assert run_against(cli, p, first.base_url).code == 1
        refused = run_against(cli, p, other.base_url, "--resume")
        assert refused.code == 2
        assert (
            f"went to {first.base_url}, not {other.base_url}: a resume must talk to the same"
            in (refused.err)
        )
        assert other.journal() == [] or not Journal(other.journal()).executions("only")
        forced = run_against(cli, p, other.base_url, "--resume", "--force")
        assert forced.code == 1, forced.err  # resumed: "only" ran (and failed) on the other one


def test_resume_with_the_embedded_emulator_says_why_not_and_what_to_do(
    cli: Cli, tmp_path: Path
) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap", behaviour={"outcome": "FAIL"})
    manifest, scenario = p.write()
    common = ("--emulator", "--scenario", str(scenario), "--state-dir", str(tmp_path / "runs"))
    assert cli("run", str(manifest), *common).code == 1
    refused = cli("run", str(manifest), *common, "--resume")
    assert refused.code == 2
    assert "run --resume cannot use --emulator: the embedded emulator forgets everything" in (
        refused.err
    )
    assert "`celonis-runner emulator --manifest jobs.yaml --port 8491`" in refused.err
    assert "resume with the same --base-url" in refused.err


def test_the_resume_hint_works_as_printed(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("flaky", "sap", behaviour={"outcomes": ["FAIL", "SUCCESS"]})
    manifest, _ = p.write()
    runs = tmp_path / "state dir"  # a space: the hint quotes it
    env = {k: v for k, v in env_for(p).items() if k != "CELONIS_RUNNER_STATE_DIR"}
    with emulator_for(p, KEY) as emu:
        first = cli(
            "run", str(manifest), "--base-url", emu.base_url, "--state-dir", str(runs), environ=env
        )
        assert first.code == 1
        [hint] = [line for line in first.out.splitlines() if "; resume with: " in line]
        command = shlex.split(hint.split("; resume with: ", 1)[1])
        assert command[:3] == ["celonis-runner", "run", str(manifest)]
        assert "--state-dir" in command and "--base-url" in command
        again = cli(*command[1:], environ=env)
        assert again.code == 0, again.err
        assert executions_by_name(emu.journal(), ["flaky"]) == {"flaky": 2}


def test_a_state_directory_that_cannot_be_written_is_a_clear_error(
    cli: Cli, tmp_path: Path
) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, _ = p.write()
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    result = cli("run", str(manifest), "--emulator", "--state-dir", str(blocked / "runs"))
    assert result.code == 2
    assert result.err == (
        f"celonis-runner: error: cannot save run state in {blocked / 'runs'}: Not a directory;"
        " choose a folder you can write with --state-dir or $CELONIS_RUNNER_STATE_DIR\n"
    )


def test_a_resume_right_after_a_kill_settles_a_stale_unclear_execute_and_runs_the_job_once(
    cli: Cli, tmp_path: Path
) -> None:
    """Issue 16 #1: the execute is delayed 2 s (it takes effect), the runner is SIGKILLed while
    it waits for the answer, and the resume starts while Celonis still shows the previous run
    (status and history stale for 30 s). The resume must keep settling until the status shows
    the run, take it up, and never send the execute again."""
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 10  # the 30 s stale window lasts 3 s of real time
    p.settings["stale_status_for"] = "30s"
    p.job("only", "sap", behaviour={"duration": "20s", "last_run": "SUCCESS"}, timeout="30m")
    p.settings["faults"] = [
        {
            "method": "POST",
            "path": "/integration/api/v2/data-pools/*",
            "action": "delay",
            "delay": "2s",
            "times": 1,
        }
    ]
    manifest, _ = p.write()
    with emulator_for(p, KEY) as emu:
        proc = spawn_run(
            str(manifest), "--base-url", emu.base_url, "--log-format", "json", env=env_for(p)
        )
        try:
            deadline = time.monotonic() + 30
            while not Journal(emu.journal()).requests("GET", "/logs/status"):
                assert time.monotonic() < deadline, "the runner never read the pool"
                time.sleep(0.02)
            time.sleep(0.5)  # the execute is out, its answer 1.5 s away
        finally:
            proc.kill()
            proc.communicate()
        wait_for_execution(lambda: Journal(emu.journal()), "only")  # it took effect
        resumed = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        journal = Journal(emu.journal())
    assert resumed.code == 0, resumed.err
    assert len(journal.requests("POST", "/execute")) == 1
    assert executions_by_name(journal.entries, ["only"]) == {"only": 1}
    assert "job_resume_not_started" not in resumed.err


def wait_for_state_file(runs: Path) -> Path:
    """The live run's state file, once it has written one (real time, at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = sorted(runs.glob("*.json"))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no state file appeared in {runs}")


RUNNER = (sys.executable, "-m", "runner")


@pytest.mark.parametrize("other_path", ["hard link", "copy"])
def test_a_live_run_cannot_be_resumed_through_another_manifest_path(
    cli: Cli, tmp_path: Path, other_path: str
) -> None:
    """Issue 20 #8, two processes: while a run lives, `run checkout2.yaml --resume RUN_ID` (a
    hard link or a copy of its manifest, the same state directory) exits 2 naming the holder and
    executes nothing; once the holder is SIGKILLed, the OS has released its lock and the resume
    through the other path goes ahead, each job executed once."""
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    p.job("long", "sap", behaviour={"duration": "1h"})
    p.job("after", "sap", "long")
    manifest, _ = p.write()
    checkout2 = tmp_path / "checkout2.yaml"
    if other_path == "hard link":
        os.link(manifest, checkout2)
    else:
        checkout2.write_bytes(manifest.read_bytes())
    with emulator_for(p, KEY) as emu:
        first = spawn_run(
            str(manifest), "--base-url", emu.base_url, "--log-format", "json", env=env_for(p)
        )
        try:
            wait_for_execution(lambda: Journal(emu.journal()), "long")
            run_id = wait_for_state_file(tmp_path / "runs").stem
            for resume in (("--resume", run_id), ("--resume",)):
                second = subprocess.run(
                    [*RUNNER, "run", str(checkout2), "--base-url", emu.base_url, *resume],
                    capture_output=True,
                    text=True,
                    env={**os.environ, **env_for(p)},
                    timeout=60,
                )
                assert second.returncode == 2, second.stderr
                assert f"run {run_id} (state in {tmp_path / 'runs'}) is going on in process " in (
                    second.stderr
                )
                assert f"process {first.pid} on " in second.stderr and ", started " in second.stderr
                assert "Traceback" not in second.stderr
            assert executions_by_name(emu.journal(), ["long", "after"]) == {"long": 1, "after": 0}
        finally:
            first.kill()
            first.communicate()
        resumed = cli(
            "run", str(checkout2), "--base-url", emu.base_url, "--resume", run_id,
            environ=env_for(p),
        )  # fmt: skip
        assert resumed.code == 0, resumed.err
        assert executions_by_name(emu.journal(), ["long", "after"]) == {"long": 1, "after": 1}


def test_a_resume_is_refused_while_another_process_holds_the_run(cli: Cli, tmp_path: Path) -> None:
    """The run's own lock, held here with the module's function as the live process would: a
    resume through any manifest path is refused before it reads the state; once released, the
    same resume goes ahead."""
    from runner.execution.runlock import run_id_lock

    p = Pipeline(tmp_path).pool("sap")
    p.job("flaky", "sap", behaviour={"outcomes": ["FAIL", "SUCCESS"]})
    manifest, _ = p.write()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = elsewhere / "jobs.yaml"
    other.write_bytes(manifest.read_bytes())
    runs = tmp_path / "runs"
    with emulator_for(p, KEY) as emu:
        assert run_against(cli, p, emu.base_url).code == 1
        [state] = runs.glob("*.json")
        with run_id_lock(runs, state.stem):
            refused = cli("run", str(other), "--base-url", emu.base_url, "--resume",
                          environ=env_for(p))  # fmt: skip
            assert refused.code == 2
            assert f"run {state.stem} (state in {runs}) is going on in process {os.getpid()}" in (
                refused.err
            )
            assert executions_by_name(emu.journal(), ["flaky"]) == {"flaky": 1}
        again = cli("run", str(other), "--base-url", emu.base_url, "--resume", environ=env_for(p))
        assert again.code == 0, again.err
        assert executions_by_name(emu.journal(), ["flaky"]) == {"flaky": 2}


E1, E2, T1 = (
    "1e5a0c1e-0000-4000-8000-0000000000e1",
    "1e5a0c1e-0000-4000-8000-0000000000e2",
    "1e5a0c1e-0000-4000-8000-0000000000f1",
)


def ran_task(execution: dict[str, object], task_id: str) -> bool:
    """Whether an execution ran the task: a whole job runs them all, a subset those it names."""
    subset = execution.get("subset")
    return subset is None or task_id in subset["tasks"]  # type: ignore[index,operator]


def test_an_interrupted_task_level_resume_carries_the_unfinished_tasks_forward(
    cli: Cli, tmp_path: Path
) -> None:
    """Issue 20 #7, three runs: run 1 fails in E2; resume 1 runs [E2, T1] and is stopped
    (SIGTERM, its execution cancelled); resume 2 must run [E2, T1] again, not the whole job:
    E1, which succeeded in run 1, extracts once."""
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 600
    job_tasks = [
        {"id": E1, "name": "E1", "type": "extraction", "tables": ["VBAK"], "duration": "1m"},
        {"id": E2, "name": "E2", "type": "extraction", "tables": ["KNA1"], "duration": "30m"}
        | {"outcomes": ["FAIL", "SUCCESS"]},
        {"id": T1, "name": "T1", "type": "transformation", "duration": "1m"},
    ]
    p.job("refresh", "sap", behaviour={"tasks": job_tasks})
    del p.behaviour["refresh"]["duration"]  # with tasks, durations are per task
    manifest, _ = p.write()
    with emulator_for(p, KEY) as emu:
        assert run_against(cli, p, emu.base_url).code == 1  # E2 failed
        resume1 = spawn_run(
            str(manifest), "--base-url", emu.base_url, "--resume", "--grace", "1200",
            "--log-format", "json", env=env_for(p),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while len(Journal(emu.journal()).executions("refresh")) < 2:
                assert time.monotonic() < deadline, "resume 1 never executed the job"
                time.sleep(0.02)
            resume1.send_signal(signal.SIGTERM)
            _, err = resume1.communicate(timeout=60)
        finally:
            resume1.kill()
        assert resume1.returncode == 143, err
        resume2 = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        assert resume2.code == 0, resume2.err
        executions = Journal(emu.journal()).executions("refresh")
    assert len(executions) == 3
    assert [e["subset"]["tasks"] for e in executions[1:]] == [[E2, T1], [E2, T1]]
    assert [ran_task(e, E1) for e in executions] == [True, False, False]  # E1 extracted once
