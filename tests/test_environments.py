"""Issue 23: one manifest for every team. Pools and jobs by `celonis_name`, looked up per team
(one pool list, one job list per pool); `environments:` chosen by `--env`; the environment and
the names' ids recorded; a team that lacks a job refused before any execute."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from runner.api.client import JobInfo, PoolInfo
from runner.api.types import JobStatus
from runner.clock import TIME_ORIGIN_ENV, TIME_SCALE_ENV, ScaledClock
from runner.emulator import Emulator, Scenario
from runner.manifest.loader import check_manifest, load_manifest
from runner.preflight.names import resolve_names
from tests.conftest import CliResult

Cli = Callable[..., CliResult]
SCALE = 600
KEYS = {"dev": "dev-key-0123456789", "qa": "qa-key-0123456789", "prod": "prod-key-0123456789"}


def ident(team: str, *parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join((team, *parts))))


MANIFEST = """\
version: 1
environments:
  dev:
    connection:
      base_url: ${DEV_URL}
      auth: {key_env: DEV_KEY}
    defaults:
      timeout: 30m
  qa:
    connection:
      base_url: ${QA_URL}
      auth: {key_env: QA_KEY}
  prod:
    connection:
      base_url: ${PROD_URL}
      auth: {key_env: PROD_KEY}
defaults:
  timeout: 2h
pools:
  sap:
    celonis_name: SAP ECC
  crm:
    celonis_name: Salesforce
jobs:
  extract:
    pool: sap
    celonis_name: Extract orders
  transform:
    pool: sap
    celonis_name: Transform orders
    depends_on: [extract]
  load_crm:
    pool: crm
    celonis_name: Load accounts
    depends_on: [transform]
"""

JOBS = {"SAP ECC": ["Extract orders", "Transform orders"], "Salesforce": ["Load accounts"]}


def team_scenario(team: str, jobs: dict[str, list[str]] = JOBS) -> Scenario:
    """A team that has the manifest's pools and jobs under the same names and its own ids."""
    return Scenario.from_dict(
        {
            "time_scale": SCALE,
            "pools": [
                {
                    "id": ident(team, pool),
                    "name": pool,
                    "jobs": [
                        {"id": ident(team, pool, job), "name": job, "duration": "20s"}
                        for job in names
                    ],
                }
                for pool, names in jobs.items()
            ],
        }
    )


@contextmanager
def teams(**scenarios: Scenario) -> Iterator[tuple[dict[str, Emulator], dict[str, str]]]:
    """One emulator per team, and the environment variables that point the manifest at them."""
    origin = time.time()
    with ExitStack() as stack:
        emus = {
            team: stack.enter_context(
                Emulator(scenario, clock=ScaledClock(SCALE, origin), api_keys=[KEYS[team]])
            )
            for team, scenario in scenarios.items()
        }
        # the runner on the emulators' clock: a 10 s poll interval takes 1/600 of that
        environ = {TIME_SCALE_ENV: str(SCALE), TIME_ORIGIN_ENV: repr(origin)}
        environ |= {f"{t.upper()}_URL": e.base_url for t, e in emus.items()}
        environ |= {f"{t.upper()}_KEY": KEYS[t] for t in emus}
        for team in KEYS:  # a team not served: a closed port, never reached
            environ.setdefault(f"{team.upper()}_URL", "http://127.0.0.1:9")
        yield emus, environ


def executes(emu: Emulator) -> list[str]:
    return [
        e["path"]
        for e in emu.journal()
        if e.get("type") == "request" and e["method"] == "POST" and e["path"].endswith("/execute")
    ]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(MANIFEST)
    return path


# -- the model, the schema, validate ---------------------------------------------------------


def test_environment_picks_connection_and_defaults(manifest: Path) -> None:
    environ = {"DEV_URL": "http://127.0.0.1:1", "QA_URL": "https://qa.example.com"}
    environ["PROD_URL"] = "https://prod.example.com"
    dev = load_manifest(manifest, environ, environment="dev")
    assert dev.environment == "dev"
    assert dev.connection.base_url == "http://127.0.0.1:1"
    assert dev.connection.auth.key_env == "DEV_KEY"
    assert dev.jobs["extract"].timeout == 1800  # dev's defaults over the top-level ones
    assert dev.jobs["extract"].celonis_name == "Extract orders"
    assert dev.jobs["extract"].job_id == ""  # looked up when a command talks to the team
    top = load_manifest(manifest, environ)
    assert top.environment is None and top.jobs["extract"].timeout == 7200
    assert set(top.environments) == {"dev", "qa", "prod"}


def test_unknown_environment_is_a_problem_with_did_you_mean(manifest: Path) -> None:
    environ = {"DEV_URL": "http://127.0.0.1:1", "QA_URL": "https://q.x", "PROD_URL": "https://p.x"}
    result = check_manifest(manifest, environ, strict_env=True, environment="prd")
    assert result.manifest is None
    (problem,) = result.errors
    assert "no environment 'prd'" in problem.message and "did you mean 'prod'" in problem.message
    assert problem.line == 2


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_validate_refuses_names_declared_twice_and_a_job_name_without_pool(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        pools:
          a: {celonis_name: SAP}
          b: {celonis_name: SAP}
        jobs:
          one: {pool: a, celonis_name: Extract}
          two: {pool: a, celonis_name: Extract}
          three: {celonis_name: Load}
        """,
    )
    result = cli("validate", str(path))
    assert result.code == 2, result.err
    shown = result.out + result.err
    assert "jobs.yaml:4:21: pools.b.celonis_name: the same data pool name as 'a'" in shown
    assert "jobs.two.celonis_name: the same data job name in pool 'a' as 'one'" in shown
    assert "jobs.three: a job given by 'celonis_name' needs 'pool'" in shown


def test_schema_refuses_a_pool_without_id_or_name_and_an_environment_without_connection(
    cli: Cli, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        environments:
          dev: {defaults: {timeout: 1h}}
        pools:
          a: {max_parallel: 2}
        jobs:
          one: {pool: a, celonis_name: Extract}
        """,
    )
    result = cli("validate", str(path))
    assert result.code == 2
    shown = result.out + result.err
    assert "pools.a: needs 'id'" in shown and "'celonis_name'" in shown
    assert "environments.dev" in shown and "connection" in shown


# -- looking names up --------------------------------------------------------------------------


class CountingApi:
    """A team's pools and jobs, counting the requests the lookup makes."""

    def __init__(self, pools: dict[str, tuple[str, list[tuple[str, str]]]]) -> None:
        self.pools = pools  # id -> (name, [(job id, job name)])
        self.requests: list[str] = []

    def list_pools(self) -> list[PoolInfo]:
        self.requests.append("GET /pools")
        return [PoolInfo(id=i, name=name) for i, (name, _) in self.pools.items()]

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        self.requests.append(f"GET /pools/{pool_id}/jobs")
        return [
            JobInfo(id=i, name=n, pool_id=pool_id, status=JobStatus(i, None))
            for i, n in self.pools[pool_id][1]
        ]


def big_manifest(tmp_path: Path, pools: int, per_pool: int) -> Path:
    lines = ["version: 1", "pools:"]
    lines += [f"  p{p}: {{celonis_name: Pool {p}}}" for p in range(pools)]
    lines.append("jobs:")
    lines += [
        f"  j{p}_{j}: {{pool: p{p}, celonis_name: Job {j}}}"
        for p in range(pools)
        for j in range(per_pool)
    ]
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_resolution_costs_one_pool_list_and_one_job_list_per_pool_at_1000_jobs(
    tmp_path: Path,
) -> None:
    manifest = load_manifest(big_manifest(tmp_path, 20, 50), {})
    api = CountingApi(
        {
            ident("t", f"Pool {p}"): (
                f"Pool {p}",
                [(ident("t", str(p), str(j)), f"Job {j}") for j in range(50)],
            )
            for p in range(20)
        }
    )
    resolution = resolve_names(api, manifest)
    assert not resolution.problems
    assert len(resolution.manifest.jobs) == 1000
    assert api.requests.count("GET /pools") == 1
    assert len(api.requests) == 21  # 1 pool list + 20 job lists, not one per job
    assert resolution.requests == 21
    job = resolution.manifest.jobs["j7_33"]
    assert (job.pool_id, job.job_id) == (ident("t", "Pool 7"), ident("t", "7", "33"))
    assert resolution.manifest.resolved["jobs.j7_33"] == job.job_id
    assert resolution.manifest.resolved["pools.p7"] == job.pool_id


def test_ambiguous_and_missing_names_are_refused_never_guessed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        version: 1
        pools:
          twice: {celonis_name: Twin}
          sap: {celonis_name: SAP ECC}
          pinned: {celonis_name: CRM, id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}
        jobs:
          a: {pool: twice, celonis_name: A}
          dup: {pool: sap, celonis_name: Extract}
          typo: {pool: sap, celonis_name: Extract order}
        """,
    )
    api = CountingApi(
        {
            ident("t", "1"): ("Twin", []),
            ident("t", "2"): ("Twin", []),
            ident("t", "3"): (
                "SAP ECC",
                [
                    (ident("t", "j1"), "Extract"),
                    (ident("t", "j2"), "Extract"),
                    (ident("t", "j3"), "Extract orders"),
                ],
            ),
            "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11": ("CRM (old)", []),
        }
    )
    resolution = resolve_names(api, load_manifest(path, {}))
    shown = [p.render() for p in resolution.errors]
    assert len(shown) == 4, shown
    assert "jobs.yaml:3:11: pools.twice.celonis_name: 2 data pools" in shown[0]
    assert "are named 'Twin'" in shown[0] and "add 'id'" in shown[0]
    assert (
        "pools.pinned.celonis_name: pool 3f6c1a3e" in shown[1] and "named 'CRM (old)'" in shown[1]
    )
    assert "jobs.dup.celonis_name: 2 data jobs in pool 'sap' are named 'Extract'" in shown[2]
    assert "jobs.typo.celonis_name: no data job named 'Extract order' in pool 'sap'" in shown[3]
    assert "did you mean 'Extract orders'" in shown[3]
    assert resolution.manifest.resolved == {}  # nothing resolved while any name is a problem


# -- run, plan --check-remote, --env -----------------------------------------------------------


def test_one_manifest_runs_in_each_team_with_that_teams_ids(
    cli: Cli, manifest: Path, tmp_path: Path
) -> None:
    with teams(dev=team_scenario("dev"), prod=team_scenario("prod")) as (emus, environ):
        report = tmp_path / "dev.json"
        junit = tmp_path / "dev.xml"
        dev = cli(
            "run",
            str(manifest),
            "--env",
            "dev",
            "--report",
            str(report),
            "--junit-xml",
            str(junit),
            environ=environ,
        )
        assert dev.code == 0, dev.err
        assert len(executes(emus["dev"])) == 3 and executes(emus["prod"]) == []
        assert all(
            ident("dev", "SAP ECC") in p or ident("dev", "Salesforce") in p
            for p in executes(emus["dev"])
        )
        prod = cli("run", str(manifest), environ={**environ, "CELONIS_RUNNER_ENV": "prod"})
        assert prod.code == 0, prod.err
        assert len(executes(emus["prod"])) == 3 and len(executes(emus["dev"])) == 3
    assert "environment" in dev.err and "dev" in dev.err  # the log
    states = sorted((tmp_path / "runs").glob("*.json"))
    saved = [json.loads(s.read_text()) for s in states]
    assert {s["environment"] for s in saved} == {"dev", "prod"}
    dev_state = next(s for s in saved if s["environment"] == "dev")
    assert dev_state["resolved"]["jobs.extract"] == ident("dev", "SAP ECC", "Extract orders")
    assert dev_state["resolved"]["pools.crm"] == ident("dev", "Salesforce")
    data = json.loads(report.read_text())
    assert data["environment"] == "dev"
    assert data["resolved"]["jobs.load_crm"] == ident("dev", "Salesforce", "Load accounts")
    assert 'name="environment" value="dev"' in junit.read_text()
    assert "Environment: dev" in dev.out


def test_a_team_without_a_job_is_refused_by_check_remote_and_by_run(
    cli: Cli, manifest: Path
) -> None:
    lacking = {"SAP ECC": ["Extract orders"], "Salesforce": ["Load accounts"]}
    with teams(qa=team_scenario("qa", lacking)) as (emus, environ):
        check = cli("plan", str(manifest), "--check-remote", "--env", "qa", environ=environ)
        assert check.code == 2, check.err
        assert "jobs.yaml:30:5: jobs.transform.celonis_name: no data job named" in check.err
        run = cli("run", str(manifest), "--env", "qa", environ=environ)
        assert run.code == 2, run.err
        assert "jobs.transform.celonis_name" in run.err and "nothing was started" in run.err
        assert executes(emus["qa"]) == []
        requests = [e["path"] for e in emus["qa"].journal() if e.get("type") == "request"]
        # per command: the pool list and the two pools' job lists, nothing per job
        assert requests.count("/integration/api/pools") == 2
        assert len(requests) == 6, requests


def test_drift_shows_each_environment_and_exits_1_when_a_job_is_missing(
    cli: Cli, manifest: Path
) -> None:
    lacking = {"SAP ECC": ["Extract orders"], "Salesforce": ["Load accounts"]}
    scenarios = {"dev": team_scenario("dev"), "qa": team_scenario("qa", lacking)}
    with teams(**scenarios) as (_, environ):
        result = cli(
            "plan",
            str(manifest),
            "--check-remote",
            "--env",
            "dev",
            "--env",
            "qa",
            environ=environ,
        )
        same = cli(
            "plan",
            str(manifest),
            "--check-remote",
            "--env",
            "dev",
            "--env",
            "dev",
            environ=environ,
        )
    assert result.code == 1, result.err
    assert "transform" in result.out and "missing" in result.out
    assert ident("dev", "SAP ECC", "Transform orders") in result.out
    assert "jobs.yaml:30:5: jobs.transform.celonis_name" in result.err
    assert same.code == 0, same.err


def test_a_resume_in_another_environment_is_refused(cli: Cli, manifest: Path) -> None:
    scenario = team_scenario("dev")
    failing = Scenario.from_dict(
        {
            "time_scale": SCALE,
            "pools": [
                {
                    "id": ident("dev", "SAP ECC"),
                    "name": "SAP ECC",
                    "jobs": [
                        {
                            "id": ident("dev", "SAP ECC", "Extract orders"),
                            "name": "Extract orders",
                            "duration": "5s",
                            "outcome": "FAIL",
                        },
                        {
                            "id": ident("dev", "SAP ECC", "Transform orders"),
                            "name": "Transform orders",
                        },
                    ],
                },
                {
                    "id": ident("dev", "Salesforce"),
                    "name": "Salesforce",
                    "jobs": [
                        {"id": ident("dev", "Salesforce", "Load accounts"), "name": "Load accounts"}
                    ],
                },
            ],
        }
    )
    del scenario
    with teams(dev=failing, prod=team_scenario("prod")) as (_, environ):
        first = cli("run", str(manifest), "--env", "dev", environ=environ)
        assert first.code == 1, first.err
        assert "--env dev" in first.out
        again = cli("run", str(manifest), "--env", "prod", "--resume", environ=environ)
    assert again.code == 2
    assert "ran in environment 'dev', not environment 'prod'" in again.err


def test_status_and_logs_look_names_up_in_the_chosen_environment(cli: Cli, manifest: Path) -> None:
    with teams(dev=team_scenario("dev"), qa=team_scenario("qa")) as (_, environ):
        status = cli("status", str(manifest), "--env", "qa", "--format", "json", environ=environ)
        logs = cli("logs", "extract", str(manifest), "--env", "dev", environ=environ)
    assert status.code == 0, status.err
    assert ident("qa", "SAP ECC", "Extract orders") in status.out
    assert ident("dev", "SAP ECC", "Extract orders") not in status.out
    assert logs.code in (0, 1), logs.err
    assert "names_resolved environment=dev" in logs.err


def test_an_ambient_celonis_base_url_does_not_send_an_environment_elsewhere(
    cli: Cli, manifest: Path
) -> None:
    # CI sets CELONIS_BASE_URL for one team; `--env prod` names prod's own URL. Jobs found by
    # name in the other team's Celonis would run there: the run stops before any request.
    with teams(dev=team_scenario("dev"), prod=team_scenario("prod")) as (emus, environ):
        ambient = {**environ, "CELONIS_BASE_URL": emus["dev"].base_url}
        refused = cli("run", str(manifest), "--env", "prod", environ=ambient)
        assert refused.code == 2, refused.err
        assert "$CELONIS_BASE_URL" in refused.err and "environment 'prod' declares" in refused.err
        assert "--base-url" in refused.err
        assert not [e for e in emus["dev"].journal() if e.get("type") == "request"]
        assert not [e for e in emus["prod"].journal() if e.get("type") == "request"]
        # the same URL as the environment's: no conflict
        same = {**environ, "CELONIS_BASE_URL": emus["prod"].base_url + "/"}
        assert cli("plan", str(manifest), "--check-remote", "--env", "prod", environ=same).code == 0
        # --base-url chooses on purpose
        chosen = cli(
            "plan",
            str(manifest),
            "--check-remote",
            "--env",
            "prod",
            "--base-url",
            emus["prod"].base_url,
            environ=ambient,
        )
        assert chosen.code == 0, chosen.err
