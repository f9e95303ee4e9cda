"""End-to-end: the real CLI runs pipelines against the real emulator over loopback, with scaled time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from runner.schema import REPORT_SCHEMA, load_schema
from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline, emulator_for, run_pipeline

ROOT = Path(__file__).parent.parent
Cli = Callable[..., CliResult]


def run(cli: Cli, pipeline: Pipeline, *extra: str) -> tuple[CliResult, Journal, dict]:
    return run_pipeline(cli, pipeline, *extra)


def statuses(report: dict) -> dict[str, str]:
    return {job["name"]: job["status"] for job in report["jobs"]}


def diamond(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap", max_parallel=2).pool("crm")
    p.job("extract_a", "sap", behaviour={"duration": "10m"})
    p.job("extract_b", "sap", behaviour={"duration": "4m"})
    p.job("extract_c", "sap", behaviour={"duration": "6m"})
    p.job("extract_crm", "crm", behaviour={"duration": "3m"})
    p.job("transform", "sap", "extract_a", "extract_b")
    p.job("crm_model", "crm", "extract_crm")
    p.job("load", "crm", "transform", "crm_model", "extract_c")
    return p


def test_runs_in_dependency_order_within_limits(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    result, journal, report = run(cli, pipeline)
    assert result.code == 0, result.err
    assert set(statuses(report).values()) == {"succeeded"}
    journal.assert_order(pipeline.jobs)
    for name in pipeline.jobs:
        assert len(journal.executions(name)) == 1, name
    sap = [n for n, j in pipeline.jobs.items() if j["pool"] == "sap"]
    assert journal.max_concurrent(sap) == 2  # the limit, and used
    assert journal.max_concurrent(pipeline.jobs) >= 3  # pools run side by side


def test_failure_skips_dependents_and_other_branches_finish(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    pipeline.behaviour["extract_a"].update(
        outcome="FAIL", message="Table VBAK: source system timed out"
    )
    result, journal, report = run(cli, pipeline)
    assert result.code == 1
    got = statuses(report)
    assert got["extract_a"] == "failed"
    assert got["transform"] == "skipped" and got["load"] == "skipped"
    assert got["crm_model"] == "succeeded" and got["extract_c"] == "succeeded"
    errors = {job["name"]: job["error"] for job in report["jobs"]}
    assert errors["extract_a"].startswith("FAIL: ")
    assert errors["extract_a"].endswith("Table VBAK: source system timed out")
    assert errors["transform"] == "skipped: extract_a failed"
    assert journal.executions("transform") == [] and journal.executions("load") == []
    assert "Table VBAK: source system timed out" in result.out  # the summary shows Celonis' reason


def test_allow_failure_lets_dependents_run(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    pipeline.jobs["crm_model"]["allow_failure"] = True
    pipeline.behaviour["crm_model"].update(outcome="FAIL", message="bad data")
    result, _journal, report = run(cli, pipeline)
    assert result.code == 0
    assert statuses(report)["crm_model"] == "failed"
    assert statuses(report)["load"] == "succeeded"
    assert report["status"] == "succeeded"


def test_fail_fast_cancels_running_and_starts_nothing_new(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    pipeline.behaviour["extract_crm"].update(outcome="FAIL", duration="1m")
    # the grace bounds the wait for Celonis to confirm the cancel: 60 s is 20 ms real at 3000x
    result, journal, report = run(cli, pipeline, "--fail-fast", "--grace", "3600")
    assert result.code == 1
    got = statuses(report)
    assert got["extract_crm"] == "failed"
    assert got["extract_a"] == "cancelled"
    assert journal.requests("POST", "/cancel")
    failed_at = next(t for t, s in journal.statuses("extract_crm") if s == "FAIL")
    later = [e for name in pipeline.jobs for e in journal.executions(name) if e["t"] > failed_at]
    assert later == []
    assert got["load"] in ("skipped", "not_started")


def test_timeout_cancels_the_remote_job(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("slow", "sap", timeout="20m", behaviour={"duration": "3h"})
    p.job("after", "sap", "slow")
    # the grace bounds the wait for Celonis to confirm the cancel: 60 s is 20 ms real at 3000x
    result, journal, report = run(cli, p, "--grace", "3600")
    assert result.code == 1
    assert statuses(report) == {"slow": "timed_out", "after": "skipped"}
    assert [r["path"].rsplit("/", 1)[-1] for r in journal.requests("POST", "/cancel")] == ["cancel"]
    assert [s for _, s in journal.statuses("slow")][-1] == "CANCEL"
    assert report["jobs"][0]["error"] == "timed out after 20m; cancelled in Celonis"


def test_waits_for_a_run_started_elsewhere_then_starts_its_own(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("busy", "sap", behaviour={"running_at_start": "15m", "duration": "5m"})
    result, journal, report = run(cli, p)
    assert result.code == 0
    assert statuses(report) == {"busy": "succeeded"}
    external_end = next(t for t, s in journal.statuses("busy") if s == "SUCCESS")
    [ours] = journal.executions("busy")
    assert ours["t"] >= external_end
    assert '"event": "job_waiting"' in result.err


def test_stale_finished_status_is_not_taken_for_the_end(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.settings["stale_status_for"] = "2m"
    p.job("first", "sap", behaviour={"last_run": "SUCCESS", "duration": "10m"})
    p.job("second", "sap", "first")
    result, journal, _report = run(cli, p)
    assert result.code == 0
    journal.assert_order(p.jobs)
    started = journal.executions("second")[0]["t"]
    assert started >= journal.success_time("first")


def test_selection_runs_only_selected_jobs(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    result, journal, report = run(cli, pipeline, "--select", "transform+")
    assert result.code == 0
    assert [job["name"] for job in report["jobs"]] == ["transform", "load"]
    assert journal.executions("extract_a") == [] and len(journal.executions("transform")) == 1


def test_report_matches_its_schema(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    pipeline.behaviour["extract_c"].update(outcome="FAIL")
    _result, _, report = run(cli, pipeline)
    jsonschema.validate(report, load_schema(REPORT_SCHEMA))
    assert report["status"] == "failed"
    assert report["manifest"]["sha256"] and report["run_id"]
    extract = next(j for j in report["jobs"] if j["name"] == "extract_a")
    assert extract["attempts"] == 1 and extract["duration_seconds"] > 0
    assert extract["started_at"].endswith("Z") and extract["mode"] == "DELTA"


def test_json_logs_carry_job_context(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    result, _, _ = run(cli, p)
    events = [json.loads(line) for line in result.err.splitlines()]
    states = [e for e in events if e["event"].startswith("job_")]
    assert [e["status"] for e in states] == ["starting", "running", "succeeded"]
    assert all(e["job"] == "only" and e["pool"] == "sap" and e["mode"] == "DELTA" for e in states)
    assert {"timestamp", "level", "elapsed", "attempt"} <= set(states[-1])


def test_api_unusable_exits_3(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    p.settings["faults"] = [{"path": "/integration/api/pools/*", "action": "status", "status": 503}]
    result, _, report = run(cli, p)
    assert result.code == 3
    assert report["status"] == "api_error" and "503" in report["error"]


def test_invalid_manifest_exits_2_without_running(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("version: 1\npools: {}\n")
    result = cli("run", str(path), "--emulator")
    assert result.code == 2 and "missing required key 'jobs'" in result.err


def test_missing_key_env_is_a_clear_error(cli: Cli) -> None:
    result = cli("run", str(ROOT / "jobs.yaml"), "--base-url", "http://127.0.0.1:9")
    assert result.code == 2
    assert result.err == (
        "celonis-runner: error: $CELONIS_API_KEY is not set: connection.auth.type is api_key,"
        " so it must hold a Celonis API key\n"
    )


@pytest.mark.parametrize("option", ["--scenario", "--emulator-journal"])
def test_emulator_options_need_emulator(cli: Cli, option: str) -> None:
    assert cli("run", str(ROOT / "jobs.yaml"), option, "x").code == 2


def test_fail_fast_does_not_wait_for_a_run_started_elsewhere(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.job("busy", "sap", behaviour={"running_at_start": "10h"})
    p.job("broken", "crm", behaviour={"outcome": "FAIL", "duration": "1m"})
    result, journal, report = run(cli, p, "--fail-fast")
    assert result.code == 1
    assert statuses(report) == {"busy": "not_started", "broken": "failed"}
    assert report["jobs"][0]["error"] == "not started: --fail-fast after broken failed"
    assert journal.executions("busy") == []


def test_a_batch_of_starts_reads_the_pool_status_once(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.settings["time_scale"] = 100  # the first poll comes 100 ms after the starts: none in between
    for i in range(6):
        p.job(f"extract_{i}", "sap", behaviour={"duration": "1m"})
    result, journal, _ = run(cli, p)
    assert result.code == 0
    requests = journal.requests()
    last_execute = max(i for i, r in enumerate(requests) if r["path"].endswith("/execute"))
    before = [r for r in requests[:last_execute] if r["path"].endswith("/logs/status")]
    assert len(before) == 1  # the markers of all six jobs come from one read, before any POST
    assert len(journal.requests("GET", "/jobs/")) >= 6  # each job's own status is still read fresh


def test_a_refused_key_stops_the_run_with_nothing_running(cli: Cli, tmp_path: Path) -> None:
    pipeline = diamond(tmp_path)
    report_path = tmp_path / "report.json"
    with emulator_for(pipeline, "the-right-key-1234") as emu:
        result = cli(
            "run",
            str(tmp_path / "jobs.yaml"),
            "--base-url",
            emu.base_url,
            "--report",
            str(report_path),
            "--state-dir",
            str(tmp_path / "runs"),
            environ={"CELONIS_API_KEY": "a-wrong-key-5678"},
        )
    assert result.code == 3, result.err
    report = json.loads(report_path.read_text())
    assert set(statuses(report).values()) == {"not_started"}
    assert "may still be running" not in (result.out + result.err).lower()
    assert "a-wrong-key-5678" not in result.out + result.err + report_path.read_text()
