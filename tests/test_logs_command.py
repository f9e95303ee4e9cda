"""`celonis-runner logs JOB`: the latest execution or the one a run started, tasks, failed tasks' lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import runner.target
from runner.clock import ScaledClock
from runner.emulator import Emulator, Scenario
from runner.joblogs import Item, JobLogs, closest_start, run_reference_time
from tests.conftest import CliResult
from tests.e2e import job_uuid, pool_uuid

Cli = Callable[..., CliResult]
KEY = "logs-test-key-0123456789"
MINUTE = 60.0


def _item(start_s: float | None, name: str = "x") -> Item:
    start = None if start_s is None else int(start_s * 1000)
    return Item(name, name, name, "SUCCESS", start, None)


# -- matching a run to an execution ----------------------------------------------------


def test_closest_start_takes_the_nearest_within_the_window() -> None:
    sent = 1_000_000.0
    earlier = _item(sent - 4 * MINUTE, "earlier")  # someone else's, within the clock tolerance
    ours = _item(sent + 20, "ours")
    later = _item(sent + 30 * MINUTE, "later")  # the next run's
    assert closest_start([later, ours, earlier], sent) == ours
    assert closest_start([later, earlier], sent) == earlier
    assert closest_start([later], sent) is None
    assert closest_start([_item(sent - 6 * MINUTE), _item(None)], sent) is None


def test_closest_start_allows_an_execution_celonis_queued_until_the_run_saw_it_end() -> None:
    sent = 1_000_000.0
    queued = _item(sent + 20 * MINUTE, "queued")
    assert closest_start([queued], sent) is None
    assert closest_start([queued], sent, until=sent + 40 * MINUTE) == queued


def test_run_reference_time_prefers_sent_at_then_started_at_then_intent_at() -> None:
    assert run_reference_time({"sent_at": 3.0, "started_at": 2.0, "intent_at": 1.0}) == (
        3.0,
        "sent_at",
    )
    assert run_reference_time({"started_at": 2.0, "intent_at": 1.0}) == (2.0, "started_at")
    assert run_reference_time({"started_at": None, "intent_at": 1}) == (1.0, "intent_at")
    assert run_reference_time({"state": "skipped"}) is None


class FakeApi:
    """Answers like Celonis' log endpoints, from lists, and records each request."""

    def __init__(self, history: list[dict[str, Any]], page_size: int = 2) -> None:
        self.history = history
        self.page_size = page_size
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, path: str, params: Mapping[str, str | int]) -> object:
        self.requests.append((path, dict(params)))
        if path.endswith("/executions") and "/logs/" in path and "executionId" not in params:
            page, limit = int(params["page"]), int(params["limit"])
            size = min(limit, self.page_size)
            pages = -(-len(self.history) // size)
            return {
                "executionItems": self.history[page * size : (page + 1) * size],
                "numOfPages": pages,
            }
        if path.endswith("/logs/executions"):
            return [{"id": "t1", "name": "Load", "status": "FAIL", "startDate": 1, "endDate": 2}]
        return {
            "logMessages": [
                {"level": "INFO", "date": 1, "logMessage": "started"},
                {"level": "ERROR", "date": 2, "logMessage": "ORA-00942: table missing"},
                {"level": "WARNING", "date": 3, "logMessage": "slow"},
            ],
            "numOfPages": 1,
        }


def test_started_near_reads_history_pages_until_they_are_older_than_the_window() -> None:
    day = 86_400.0
    history = [
        {"executionId": f"e{n}", "status": "SUCCESS", "startDate": int((10 * day - n * day) * 1000)}
        for n in range(8)
    ]
    api = FakeApi(history, page_size=2)
    found = JobLogs(api, "p", "j").started_near(7 * day + 30)
    assert found is not None and found.execution_id == "e3"
    assert [params["page"] for _, params in api.requests] == [0, 1, 2]  # not the pages after


def test_read_lists_tasks_and_the_failed_task_lines_error_first() -> None:
    api = FakeApi([{"executionId": "e1", "status": "FAIL", "startDate": 5}])
    logs = JobLogs(api, "p", "j")
    latest = logs.latest()
    assert latest is not None
    read = logs.read(latest)
    assert [t.item.name for t in read.tasks] == ["Load"]
    assert [line.level for line in read.tasks[0].lines] == ["ERROR", "WARNING", "INFO"]
    detail = [params for path, params in api.requests if path.endswith("/detail")]
    assert detail == [{"executionId": "e1", "id": "t1", "type": "TASK", "limit": 200, "page": 0}]


# -- the command against an emulator ------------------------------------------------


@pytest.fixture
def team(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Emulator, dict[str, str]]]:
    """An emulator, and a manifest of its jobs; the runner shares the emulator's clock (as
    `run --emulator` does) so the run's times and Celonis' start dates agree."""
    scenario = Scenario.from_dict(
        {
            "time_scale": 600,
            "queued_for": "5s",
            "pools": [
                {
                    "id": pool_uuid("sap"),
                    "name": "SAP",
                    "jobs": [
                        {
                            "id": job_uuid("load"),
                            "name": "Load",
                            "duration": "10m",
                            "outcomes": ["FAIL", "SUCCESS"],
                            "message": "ORA-00942: table or view does not exist",
                        },
                        {"id": job_uuid("never"), "name": "Never", "duration": "1m"},
                    ],
                }
            ],
        }
    )
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        f"""\
version: 1
defaults: {{poll_interval: 10s}}
pools:
  sap: {{id: {pool_uuid("sap")}}}
jobs:
  load: {{pool: sap, id: {job_uuid("load")}}}
  never: {{pool: sap, id: {job_uuid("never")}, depends_on: [load]}}
""",
        encoding="utf-8",
    )
    clock = ScaledClock(scenario.time_scale)
    monkeypatch.setattr(runner.target, "_clock", lambda environ: clock)
    with Emulator(scenario, clock=clock, api_keys=[KEY]) as emu:
        yield manifest, emu, {"CELONIS_API_KEY": KEY}


def _run_ids(tmp_path: Path) -> list[str]:
    files = sorted((tmp_path / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return [p.stem for p in files]


def test_logs_shows_the_latest_or_the_execution_a_run_started(
    cli: Cli, tmp_path: Path, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, env = team
    url = ("--base-url", emu.base_url)
    first = cli("run", str(manifest), *url, environ=env)
    assert first.code == 1, first.err  # load fails the first time, so never is skipped
    second = cli("run", str(manifest), *url, "--select", "load", environ=env)
    assert second.code == 0, second.err
    run1, run2 = _run_ids(tmp_path)

    latest = cli("logs", "load", str(manifest), *url, environ=env)
    assert latest.code == 0, latest.err
    assert "SUCCESS" in latest.out and "ORA-00942" not in latest.out

    failed = cli("logs", "load", str(manifest), *url, "--run", run1, environ=env)
    assert failed.code == 0, failed.err
    out = failed.out
    assert f"run:      {run1} sent its execute at" in out
    assert ": FAIL" in out and "Log of failed task 'Load transformation':" in out
    error_at = out.index("ERROR   ")
    assert "ORA-00942: table or view does not exist" in out[error_at:].splitlines()[0]
    assert error_at < out.index("INFO    ")  # ERROR first

    data = json.loads(
        cli("logs", "load", str(manifest), *url, "--run", run1, "--format", "json", environ=env).out
    )
    assert data["execution"]["status"] == "FAIL"
    assert data["run"]["run_id"] == run1
    # a job served from a manifest has an extraction, then the transformation that fails
    assert [task["status"] for task in data["tasks"]] == ["SUCCESS", "FAIL"]
    failed_task = data["tasks"][1]
    assert failed_task["log"][0] == {
        "level": "ERROR",
        "date": failed_task["finished_at"],
        "message": "ORA-00942: table or view does not exist",
    }
    by_run2 = json.loads(
        cli("logs", "load", str(manifest), *url, "--run", run2, "--format", "json", environ=env).out
    )
    by_latest = json.loads(
        cli("logs", "load", str(manifest), *url, "--format", "json", environ=env).out
    )
    assert by_run2["execution"]["status"] == "SUCCESS"
    assert by_run2["execution"]["execution_id"] == by_latest["execution"]["execution_id"]
    assert by_run2["execution"]["execution_id"] != data["execution"]["execution_id"]

    skipped = cli("logs", "never", str(manifest), *url, "--run", run1, environ=env)
    assert skipped.code == 2
    assert f"run {run1} did not start job 'never' (it ended skipped)" in skipped.err


def test_logs_of_a_job_that_never_ran(
    cli: Cli, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, env = team
    result = cli("logs", "never", str(manifest), "--base-url", emu.base_url, environ=env)
    assert result.code == 0, result.err
    assert "it never ran: its execution history is empty" in result.out
    data = json.loads(
        cli(
            "logs",
            "never",
            str(manifest),
            "--base-url",
            emu.base_url,
            "--format",
            "json",
            environ=env,
        ).out
    )
    assert data["execution"] is None and data["tasks"] == []


def test_logs_unknown_job_suggests_a_name(
    cli: Cli, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, env = team
    result = cli("logs", "laod", str(manifest), "--base-url", emu.base_url, environ=env)
    assert result.code == 2
    assert "no job 'laod' in" in result.err and "(did you mean 'load'?)" in result.err


def test_logs_api_errors_exit_3_without_the_key(
    cli: Cli, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, _ = team
    wrong = "wrong-key-9876543210"
    result = cli(
        "logs",
        "load",
        str(manifest),
        "--base-url",
        emu.base_url,
        environ={"CELONIS_API_KEY": wrong},
    )
    assert result.code == 3
    assert "401" in result.err and wrong not in result.err + result.out


def test_logs_run_that_does_not_exist(
    cli: Cli, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, env = team
    result = cli(
        "logs",
        "load",
        str(manifest),
        "--base-url",
        emu.base_url,
        "--run",
        "20240101T000000Z-abcdef",
        environ=env,
    )
    assert result.code == 2
    assert "no saved run" in result.err


def test_logs_without_a_job_says_what_it_needs(cli: Cli) -> None:
    result = cli("logs")
    assert result.code == 2
    assert "logs needs JOB" in result.err


def test_logs_usage_shows_job_as_required(cli: Cli) -> None:
    """Issue 22 #14: `[JOB]` read as optional; main() insists on it."""
    usage = cli("logs", "--help").out.split("\n\n")[0]
    assert " JOB [FILE]" in usage and "[JOB]" not in usage, usage


def test_logs_with_emulator_says_why_nothing_ran(cli: Cli, tmp_path: Path) -> None:
    """Issue 22 #14: a fresh emulator has no history: say so, and what to do instead."""
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        f"version: 1\npools: {{sap: {{id: {pool_uuid('sap')}}}}}\n"
        f"jobs:\n  a: {{pool: sap, id: {job_uuid('a')}}}\n"
    )
    result = cli("logs", "a", str(manifest), "--emulator")
    assert result.code == 0, result.err
    assert "it never ran: its execution history is empty" in result.out
    assert "a new emulator has run nothing" in result.out
    assert "`celonis-runner emulator`" in result.out


def test_logs_quiet_prints_only_the_log_lines(
    cli: Cli, tmp_path: Path, team: tuple[Path, Emulator, dict[str, str]]
) -> None:
    manifest, emu, env = team
    url = ("--base-url", emu.base_url)
    assert cli("run", str(manifest), *url, environ=env).code == 1  # load fails the first time
    (run1,) = _run_ids(tmp_path)

    def logs(*extra: str) -> CliResult:
        return cli("logs", "load", str(manifest), *url, "--run", run1, *extra, environ=env)

    loud, quiet = logs(), logs("-q")
    assert (loud.code, quiet.code) == (0, 0), quiet.err
    lines = quiet.out.splitlines()
    assert lines and lines[0].startswith("ERROR ")
    assert lines[0].endswith("ORA-00942: table or view does not exist")
    loud_lines = [line.strip() for line in loud.out.splitlines()]
    assert set(lines) <= set(loud_lines) and len(lines) < len(loud_lines)
    assert all(not line.startswith(("load (pool", "Tasks:", "Log of")) for line in lines)
    assert logs("--format", "json", "--quiet").out == logs("--format", "json").out

    latest = cli("logs", "load", str(manifest), *url, "-q", environ=env)
    assert latest.out == quiet.out  # the latest execution is that failed one
    assert cli("run", str(manifest), *url, "--select", "load", environ=env).code == 0
    succeeded = cli("logs", "load", str(manifest), *url, "-q", environ=env)
    assert (succeeded.code, succeeded.out) == (0, "")  # nothing failed: nothing to show
    never = cli("logs", "never", str(manifest), *url, "-q", environ=env)
    assert (never.code, never.out) == (0, "it never ran: its execution history is empty\n")
