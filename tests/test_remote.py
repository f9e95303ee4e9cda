"""`plan --check-remote` and `status` against the emulator over loopback, and the client's
`latest_execution`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.api import CelonisClient, KeyAuth, Secret
from runner.api.transport import DEFAULT_TIMEOUTS, FIRST_CONTACT_BUDGET
from runner.clock import ScaledClock
from tests.conftest import CliResult
from tests.e2e import Pipeline, emulator_for, job_uuid, pool_uuid

Cli = Callable[..., CliResult]
KEY = "remote-check-key-1234"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def pipeline(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.job("extract", "sap", behaviour={"last_run": "SUCCESS"})
    p.job("transform", "sap", "extract")
    p.job("load", "crm", "transform")
    return p


@contextmanager
def served(p: Pipeline) -> Iterator[tuple[Any, Path]]:
    """The emulator playing the pipeline's scenario, and the manifest written for it."""
    with emulator_for(p, KEY) as emu:
        yield emu, p.folder / "jobs.yaml"


def line_of(path: Path, text: str) -> tuple[int, int]:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number, line.index(text) + 1
    raise AssertionError(f"{text!r} not in {path}")


def check(cli: Cli, manifest: Path, emu: Any, *extra: str, key: str = KEY) -> CliResult:
    return cli(
        "plan",
        str(manifest),
        "--check-remote",
        "--base-url",
        emu.base_url,
        *extra,
        environ={"CELONIS_API_KEY": key},
    )


def test_check_remote_finds_everything(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        result = check(cli, manifest, emu)
        journal = emu.journal()
    assert result.code == 0, result.err
    assert result.out.startswith(f"Plan for {manifest}: 3 jobs in 2 pools")  # the plan as usual
    assert result.err.splitlines()[-1] == (
        "Remote check ok: credentials accepted, 2 of 2 pools and 3 of 3 jobs found"
    )
    requests_made = [e for e in journal if e["type"] == "request"]
    assert {e["method"] for e in requests_made} == {"GET"}  # read-only
    assert not [e for e in journal if e.get("event") == "started" and e.get("by") == "api"]


def test_check_remote_unknown_job_id_is_a_manifest_problem(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        manifest.write_text(manifest.read_text().replace(job_uuid("load"), UNKNOWN))
        result = check(cli, manifest, emu, "--format", "json")
    assert result.code == 2
    json.loads(result.out)  # stdout is still the plan, whatever the check found
    line, column = line_of(manifest, UNKNOWN)
    assert (
        f"{manifest}:{line}:{column}: jobs.load.id: job {UNKNOWN} does not exist in pool 'crm'"
        f" ({pool_uuid('crm')}), or the key cannot see it (the pool has a job named 'load' with id"
        f" {job_uuid('load')}): copy the id from the data job's URL"
    ) in result.err.splitlines()
    assert result.err.splitlines()[-1] == (
        "Remote check found 1 problem: credentials accepted, 2 of 2 pools and 2 of 3 jobs found"
    )


def test_check_remote_unknown_pool_id_and_github_annotation(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        manifest.write_text(manifest.read_text().replace(pool_uuid("crm"), UNKNOWN))
        result = check(cli, manifest, emu, "--github")
    assert result.code == 2
    line, column = line_of(manifest, UNKNOWN)
    assert f"{manifest}:{line}:{column}: pools.crm.id: pool 'crm' ({UNKNOWN}) does not exist" in (
        result.err
    )
    assert (
        f"::error file={manifest},line={line},col={column},title=celonis-runner::pools.crm.id: "
        in (result.err)
    )


def test_check_remote_suggests_the_id_of_a_job_with_the_same_name(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        manifest.write_text(manifest.read_text().replace(job_uuid("transform"), UNKNOWN))
        result = check(cli, manifest, emu)
    assert result.code == 2
    assert f"(the pool has a job named 'transform' with id {job_uuid('transform')})" in result.err


def test_check_remote_forbidden_pool_exits_3(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.settings["forbidden_pools"] = [pool_uuid("crm")]
    with served(p) as (emu, manifest):
        result = check(cli, manifest, emu)
    assert result.code == 3
    line, column = line_of(manifest, pool_uuid("crm"))
    assert (
        f"{manifest}:{line}:{column}: pools.crm.id: the key may not read pool 'crm'"
        f" ({pool_uuid('crm')}): HTTP 403; give it 'view' and 'manage' permission on the pool"
    ) in result.err


def test_check_remote_refused_key_exits_3_and_never_shows_it(cli: Cli, tmp_path: Path) -> None:
    wrong = "wrong-key-do-not-print-5678"
    with served(pipeline(tmp_path)) as (emu, manifest):
        result = check(cli, manifest, emu, key=wrong)
    assert result.code == 3
    assert result.err.splitlines()[-1].startswith(
        "celonis-runner: error: GET /integration/api/pools"
    )
    assert "401" in result.err
    assert wrong not in result.out + result.err and "Traceback" not in result.err


def test_check_remote_warns_about_a_running_job(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.behaviour["transform"]["running_at_start"] = "30m"
    with served(p) as (emu, manifest):
        result = check(cli, manifest, emu)
    assert result.code == 0
    line, column = line_of(manifest, job_uuid("transform"))
    assert (
        f"{manifest}:{line}:{column}: warning: jobs.transform.id: the job is RUNNING in Celonis now"
        " (an execution this runner did not start); `run` would wait for it to end, then start its own"
    ) in result.err
    assert "Remote check ok, 1 warning:" in result.err


def test_check_remote_with_the_embedded_emulator(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.behaviour["extract"]["running_at_start"] = "10m"
    manifest, scenario = p.write()
    result = cli("plan", str(manifest), "--check-remote", "--emulator", "--scenario", str(scenario))
    assert result.code == 0, result.err
    assert "jobs.extract.id: the job is RUNNING" in result.err


def test_check_remote_needs_the_key(cli: Cli, tmp_path: Path) -> None:
    manifest, _ = pipeline(tmp_path).write()
    result = cli("plan", str(manifest), "--check-remote", "--base-url", "http://127.0.0.1:9")
    assert result.code == 2
    assert result.err == (
        "celonis-runner: error: $CELONIS_API_KEY is not set: connection.auth.type is api_key,"
        " so it must hold a Celonis API key\n"
    )


def test_plan_connection_options_need_check_remote(cli: Cli, tmp_path: Path) -> None:
    manifest, scenario = pipeline(tmp_path).write()
    result = cli("plan", str(manifest), "--emulator")
    assert (result.code, result.err) == (
        2,
        "celonis-runner: error: --base-url and --emulator go with --check-remote"
        " (plan alone makes no request)\n",
    )
    assert cli("plan", str(manifest), "--scenario", str(scenario)).code == 2


# -- status -------------------------------------------------------------------------------


def status(cli: Cli, manifest: Path, emu: Any, *extra: str) -> CliResult:
    return cli(
        "status",
        str(manifest),
        "--base-url",
        emu.base_url,
        *extra,
        environ={"CELONIS_API_KEY": KEY},
    )


def test_status_table(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.behaviour["transform"]["running_at_start"] = "30m"
    with served(p) as (emu, manifest):
        result = status(cli, manifest, emu)
    assert result.code == 0, result.err
    header, extract, transform, load = result.out.splitlines()
    assert header.split() == ["JOB", "POOL", "STATUS", "STARTED", "ENDED", "DURATION"]
    assert extract.split()[:3] == ["extract", "sap", "SUCCESS"] and extract.endswith("5m")
    assert transform.split()[:3] == ["transform", "sap", "RUNNING"]
    assert transform.split()[-2:] == ["-", "-"]  # no end, no duration yet
    assert load.split() == ["load", "crm", "never", "ran", "-", "-", "-"]


def test_status_json(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        result = status(cli, manifest, emu, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["format_version"] == 1 and data["base_url"] == emu.base_url
    extract, _transform, load = data["jobs"]
    assert extract["name"] == "extract" and extract["status"] == "SUCCESS"
    assert extract["job_id"] == job_uuid("extract") and extract["execution_id"]
    assert extract["started_at"].endswith("Z") and extract["finished_at"] > extract["started_at"]
    assert extract["duration_seconds"] == 300.0
    assert load == {
        "name": "load",
        "pool": "crm",
        "pool_id": pool_uuid("crm"),
        "job_id": job_uuid("load"),
        "status": None,
        "execution_id": None,
        "started_at": None,
        "finished_at": None,
        "duration_seconds": None,
        "error": None,
    }


def test_status_unknown_job_exits_2(cli: Cli, tmp_path: Path) -> None:
    with served(pipeline(tmp_path)) as (emu, manifest):
        manifest.write_text(manifest.read_text().replace(job_uuid("load"), UNKNOWN))
        result = status(cli, manifest, emu)
    assert result.code == 2
    assert result.out.splitlines()[-1].split()[:4] == ["load", "crm", "NOT", "FOUND"]
    line, column = line_of(manifest, UNKNOWN)
    assert f"{manifest}:{line}:{column}: jobs.load.id: job {UNKNOWN} does not exist" in result.err


def test_status_forbidden_pool_exits_3(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.settings["forbidden_pools"] = [pool_uuid("sap")]
    with served(p) as (emu, manifest):
        result = status(cli, manifest, emu)
    assert result.code == 3 and result.out == ""
    assert "403" in result.err and f"permission on pool {pool_uuid('sap')}" in result.err


def test_status_with_the_embedded_emulator(cli: Cli, tmp_path: Path) -> None:
    manifest, scenario = pipeline(tmp_path).write()
    result = cli("status", str(manifest), "--emulator", "--scenario", str(scenario))
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].split()[:3] == ["extract", "sap", "SUCCESS"]


# -- the client --------------------------------------------------------------------------


def test_latest_execution(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.behaviour["transform"]["running_at_start"] = "30m"
    with served(p) as (emu, _):
        client = CelonisClient.connect(
            emu.base_url, KeyAuth("Bearer", Secret(KEY), "K"), requests.Session(), ScaledClock(3000)
        )
        done = client.latest_execution(pool_uuid("sap"), job_uuid("extract"))
        running = client.latest_execution(pool_uuid("sap"), job_uuid("transform"))
        never = client.latest_execution(pool_uuid("crm"), job_uuid("load"))
    assert done is not None and done.status == "SUCCESS" and done.execution_id
    assert done.start_date is not None and done.end_date is not None
    assert done.end_date - done.start_date == 300_000  # 5 minutes, in epoch ms
    assert running is not None and running.status == "RUNNING" and running.end_date is None
    assert never is None


def test_check_remote_goes_on_when_the_key_may_not_list_pools(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.settings["faults"] = [
        {"method": "GET", "path": "/integration/api/pools", "action": "status", "status": 403}
    ]
    with served(p) as (emu, manifest):
        result = check(cli, manifest, emu)
    assert result.code == 0, result.err
    assert "3 of 3 jobs found" in result.err


def test_check_remote_server_errors_exit_3(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.settings["faults"] = [
        {"path": "/integration/api/pools/*/jobs", "action": "status", "status": 503}
    ]
    with served(p) as (emu, manifest):
        result = cli(
            "plan",
            str(manifest),
            "--check-remote",
            "--base-url",
            emu.base_url,
            environ={"CELONIS_API_KEY": KEY, "CELONIS_RUNNER_TIME_SCALE": "3000"},
        )
    assert result.code == 3
    last = result.err.splitlines()[-1]
    assert last.startswith("celonis-runner: error: GET /integration/api/pools/") and "503" in last


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


NOWHERE = ("refused", "https://no-such-team.invalid")


def _nowhere(kind: str) -> str:
    return f"http://127.0.0.1:{_free_port()}" if kind == "refused" else kind


@pytest.mark.parametrize("where", NOWHERE)
@pytest.mark.parametrize("command", ["plan", "status"])
def test_nothing_answering_at_all_gives_up_on_first_contact(
    cli: Cli, tmp_path: Path, where: str, command: str
) -> None:
    """A mistyped team name (the host does not resolve) or nothing listening: exit 3 after the
    retries that fit in the first-contact budget, not after minutes of them (issue 22 #11).
    On a scaled clock: the waits are virtual, what is given up and why is real."""
    p = pipeline(tmp_path)
    p.write()
    argv = [
        command,
        str(p.folder / "jobs.yaml"),
        *(["--check-remote"] if command == "plan" else []),
    ]
    environ = {"CELONIS_API_KEY": KEY, "CELONIS_RUNNER_TIME_SCALE": "100"}
    result = cli(*argv, "--base-url", _nowhere(where), environ=environ)
    assert result.code == 3, result.err
    assert "api.giving_up" in result.err and "nothing answers" in result.err, result.err
    waits = [float(w) for w in re.findall(r"api\.retry .* wait=([0-9.]+)s", result.err)]
    assert sum(waits) + DEFAULT_TIMEOUTS[0] <= FIRST_CONTACT_BUDGET, result.err


@pytest.mark.slow
@pytest.mark.parametrize("where", NOWHERE)
def test_nothing_answering_at_all_fails_within_10_seconds_of_real_time(
    cli: Cli, tmp_path: Path, where: str
) -> None:
    """The same on the real clock, name resolution included (slow: seconds of real waits)."""
    import time

    p = pipeline(tmp_path)
    p.write()
    manifest = p.folder / "jobs.yaml"
    for command in (["plan", str(manifest), "--check-remote"], ["status", str(manifest)]):
        began = time.monotonic()
        result = cli(*command, "--base-url", _nowhere(where), environ={"CELONIS_API_KEY": KEY})
        took = time.monotonic() - began
        assert result.code == 3, (command, where, result.err)
        assert took < 10, (command, where, took)
