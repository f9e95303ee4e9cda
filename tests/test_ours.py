"""Which Celonis execution is ours (issue 20), end to end through the CLI against the emulator:
lagging and frozen statuses, Celonis' clock minutes off ours, lost answers, resumes."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e import Journal, Pipeline, emulator_for, job_uuid, pool_uuid
from tests.test_resume import (
    KEY,
    Cli,
    env_for,
    run_against,
    spawn_run,
    wait_for_a_poll_after_execution,
    wait_for_execution,
    wait_until,
)

EXECUTE = "/integration/api/v2/data-pools/*"


def someone_else_executes(base_url: str, job: str, pool: str = "sap") -> None:
    """An execute from outside this runner (a colleague, the UI)."""
    url = f"{base_url}/integration/api/v2/data-pools/{pool_uuid(pool)}/data-jobs/{job_uuid(job)}/execute"
    answer = requests.post(
        url, params={"mode": "FULL"}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    answer.raise_for_status()


def dag(p: Pipeline, **options: Any) -> Pipeline:
    """a -> b -> d, a -> c -> d, in one pool."""
    p.pool("sap")
    p.job("a", "sap", behaviour={"duration": "3m", "last_run": "SUCCESS"}, **options)
    p.job("b", "sap", "a", behaviour={"duration": "2m", "last_run": "SUCCESS"}, **options)
    p.job("c", "sap", "a", behaviour={"duration": "4m", "last_run": "SUCCESS"}, **options)
    p.job("d", "sap", "b", "c", behaviour={"duration": "1m", "last_run": "SUCCESS"}, **options)
    return p


def test_adopt_under_a_stale_status_waits_for_the_real_end(cli: Cli, tmp_path: Path) -> None:
    # Someone else's execution starts; Celonis shows the previous SUCCESS for 15 more minutes
    # (the runner starts within them); our execute gets 409 and adopts: the stale SUCCESS is
    # not that run's end.
    p = Pipeline(tmp_path).pool("sap")
    p.settings["status_lag"] = "15m"
    p.job("load", "sap", behaviour={"duration": "60m", "last_run": "SUCCESS"}, if_running="adopt")
    p.job("after", "sap", "load", behaviour={"duration": "1m"})
    p.write()
    with emulator_for(p, KEY) as emu:
        someone_else_executes(emu.base_url, "load")
        result = run_against(cli, p, emu.base_url, "--log-format", "json")
        journal = Journal(emu.journal())
    assert result.code == 0, result.err
    assert len(journal.executions("load")) == 1  # theirs; ours was refused and adopted
    journal.assert_order(p.jobs)  # "after" only once that run truly succeeded
    assert "adopted" in result.err


def test_adopt_when_the_view_moves_on_between_the_pool_read_and_the_job_read(
    cli: Cli, tmp_path: Path
) -> None:
    # The flake of the test above, made certain: the pool's logs/status (read before the batch
    # of executes) still shows the previous run, SUCCESS; someone else executes; the job's own
    # answer (held back 0.5 s real = 1500 virtual s) shows that run RUNNING. The previous run's
    # start is no moment the busy run was going: its SUCCESS is not the adopted run's end.
    p = Pipeline(tmp_path).pool("sap")
    p.settings["status_lag"] = "1m"
    job_path = f"/integration/api/pools/{pool_uuid('sap')}/jobs/{job_uuid('load')}"
    p.settings["faults"] = [
        {"method": "GET", "path": job_path, "action": "delay", "delay": 0.5, "times": 1}
    ]
    p.job("load", "sap", behaviour={"duration": "60m", "last_run": "SUCCESS"}, if_running="adopt")
    p.job("after", "sap", "load", behaviour={"duration": "1m"})
    p.write()
    with emulator_for(p, KEY) as emu:

        def after_the_pool_read() -> None:  # while the job's answer is held back
            while not Journal(emu.journal()).requests("GET", "/logs/status"):
                time.sleep(0.002)
            someone_else_executes(emu.base_url, "load")

        other = threading.Thread(target=after_the_pool_read)
        other.start()
        result = run_against(cli, p, emu.base_url, "--log-format", "json")
        other.join()
        journal = Journal(emu.journal())
    theirs = journal.executions("load")[0]["t"]
    pool_read = journal.requests("GET", "/logs/status")[0]["t"]
    job_read = journal.requests("GET", job_path)[0]["t"]
    assert pool_read < theirs <= job_read - 60  # the two reads straddle the view's change
    assert result.code == 0, result.err
    assert len(journal.executions("load")) == 1  # theirs, adopted: no POST of ours started one
    journal.assert_order(p.jobs)  # "after" only once that run truly succeeded
    assert "adopted" in result.err


@pytest.mark.parametrize("offset", ["0s", "2m", "-2m", "5m", "-5m"])
def test_a_pipeline_run_again_at_once_under_lag_and_a_clock_off_runs_in_order(
    cli: Cli, tmp_path: Path, offset: str
) -> None:
    # Statuses and history lag 90 s; Celonis' clock is `offset` off ours; the pipeline runs
    # twice in a row. Every job runs once per run, each after its dependencies' own SUCCESS.
    p = dag(Pipeline(tmp_path))
    p.settings.update(status_lag="90s", clock_offset=offset)
    p.write()
    with emulator_for(p, KEY) as emu:
        first = run_against(cli, p, emu.base_url, "--log-format", "json")
        second = run_against(cli, p, emu.base_url, "--log-format", "json")
        journal = Journal(emu.journal())
    assert first.code == second.code == 0, second.err
    assert {n: len(journal.executions(n)) for n in "abcd"} == dict.fromkeys("abcd", 2)
    for name, spec in p.jobs.items():  # each execute after the deps' latest SUCCESS before it
        for execution in journal.executions(name):
            for dep in spec.get("depends_on", []):
                ends = [
                    t for t, s in journal.statuses(dep) if s == "SUCCESS" and t <= execution["t"]
                ]
                starts = [e["t"] for e in journal.executions(dep) if e["t"] <= execution["t"]]
                assert ends and max(ends) >= max(starts), (name, dep)


@pytest.mark.parametrize("offset", ["0s", "2m", "-5m"])
def test_a_lost_post_ends_unclear_within_its_window_and_a_resume_runs_it_once(
    cli: Cli, tmp_path: Path, offset: str
) -> None:
    # The POST never reaches Celonis (dropped before), and nothing says so: the job ends
    # unclear after its settle window (not its 4 h timeout), not re-sent; --resume reads the
    # history a window later, sees no execution since the send and executes it, once.
    p = Pipeline(tmp_path).pool("sap")
    p.settings["clock_offset"] = offset
    p.settings["faults"] = [
        {"method": "POST", "path": EXECUTE, "action": "drop_before", "times": 1}
    ]
    p.job("only", "sap", behaviour={"duration": "10m"}, timeout="4h", settle_window="3m")
    p.write()
    report = tmp_path / "report.json"
    with emulator_for(p, KEY) as emu:
        first = run_against(cli, p, emu.base_url, "--report", str(report))
        [job] = json.loads(report.read_text())["jobs"]
        assert first.code == 1 and job["status"] == "unclear", first.err
        assert "within 3m" in job["error"] and job["duration_seconds"] is None
        assert len(Journal(emu.journal()).requests("POST", "/execute")) == 1
        second = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        journal = Journal(emu.journal())
    assert second.code == 0, second.err
    assert "job_resent_after_unclear" in second.err
    assert len(journal.executions("only")) == 1


@pytest.mark.parametrize("offset", ["2m", "-2m", "5m", "-5m"])
def test_a_lost_answer_then_a_resume_with_celonis_minutes_off_never_executes_twice(
    cli: Cli, tmp_path: Path, offset: str
) -> None:
    # The execute takes effect, its answer is lost, the history lags 60 s, the API then fails
    # (exit 3, "may be running"). The resume finds that execution on Celonis' clock.
    p = Pipeline(tmp_path).pool("sap")
    p.settings.update(clock_offset=offset, stale_status_for="60s")
    p.settings["faults"] = [
        {"method": "POST", "path": EXECUTE, "action": "drop_after", "times": 1},
        {
            "method": "GET",
            "path": "/integration/api/pools/*",
            "action": "status",
            "status": 503,
            "skip": 2,
            "times": 9,
        },
    ]
    p.job("only", "sap", behaviour={"duration": "10m"}, timeout="1h")
    p.write()
    with emulator_for(p, KEY) as emu:
        first = run_against(cli, p, emu.base_url)
        assert first.code == 3, first.err
        second = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json")
        journal = Journal(emu.journal())
    assert second.code == 0, second.err
    assert len(journal.executions("only")) == 1
    assert len(journal.requests("POST", "/execute")) == 1
    assert "job_resent_after_unclear" not in second.err


def lost_execute(tmp_path: Path, duration: str, timeout: str, **settings: str) -> Pipeline:
    """One job, "only", whose first execute takes effect but whose answer is lost."""
    p = Pipeline(tmp_path).pool("sap")
    p.settings.update(time_scale=100, **settings)
    p.settings["faults"] = [{"method": "POST", "path": EXECUTE, "action": "drop_after", "times": 1}]
    p.job("only", "sap", behaviour={"duration": duration, "last_run": "SUCCESS"}, timeout=timeout)
    p.write()
    return p


def kill_with_the_execute_out(p: Pipeline, emu: Any) -> dict[str, str]:
    """Run the pipeline in its own process and SIGKILL it once its execute reached Celonis;
    the environment that puts later runner processes on the emulator's virtual time (so a
    `clock_offset` is the only difference between the clocks)."""
    env = {**env_for(p), "CELONIS_RUNNER_TIME_ORIGIN": repr(emu.clock.origin)}
    proc = spawn_run(str(p.folder / "jobs.yaml"), "--base-url", emu.base_url, env=env)
    try:
        wait_for_execution(lambda: Journal(emu.journal()), "only")
    finally:
        proc.kill()
        proc.communicate()
    return env


@pytest.mark.parametrize("offset", ["-2m", "2m", "-5m", "5m"])
def test_a_kill_while_the_execute_is_out_then_a_resume_takes_that_execution_up(
    tmp_path: Path, offset: str, cli: Cli
) -> None:
    # The runner's clock is minutes off Celonis'. Its execute takes effect but the answer is
    # lost, and the runner is SIGKILLed while it settles that. The resume comes after that
    # execution ended: it is ours (began after the intent, on Celonis' clock), never re-sent.
    p = lost_execute(tmp_path, duration="5m", timeout="1h", clock_offset=offset)
    with emulator_for(p, KEY) as emu:
        env = kill_with_the_execute_out(p, emu)
        wait_until(
            lambda: "SUCCESS" in [s for _, s in Journal(emu.journal()).statuses("only")],
            "the execution end",
        )
        resumed = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json", environ=env)
        journal = Journal(emu.journal())
    assert resumed.code == 0, resumed.err
    assert len(journal.requests("POST", "/execute")) == 1
    assert len(journal.executions("only")) == 1


def test_ctrl_c_then_resume_at_once_runs_the_cancelled_job_again(cli: Cli, tmp_path: Path) -> None:
    # The README's journey: Ctrl-C while a job runs (the runner cancels it; Celonis shows the
    # CANCEL only 10 min later, after the grace), then --resume at once. The resumed run does
    # not take that CANCEL for its job's end: the job runs again, then its dependent.
    p = Pipeline(tmp_path).pool("sap")
    p.settings.update(time_scale=600, status_lag="10m")
    p.job("load", "sap", behaviour={"duration": "30m", "last_run": "SUCCESS"})
    p.job("after", "sap", "load", behaviour={"duration": "1m"})
    manifest, _ = p.write()
    with emulator_for(p, KEY) as emu:
        env = {**env_for(p), "CELONIS_RUNNER_TIME_ORIGIN": repr(emu.clock.origin)}
        proc = spawn_run(str(manifest), "--base-url", emu.base_url, "--grace", "60", env=env)
        try:
            # the runner has read the execute's answer once it polls the pool's status
            wait_for_a_poll_after_execution(lambda: Journal(emu.journal()), "load")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 130, err[-2000:]
        assert Journal(emu.journal()).requests("POST", "/cancel")
        resumed = run_against(cli, p, emu.base_url, "--resume", "--log-format", "json", environ=env)
        journal = Journal(emu.journal())
    assert resumed.code == 0, resumed.err
    assert "job_cancelled_by_earlier_stop" in resumed.err
    assert len(journal.executions("load")) == 2 and len(journal.executions("after")) == 1
    journal.assert_order(p.jobs)  # "after" only after the second run's own SUCCESS


def test_a_resume_of_a_resume_keeps_the_intent_and_executes_once(cli: Cli, tmp_path: Path) -> None:
    # Run 1 is killed while its execute's answer is lost; resume 1 is killed while it settles
    # that; resume 2 reads a state that resume 1 wrote: valid, the same intent, one execution.
    # the history lags 2 min: less than the settle window (5 min), as it must for a resume to
    # tell "no execution" from "not shown yet" (a longer lag is caught by the 409 to a re-send)
    p = lost_execute(tmp_path, duration="20m", timeout="2h", stale_status_for="2m")
    with emulator_for(p, KEY) as emu:
        env = kill_with_the_execute_out(p, emu)
        args = [str(p.folder / "jobs.yaml"), "--base-url", emu.base_url]
        again = spawn_run(*args, "--resume", env=env)
        wait_until(
            lambda: len(Journal(emu.journal()).requests("GET", "/executions")) >= 2,
            "resume 1 settling",
        )
        again.kill()
        again.communicate()
        resumed = cli("run", *args, "--resume", "--log-format", "json", environ=env)
        journal = Journal(emu.journal())
    assert resumed.code == 0, resumed.err
    assert "damaged" not in resumed.err
    assert len(journal.requests("POST", "/execute")) == 1 and len(journal.executions("only")) == 1


def test_a_full_disk_mid_run_exits_3_with_what_ran_watched_and_the_report_written(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 25 #8: the state directory fills up while "load" runs: nothing more starts, "load"
    # is watched to its end, the report is written elsewhere, exit 3 says why.
    import errno

    from runner.execution import statefile

    p = Pipeline(tmp_path).pool("sap")
    p.job("load", "sap", behaviour={"duration": "10m"})
    p.job("after", "sap", "load", behaviour={"duration": "1m"})
    p.write()
    real = statefile.StateStore.__call__
    calls: list[int] = []

    def filling(self: statefile.StateStore, state: Any, force: bool) -> float | None:
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs/x.json"))
        return real(self, state, force)

    monkeypatch.setattr(statefile.StateStore, "__call__", filling)
    report = tmp_path / "report.json"
    with emulator_for(p, KEY) as emu:
        result = run_against(cli, p, emu.base_url, "--report", str(report))
        journal = Journal(emu.journal())
    assert result.code == 3, result.err
    data = json.loads(report.read_text())
    assert data["status"] == "state_error"
    assert "No space left on device" in data["error"] and "1 jobs not started" in data["error"]
    assert [j["status"] for j in data["jobs"]] == ["succeeded", "not_started"]
    assert len(journal.executions("load")) == 1 and not journal.executions("after")
    assert "Traceback" not in result.err
