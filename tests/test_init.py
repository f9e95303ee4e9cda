"""`celonis-runner init`: keys from Celonis names, the rendered manifest, and the command against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.clock import ScaledClock
from runner.commands.init import write_manifest
from runner.emulator import Emulator, Scenario
from runner.errors import RunnerError, UsageError
from runner.manifest.envsubst import substitute
from runner.manifest.loader import check_manifest
from runner.manifest.naming import VALID_KEY, base_key, snake_case, unique_keys
from runner.manifest.writer import (
    RemoteJob,
    RemotePool,
    Source,
    example_manifest,
    name_pools,
    render,
    yaml_string,
)
from tests.conftest import CliResult
from tests.e2e import job_uuid, pool_uuid

Cli = Callable[..., CliResult]

# Celonis names as a team may have them: repeats after normalisation, characters YAML, the
# schema or ${VAR} substitution would refuse, names without a letter in ASCII.
ODD_NAMES = [
    'Kosten ${region}: "Q1" # not a comment',
    "line one\nline two",
    "yes",
    "2024 Reload",
    "日本語",
    "🚀 Launch",
    "tab\there & 'quotes'",
    "null",
    "- dash: colon",
    "ends with space ",
    "\u2028 separator \x85 next-line \x07 bell",
]


def _fail(path: object, message: str) -> None:
    raise AssertionError(f"{path}: {message}")


def _loaded(text: str) -> Any:
    """What the runner reads from `text`: YAML, then ${VAR} substitution (no variable set)."""
    return substitute(yaml.safe_load(text), {}, _fail, _fail)


# -- keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("SAP ECC (Production)", "sap_ecc_production"),
        ("LoadOrders", "load_orders"),
        ("HTTPServer Logs", "http_server_logs"),
        ("Load O2C data model", "load_o2c_data_model"),
        ("S4HANA Extract", "s4hana_extract"),
        ("Übersicht Aufträge", "ubersicht_auftrage"),
        ("extract--orders__v2", "extract_orders_v2"),
        ("日本語", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_snake_case(name: str | None, key: str) -> None:
    assert snake_case(name) == key


def test_base_key_is_always_a_valid_key() -> None:
    assert base_key("2024 Reload", "job", job_uuid("a")) == "job_2024_reload"
    assert base_key("yes", "job", job_uuid("a")) == "job_yes"
    assert base_key("日本語", "pool", "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77") == "pool_7a1d9e40"
    assert base_key("x" * 200, "job", job_uuid("a")) == "x" * 60
    for name in [*ODD_NAMES, None, "", "___", "9"]:
        key = base_key(name, "job", job_uuid(str(name)))
        assert VALID_KEY.match(key), (name, key)


def test_unique_keys_suffix_repeats_and_avoid_taken() -> None:
    assert unique_keys(["a", "b", "a", "a"]) == ["a", "b", "a_2", "a_3"]
    assert unique_keys(["a", "a_2", "a"]) == ["a", "a_2", "a_3"]
    assert unique_keys(["a"], taken={"a"}) == ["a_2"]


def test_names_repeated_across_pools_are_qualified_and_repeats_in_a_pool_suffixed() -> None:
    sap = RemotePool(
        pool_uuid("sap"),
        "SAP",
        (
            RemoteJob(job_uuid("1"), "Extract Orders"),
            RemoteJob(job_uuid("2"), "extract-orders"),
            RemoteJob(job_uuid("3"), "Transform"),
        ),
    )
    crm = RemotePool(pool_uuid("crm"), "CRM", (RemoteJob(job_uuid("4"), "Extract Orders"),))
    named = name_pools([sap, crm])
    keys = {job.job.id: (job.key, job.renamed) for pool in named for job in pool.jobs}
    assert keys == {
        job_uuid("1"): ("sap_extract_orders", True),
        job_uuid("2"): ("sap_extract_orders_2", True),
        job_uuid("3"): ("transform", False),
        job_uuid("4"): ("crm_extract_orders", True),
    }
    # the same team listed in another order gives the same names
    again = name_pools([crm, RemotePool(sap.id, sap.name, tuple(reversed(sap.jobs)))])
    assert {job.job.id: job.key for pool in again for job in pool.jobs} == {
        k: v[0] for k, v in keys.items()
    }


def test_two_pools_with_one_name_get_two_keys() -> None:
    named = name_pools([RemotePool(pool_uuid("a"), "Prod"), RemotePool(pool_uuid("b"), "prod")])
    assert sorted(pool.key for pool in named) == ["prod", "prod_2"]


# -- YAML text ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [*ODD_NAMES, "plain words", "a/b (c)", "on", "~", "", "$${x}"])
def test_yaml_string_loads_back_as_the_text_after_substitution(text: str) -> None:
    loaded = _loaded(f"key: {yaml_string(text)}\n")
    assert loaded == {"key": text}


def test_yaml_string_replaces_a_lone_surrogate() -> None:
    quoted = yaml_string("a\ud800b")
    assert _loaded(f"key: {quoted}\n") == {"key": "a\ufffdb"}


def test_rendered_manifest_validates_keeps_names_and_invents_no_dependency() -> None:
    pools = [
        RemotePool(
            pool_uuid(name),
            name,
            (RemoteJob(job_uuid(name), name), RemoteJob(job_uuid(name + "2"), name)),
        )
        for name in ODD_NAMES
    ]
    pools.append(RemotePool(pool_uuid("locked"), "Locked", unreadable="no permission"))
    text = render(
        Source("https://acme.eu-1.celonis.cloud", team="acme", realm="eu-1"), name_pools(pools)
    )
    data = _loaded(text)
    assert {p["name"] for p in data["pools"].values()} == set(ODD_NAMES)
    descriptions = [job["description"] for job in data["jobs"].values()]
    assert sorted(descriptions) == sorted(ODD_NAMES * 2)
    assert all("depends_on" not in job for job in data["jobs"].values())
    assert "Locked" not in {p.get("name") for p in data["pools"].values()}
    assert "#   Locked (" in text and "no permission" in text
    assert text.startswith("# yaml-language-server: $schema=jobs.schema.json\n")
    assert "depends_on: [other_job" in text  # where to add them
    assert data["connection"] == {
        "team": "acme",
        "realm": "eu-1",
        "auth": {"type": "api_key", "key_env": "CELONIS_API_KEY"},
    }
    # every name, even with line breaks, stays inside its comment
    for line in text.splitlines():
        assert line == "" or line.lstrip().startswith("#") or ":" in line, line


def test_rendered_manifest_passes_the_manifest_checks(tmp_path: Path) -> None:
    pools = [RemotePool(pool_uuid(n), n, (RemoteJob(job_uuid(n), n),)) for n in ODD_NAMES]
    path = tmp_path / "jobs.yaml"
    path.write_text(render(Source("x", auth_type="oauth"), name_pools(pools)), encoding="utf-8")
    result = check_manifest(path, {}, strict_env=True)
    assert result.problems == []
    assert result.manifest is not None
    assert result.manifest.connection.auth.type == "oauth"
    assert {job.job_id for job in result.manifest.jobs.values()} == {job_uuid(n) for n in ODD_NAMES}


def test_example_manifest_validates(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(example_manifest(), encoding="utf-8")
    result = check_manifest(path, {}, strict_env=True)
    assert result.problems == []


def test_write_manifest_never_replaces_a_file_without_force(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("mine\n")
    with pytest.raises(UsageError, match="already exists"):
        write_manifest(path, example_manifest(), force=False)
    assert path.read_text() == "mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["jobs.yaml"]  # no temporary file left
    write_manifest(path, example_manifest(), force=True)
    assert path.read_text() == example_manifest()


def test_write_manifest_refuses_text_that_does_not_validate(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    with pytest.raises(RunnerError, match="make no valid manifest") as raised:
        write_manifest(path, "version: 1\npools: {}\njobs: {}\n", force=False)
    assert raised.value.exit_code == 3
    assert not path.exists()


# -- the command -------------------------------------------------------------------


def _team() -> dict[str, Any]:
    """A team whose names collide after normalisation and hold odd characters."""

    def jobs(pool: str, *names: str) -> list[dict[str, Any]]:
        return [{"id": job_uuid(f"{pool}:{n}"), "name": n, "duration": "5m"} for n in names]

    return {
        "time_scale": 3000,
        "queued_for": "5s",
        "forbidden_pools": [pool_uuid("locked")],
        "pools": [
            {
                "id": pool_uuid("sap"),
                "name": "SAP ECC (Production)",
                "jobs": jobs(
                    "sap", "Extract Orders", "extract-orders", 'Kosten ${region}: "Q1" # x'
                ),
            },
            {
                "id": pool_uuid("jp"),
                "name": "日本語",
                "jobs": jobs("jp", "Extract Orders", "yes", "2024 Reload"),
            },
            {"id": pool_uuid("empty"), "name": "Empty"},
            {"id": pool_uuid("locked"), "name": "Locked"},
        ],
    }


def _scenario(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "team.scenario.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_init_from_the_emulator_validates_plans_and_runs(cli: Cli, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, _team())
    out = tmp_path / "team.yaml"
    result = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 0, result.err
    assert f"Wrote {out}: 2 data pools, 6 data jobs." in result.out
    assert "left out pool 'Empty'" in result.out and "no data jobs" in result.out
    assert "left out pool 'Locked'" in result.out and "no permission" in result.out
    assert f"celonis-runner validate {out}" in result.out
    assert f"celonis-runner run {out} --emulator --scenario {scenario}" in result.out

    checked = check_manifest(out, {}, strict_env=True)
    assert checked.problems == []
    assert checked.manifest is not None
    assert sorted(checked.manifest.jobs) == [
        "job_2024_reload",
        "job_yes",
        "kosten_region_q1_x",
        f"pool_{pool_uuid('jp')[:8]}_extract_orders",
        "sap_ecc_production_extract_orders",
        "sap_ecc_production_extract_orders_2",
    ]
    data = _loaded(out.read_text(encoding="utf-8"))
    assert {p["name"] for p in data["pools"].values()} == {"SAP ECC (Production)", "日本語"}
    assert 'Kosten ${region}: "Q1" # x' in {j["description"] for j in data["jobs"].values()}

    assert cli("validate", str(out)).code == 0
    plan = cli("plan", str(out), "--format", "json")
    assert plan.code == 0, plan.err
    assert len(json.loads(plan.out)["jobs"]) == 6
    run = cli("run", str(out), "--emulator", "--scenario", str(scenario))
    assert run.code == 0, run.err
    assert "6 succeeded" in run.out


def test_init_never_overwrites_without_force(cli: Cli, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, _team())
    out = tmp_path / "jobs.yaml"
    out.write_text("# mine\n")
    result = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 2
    assert "already exists: pass --force to overwrite it" in result.err
    assert out.read_text() == "# mine\n"
    forced = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out), "--force")
    assert forced.code == 0, forced.err
    assert check_manifest(out, {}, strict_env=True).problems == []


def test_init_pool_selects_by_name_or_id(cli: Cli, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, _team())
    out = tmp_path / "jobs.yaml"
    result = cli(
        "init", "--emulator", "--scenario", str(scenario), "--out", str(out),
        "--pool", "sap ecc (production)", "--pool", pool_uuid("jp").upper(),
    )  # fmt: skip
    assert result.code == 0, result.err
    manifest = check_manifest(out, {}, strict_env=True).manifest
    assert manifest is not None
    assert {p.pool_id for p in manifest.pools.values()} == {pool_uuid("sap"), pool_uuid("jp")}
    only = cli(
        "init",
        "--emulator",
        "--scenario",
        str(scenario),
        "--out",
        str(tmp_path / "b.yaml"),
        "--pool",
        "sap_ecc_production",
    )
    assert only.code == 0, only.err
    assert "1 data pool, 3 data jobs" in only.out


def test_init_pool_that_matches_nothing_says_what_exists(cli: Cli, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, _team())
    out = tmp_path / "jobs.yaml"
    result = cli(
        "init", "--emulator", "--scenario", str(scenario), "--out", str(out), "--pool", "Emptty"
    )
    assert result.code == 2
    assert "--pool 'Emptty' matches no data pool (did you mean 'Empty'?)" in result.err
    assert not out.exists()


def test_init_of_an_empty_team_says_what_to_check(cli: Cli, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, {"time_scale": 3000})
    out = tmp_path / "jobs.yaml"
    result = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 2
    assert "no data pools visible" in result.err
    assert "permission on the data pools" in result.err
    assert not out.exists()


def test_init_of_pools_without_jobs_lists_why(cli: Cli, tmp_path: Path) -> None:
    team = _team()
    team["pools"] = team["pools"][2:]
    scenario = _scenario(tmp_path, team)
    out = tmp_path / "jobs.yaml"
    result = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 2
    assert "none of the 2 data pool(s)" in result.err
    assert "Empty (" in result.err and "Locked (" in result.err and "no permission" in result.err
    assert not out.exists()


def test_init_against_a_base_url_keeps_the_connection(cli: Cli, tmp_path: Path) -> None:
    scenario = Scenario.from_dict(_team())
    with Emulator(scenario, clock=ScaledClock(3000), api_keys=["k-secret-123456"]) as emu:
        out = tmp_path / "jobs.yaml"
        env = {"CELONIS_API_KEY": "k-secret-123456"}
        result = cli("init", "--base-url", emu.base_url, "--out", str(out), environ=env)
        assert result.code == 0, result.err
        text = out.read_text(encoding="utf-8")
        assert f'base_url: "{emu.base_url}"' in text
        assert "k-secret-123456" not in text + result.out + result.err
        status = cli("status", str(out), environ=env)
        assert status.code == 0, status.err
        refused = cli(
            "init", "--base-url", emu.base_url, "--out", str(tmp_path / "x.yaml"),
            environ={"CELONIS_API_KEY": "wrong-key-abcdef"},
        )  # fmt: skip
        assert refused.code == 3
        assert not (tmp_path / "x.yaml").exists()


def test_init_needs_a_url_and_credentials(cli: Cli, tmp_path: Path) -> None:
    out = str(tmp_path / "jobs.yaml")
    no_url = cli("init", "--out", out, environ={"CELONIS_API_KEY": "k"})
    assert no_url.code == 2 and "init needs your team's URL" in no_url.err
    no_key = cli("init", "--out", out, "--base-url", "https://acme.eu-1.celonis.cloud")
    assert no_key.code == 2 and "no credentials: set $CELONIS_API_KEY" in no_key.err


def test_init_example_makes_no_api_call(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "jobs.yaml"
    result = cli("init", "--example", "--out", str(out), environ={})
    assert result.code == 0, result.err
    assert "starter manifest" in result.out
    assert check_manifest(out, {}, strict_env=True).problems == []
    again = cli("init", "--example", "--out", str(out), environ={})
    assert again.code == 2


def test_init_modeline_points_at_a_schema_beside_the_file(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "jobs.schema.json").write_text("{}")
    out = tmp_path / "jobs.yaml"
    result = cli("init", "--example", "--out", str(out), environ={})
    assert result.code == 0
    assert out.read_text().startswith("# yaml-language-server: $schema=schema/jobs.schema.json\n")
    assert "celonis-runner schema >" not in result.out


def test_init_where_the_file_cannot_be_written_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("init", "--example", "--out", str(blocker / "jobs.yaml"), environ={})
    assert result.code == 2
    assert f"cannot write {blocker / 'jobs.yaml'}" in result.err
    assert "internal error" not in result.err


def test_init_emulator_needs_a_scenario(cli: Cli, tmp_path: Path) -> None:
    result = cli("init", "--emulator", "--out", str(tmp_path / "jobs.yaml"), environ={})
    assert result.code == 2
    assert "init --emulator needs --scenario FILE" in result.err


def test_init_writes_no_key_that_a_name_holds(cli: Cli, tmp_path: Path) -> None:
    """Issue 25 (3): tenant names that contain the key went into jobs.yaml and stdout as they
    were; a key set with spaces around it is redacted as it is sent (stripped) too."""
    key = 'key-"Wq7\\Lp3Zx9Rm'
    team = _team()
    team["pools"][0]["name"] = f"SAP {key} prod"
    team["pools"][0]["jobs"][0]["name"] = f"Extract {json.dumps(key)} orders"
    team["pools"][1]["jobs"][0]["name"] = f"Extract {key}"
    scenario = _scenario(tmp_path, team)
    out = tmp_path / "team.yaml"
    result = cli(
        "init",
        "--emulator",
        "--scenario",
        str(scenario),
        "--out",
        str(out),
        environ={"CELONIS_API_KEY": f" {key}\n"},
    )
    assert result.code == 0, result.err
    written = out.read_text() + result.out + result.err
    assert "SAP *** prod" in out.read_text()
    assert "Wq7" not in written


def test_ten_thousand_jobs_of_one_name_are_named_in_linear_time() -> None:
    """Issue 25 (11): init with 10,000 jobs of one name took 9.5 s (1.5 s for distinct names):
    each repeat tried every suffix before its own."""
    import time

    jobs = tuple(RemoteJob(job_uuid(f"same:{i}"), "Extract Orders") for i in range(10_000))
    started = time.perf_counter()
    [named] = name_pools([RemotePool(pool_uuid("sap"), "SAP", jobs)])
    assert time.perf_counter() - started < 1.0
    keys = [job.key for job in named.jobs]
    assert len(set(keys)) == 10_000 and keys[:3] == [
        "extract_orders",
        *(f"extract_orders_{n}" for n in (2, 3)),
    ]
    assert unique_keys(["a", "a_2", "a", "a"]) == ["a", "a_2", "a_3", "a_4"]


def test_init_against_an_odd_tenant_writes_what_can_be_written(cli: Cli, tmp_path: Path) -> None:
    """Issue 25 (7): a tenant listing a job twice, one job id in two pools, a pool twice, a
    non-UUID id or an id with a line break ended in `internal error: RuntimeError: the
    manifest init rendered does not validate` (exit 3). What can be written is written, and
    what was left out is said."""
    pools = [
        {"id": pool_uuid("sap"), "name": "SAP"},
        {"id": pool_uuid("crm"), "name": "CRM"},
        {"id": pool_uuid("sap").upper(), "name": "SAP again"},
        {"id": "not-a-uuid", "name": "Odd pool"},
        {"id": pool_uuid("nl") + "\n::error::x", "name": "Broken pool"},
    ]
    jobs = {
        pool_uuid("sap"): [
            {"id": job_uuid("a"), "name": "Extract"},
            {"id": job_uuid("a"), "name": "Extract"},
            {"id": "1234", "name": "Short id"},
            {"id": job_uuid("b") + "\n", "name": "Line break"},
        ],
        pool_uuid("crm"): [
            {"id": job_uuid("a"), "name": "Extract"},
            {"id": job_uuid("c"), "name": "Load"},
        ],
    }
    served = _tenant(pools, jobs)
    with served as base_url:
        out = tmp_path / "team.yaml"
        result = cli(
            "init", "--base-url", base_url, "--out", str(out), environ={"CELONIS_API_KEY": "k" * 20}
        )
    assert result.code == 0, result.err
    loaded = check_manifest(out, {}, strict_env=True)
    assert not loaded.errors
    text = out.read_text()
    assert text.count(job_uuid("a")) == 1 and job_uuid("c") in text
    for said in ("not-a-uuid", "1234", "listed twice", job_uuid("a")):
        assert said in result.err, result.err
    assert not [
        x for x in result.out.splitlines() + result.err.splitlines() if x.lstrip().startswith("::")
    ]


def _tenant(pools: list[dict[str, str]], jobs: dict[str, list[dict[str, str]]]) -> Any:
    """A local server answering the pool list and each pool's job list as given."""
    import http.server
    import urllib.parse

    from tests.test_api_answers import answer, local_server

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        if path == "/integration/api/pools":
            return answer(200, pools)(h)
        pool_id = path.removeprefix("/integration/api/pools/").removesuffix("/jobs")
        listed = [{**job, "dataPoolId": pool_id} for job in jobs.get(pool_id, [])]
        return answer(200, listed)(h)

    return local_server(handle)


def test_init_by_name_writes_celonis_names_that_run_in_the_team(cli: Cli, tmp_path: Path) -> None:
    # Issue 23: pools and jobs by their Celonis names, ids only where a name picks no single
    # one (two jobs named "Extract Orders" in one pool); the file runs against the team.
    team = _team()
    sap = team["pools"][0]["jobs"]
    sap.append({**sap[0], "id": job_uuid("sap:second extract")})  # a second "Extract Orders"
    scenario = _scenario(tmp_path, team)
    out = tmp_path / "team.yaml"
    result = cli("init", "--by-name", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 0, result.err
    data = _loaded(out.read_text(encoding="utf-8"))
    pools = {p.get("celonis_name") for p in data["pools"].values()}
    assert pools == {"SAP ECC (Production)", "日本語"}
    assert not any("id" in p for p in data["pools"].values())
    by_name = {j["celonis_name"] for j in data["jobs"].values() if "celonis_name" in j}
    by_id = [j for j in data["jobs"].values() if "id" in j]
    assert by_name == {
        'Kosten ${region}: "Q1" # x',
        "extract-orders",
        "yes",
        "2024 Reload",
        "Extract Orders",
    }
    assert len(by_id) == 2  # the two "Extract Orders" of one pool: by id
    assert cli("validate", str(out)).code == 0
    run = cli("run", str(out), "--emulator", "--scenario", str(scenario))
    assert run.code == 0, run.err
    assert "7 succeeded" in run.out


@pytest.mark.parametrize("example", [True, False])
def test_init_writes_the_schema_its_modeline_names_beside_the_manifest(
    cli: Cli, tmp_path: Path, example: bool
) -> None:
    # Issue 22 #5: outside this repository the modeline named a file nobody wrote.
    out = tmp_path / "elsewhere" / "jobs.yaml"
    out.parent.mkdir()
    if example:
        result = cli("init", "--example", "--out", str(out))
    else:
        scenario = _scenario(tmp_path, _team())
        result = cli("init", "--emulator", "--scenario", str(scenario), "--out", str(out))
    assert result.code == 0, result.err
    assert "# yaml-language-server: $schema=jobs.schema.json" in out.read_text(encoding="utf-8")
    schema = out.parent / "jobs.schema.json"
    assert schema.read_text(encoding="utf-8") == cli("schema").out
    again = cli("init", "--example", "--out", str(out), "--force")
    assert again.code == 0 and "Wrote" in again.out and str(schema) not in again.out  # kept


def test_init_by_name_with_env_pairs_writes_environments(cli: Cli, tmp_path: Path) -> None:
    # Issue 23: `init --by-name --env NAME=URL ...` writes one entry of environments: a pair,
    # each with its own connection and key variable; --env picks it afterwards.
    scenario = _scenario(tmp_path, _team())
    out = tmp_path / "team.yaml"
    result = cli(
        "init",
        "--by-name",
        "--emulator",
        "--scenario",
        str(scenario),
        "--out",
        str(out),
        "--env",
        "dev=http://127.0.0.1:8091",
        "--env",
        "prod-eu=https://acme.eu-1.celonis.cloud",
    )
    assert result.code == 0, result.err
    data = _loaded(out.read_text(encoding="utf-8"))
    assert data["environments"] == {
        "dev": {
            "connection": {
                "base_url": "http://127.0.0.1:8091",
                "auth": {"type": "api_key", "key_env": "DEV_API_KEY"},
            }
        },
        "prod-eu": {
            "connection": {
                "team": "acme",
                "realm": "eu-1",
                "auth": {"type": "api_key", "key_env": "PROD_EU_API_KEY"},
            }
        },
    }
    assert cli("validate", str(out)).code == 0
    from runner.manifest.loader import load_manifest

    prod = load_manifest(out, {}, environment="prod-eu")
    assert prod.connection.auth.key_env == "PROD_EU_API_KEY"
    bad = cli(
        "init",
        "--emulator",
        "--scenario",
        str(scenario),
        "--out",
        str(tmp_path / "x.yaml"),
        "--env",
        "dev=http://127.0.0.1:8091",
    )
    assert bad.code == 2 and "--env NAME=URL needs --by-name" in bad.err
    bad = cli(
        "init",
        "--by-name",
        "--emulator",
        "--scenario",
        str(scenario),
        "--out",
        str(tmp_path / "y.yaml"),
        "--env",
        "dev",
    )
    assert bad.code == 2 and "write NAME=URL" in bad.err
