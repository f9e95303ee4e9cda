from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from runner.manifest.loader import check_manifest, load_manifest, parse_job_url
from runner.problems import Suggestions, did_you_mean
from runner.schema import load_schema, schema_text
from tests.conftest import JOB_1, JOB_2, POOL_A, POOL_B

Write = Callable[..., Path]

GOOD = f"""
version: 1
connection:
  team: acme
  realm: eu-1
defaults:
  mode: DELTA
  timeout: 1h30m
pools:
  sap: {{id: {POOL_A}, max_parallel: 2}}
jobs:
  extract:
    pool: sap
    id: {JOB_1}
    mode: FULL
  transform:
    url: https://acme.eu-1.celonis.cloud/integration/ui/pools/{POOL_A}/data-configuration/data-jobs?jobId={JOB_2}
    depends_on: [extract]
    poll_interval: 500ms
"""


def messages(path: Path, **env: str) -> list[str]:
    result = check_manifest(path, env, strict_env=True, display="jobs.yaml")
    return [p.render() for p in result.problems]


def test_good_manifest_builds_the_model(write_manifest: Write) -> None:
    m = load_manifest(write_manifest(GOOD), {})
    assert m.connection.url == "https://acme.eu-1.celonis.cloud"
    assert m.pools["sap"].max_parallel == 2
    extract, transform = m.jobs["extract"], m.jobs["transform"]
    assert (extract.mode, extract.timeout, extract.pool_id, extract.job_id) == (
        "FULL",
        5400.0,
        POOL_A,
        JOB_1,
    )
    assert (transform.pool, transform.pool_id, transform.job_id) == ("sap", POOL_A, JOB_2)
    assert transform.mode == "DELTA" and transform.poll_interval == 0.5
    assert transform.depends_on == ("extract",)
    assert len(m.sha256) == 64


def test_unknown_dependency_example_from_the_docs(write_manifest: Write) -> None:
    path = write_manifest(GOOD.replace("depends_on: [extract]", "depends_on: [extrakt]"))
    assert messages(path) == [
        "jobs.yaml:17:18: jobs.transform.depends_on[0]: unknown job 'extrakt' (did you mean 'extract'?)"
    ]


def test_url_pool_must_agree_with_pool(write_manifest: Write) -> None:
    text = GOOD.replace("    depends_on: [extract]", "    pool: crm\n    depends_on: [extract]")
    text = text.replace("jobs:\n", f"  crm: {{id: {POOL_B}}}\njobs:\n")
    assert messages(write_manifest(text)) == [
        f"jobs.yaml:18:11: jobs.transform.pool: pool 'crm' has id {POOL_B}, but the job's url is in pool {POOL_A}; fix the pool, or the url"
    ]


def test_every_problem_at_once_sorted(write_manifest: Write) -> None:
    text = f"""
    version: 2
    pools:
      sap: {{id: not-a-uuid, max_parallel: 0}}
    jobs:
      a: {{pool: sap, id: {JOB_1}, depends_on: [b], mode: full}}
      b: {{pool: sap, id: {JOB_1}, depends_on: [a], timeout: soon}}
      c: {{pool: nope, id: {JOB_2}, depends_on: [c], extra: 1}}
    """
    got = messages(write_manifest(text))
    assert got[:3] == [
        "jobs.yaml:1:10: version: must be 1, got 2",
        "jobs.yaml:3:13: pools.sap.id: must be a UUID like 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11 (copy it from the data job's URL), got 'not-a-uuid'",
        "jobs.yaml:3:39: pools.sap.max_parallel: must be a whole number, at least 1, got 0",
    ]
    assert (
        "jobs.yaml:5:83: jobs.a.mode: must be one of FULL, DELTA, got 'full' (did you mean 'FULL'?)"
        in got
    )
    joined = "\n".join(got)
    assert "jobs.b.timeout: must be a duration" in joined
    assert "jobs.b.id: the same Celonis job as 'a' (line 5)" in joined
    assert "dependency cycle: " in joined and " -> " in joined
    assert "jobs.c.pool: unknown pool 'nope'" in joined
    assert "jobs.c.depends_on[0]: job 'c' cannot depend on itself" in joined
    assert "jobs.c.extra: unknown key 'extra'" in joined
    lines = [int(line.split(":")[1]) for line in got]
    assert lines == sorted(lines)


def test_cycle_is_shown_as_a_path(write_manifest: Write) -> None:
    text = f"""
    version: 1
    pools: {{p: {{id: {POOL_A}}}}}
    jobs:
      a: {{pool: p, id: {JOB_1}, depends_on: [c]}}
      b: {{pool: p, id: {JOB_2}, depends_on: [a]}}
      c: {{pool: p, id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349, depends_on: [b]}}
    """
    [line] = messages(write_manifest(text))
    cycle = line.split("dependency cycle: ")[1].split(";")[0].split(" -> ")
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["a", "b", "c"]


def test_unknown_key_did_you_mean_points_at_the_key(write_manifest: Write) -> None:
    path = write_manifest(GOOD.replace("    mode: FULL", "    mdoe: FULL"))
    assert messages(path) == [
        "jobs.yaml:14:5: jobs.extract.mdoe: unknown key 'mdoe' (did you mean 'mode'?)"
    ]


def test_job_needs_id_or_url(write_manifest: Write) -> None:
    path = write_manifest(GOOD.replace(f"    id: {JOB_1}\n", ""))
    assert messages(path) == [
        "jobs.yaml:12:5: jobs.extract: needs 'id' (with 'pool'), 'url' (the data job page's address)"
        " or 'celonis_name' (with 'pool')"
    ]


def test_env_vars_substitute_and_default(write_manifest: Write) -> None:
    text = GOOD.replace(f"id: {JOB_1}", "id: ${EXTRACT_ID}").replace(
        "team: acme", "team: ${TEAM:-acme}"
    )
    m = load_manifest(write_manifest(text), {"EXTRACT_ID": JOB_1})
    assert m.jobs["extract"].job_id == JOB_1 and m.connection.team == "acme"


def test_unset_env_var_is_an_error_for_run_a_warning_for_validate(write_manifest: Write) -> None:
    path = write_manifest(GOOD.replace(f"id: {JOB_1}", "id: ${EXTRACT_ID}"))
    strict = check_manifest(path, {}, strict_env=True, display="jobs.yaml")
    assert [p.render() for p in strict.problems] == [
        "jobs.yaml:13:9: jobs.extract.id: environment variable EXTRACT_ID is not set (set it, or write ${EXTRACT_ID:-default})"
    ]
    loose = check_manifest(path, {}, strict_env=False, display="jobs.yaml")
    assert [p.severity for p in loose.problems] == ["warning"]
    assert loose.manifest is not None


def test_literal_dollar_brace(write_manifest: Write) -> None:
    text = GOOD.replace(
        "depends_on: [extract]", "depends_on: [extract]\n    description: costs $${PRICE}"
    )
    assert check_manifest(write_manifest(text), {}, strict_env=True).problems == []


def test_key_like_value_in_key_env_is_refused(write_manifest: Write) -> None:
    text = GOOD.replace(
        "  realm: eu-1\n",
        "  realm: eu-1\n  auth: {type: api_key, key_env: eyJhbGciOiJIUzI1NiJ9.abc}\n",
    )
    [line] = messages(write_manifest(text))
    assert "must be the NAME of an environment variable" in line
    assert "connection.auth.key_env" in line


def test_http_base_url_only_for_loopback(write_manifest: Write) -> None:
    text = GOOD.replace("  team: acme\n  realm: eu-1\n", "  base_url: http://acme.example.com\n")
    assert "must use https://" in messages(write_manifest(text))[0]
    text = GOOD.replace("  team: acme\n  realm: eu-1\n", "  base_url: http://127.0.0.1:8080\n")
    assert messages(write_manifest(text)) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"- a\n- b\n", "must be a mapping with 'version', 'pools' and 'jobs', not a list"),
        (b"just text\n", "not a single value ('just text')"),
        (b"version: 1\n\xff\xfe\n", "not valid UTF-8"),
        (b"a: [\n", "YAML syntax error"),
    ],
)
def test_files_that_are_not_manifests(
    write_manifest: Write, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    [problem] = check_manifest(path, {}, strict_env=False).problems
    assert expected in problem.message


def test_parse_job_url() -> None:
    url = f"https://a.eu-1.celonis.cloud/integration/ui/pools/{POOL_A}/data-configuration/data-jobs?jobId={JOB_2}"
    assert parse_job_url(url) == (POOL_A, JOB_2)
    assert parse_job_url(url.replace("jobId", "job")) is None
    assert (
        parse_job_url("ftp://x/integration/ui/pools/a/data-configuration/data-jobs?jobId=b") is None
    )


def test_schema_is_valid_against_its_metaschema_and_documents_every_field() -> None:
    schema = load_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["$id"].startswith("https://")

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                target = prop
                if "$ref" in prop and "title" not in prop:
                    target = schema["$defs"][prop["$ref"].split("/")[-1]]
                for key in ("title", "description", "examples"):
                    assert key in target, f"{where}.{name} has no {key}"
            for key, value in node.items():
                walk(value, f"{where}.{key}")

    walk(schema, "")


def test_schema_loads_through_the_package() -> None:
    # the wheel carries schema/ as runner/schema (pyproject force-include); both load the same text
    repo_copy = (Path(__file__).parent.parent / "schema" / "jobs.schema.json").read_text()
    assert json.loads(schema_text()) == json.loads(repo_copy)


def test_example_jobs_yaml_is_valid() -> None:
    path = Path(__file__).parent.parent / "jobs.yaml"
    result = check_manifest(path, {}, strict_env=True)
    assert result.problems == []
    assert result.manifest is not None and 8 <= len(result.manifest.jobs) <= 12


def test_installed_package_reads_the_schema_it_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a wheel the schema lives in runner/schema (pyproject force-include); the loader reads it there first."""
    import runner.schema as schema_module

    packaged = tmp_path / "runner"
    (packaged / "schema").mkdir(parents=True)
    (packaged / "schema" / "jobs.schema.json").write_text('{"title": "from the package"}')
    monkeypatch.setattr(schema_module.resources, "files", lambda package: packaged)
    assert json.loads(schema_module.schema_text())["title"] == "from the package"


# -- one clear error each (issue 10) -------------------------------------------------------------


def test_same_job_id_in_two_pools_is_one_clear_error(write_manifest: Write) -> None:
    text = f"""
    version: 1
    pools:
      a: {{id: {POOL_A}}}
      b: {{id: {POOL_B}}}
    jobs:
      x: {{pool: a, id: {JOB_1}}}
      y: {{pool: b, id: {JOB_1}}}
    """
    assert messages(write_manifest(text)) == [
        "jobs.yaml:7:20: jobs.y.id: the same data job id as 'x' (line 6), which is in another pool;"
        " a data job belongs to one pool: fix the id or the pool"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.eu-1.celonis.cloud/integration",
        "https://acme.eu-1.celonis.cloud/?team=acme",
        "https://acme.eu-1.celonis.cloud#x",
    ],
)
def test_base_url_with_a_path_or_query_is_refused(write_manifest: Write, url: str) -> None:
    text = GOOD.replace("  team: acme\n  realm: eu-1\n", f"  base_url: '{url}'\n")
    assert messages(write_manifest(text)) == [
        "jobs.yaml:3:13: connection.base_url: must be the team's address only, like "
        "https://acme.eu-1.celonis.cloud: remove the path and query after the host"
    ]
    trailing = GOOD.replace("  team: acme\n  realm: eu-1\n", "  base_url: https://a.b.c/\n")
    assert messages(write_manifest(trailing)) == []


def test_pools_written_as_a_list_is_one_error(write_manifest: Write) -> None:
    text = GOOD.replace(
        f"  sap: {{id: {POOL_A}, max_parallel: 2}}", f"  - sap: {{id: {POOL_A}, max_parallel: 2}}"
    )
    assert messages(write_manifest(text)) == [
        "jobs.yaml:9:3: pools: 'pools' must be a mapping from names to pools, not a list: "
        "write each name as 'name:' under 'pools:', without a '-' before it"
    ]


def test_a_tab_in_the_indentation_says_indent_with_spaces(write_manifest: Write) -> None:
    path = write_manifest("version: 1\npools:\n\tsap: {}\n")
    assert messages(path) == [
        "jobs.yaml:3:1: YAML syntax error: a tab in the indentation; indent with spaces, not tabs"
    ]


# -- inputs that crashed or were accepted wrongly (issue 16) ---------------------------------------

URL = "https://a.eu-1.celonis.cloud/integration/ui/pools/{pool}/data-configuration/data-jobs?jobId={job}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (URL.format(pool=POOL_A, job=f"{JOB_1}&jobId={JOB_2}"), "the url has jobId 2 times"),
        (URL.format(pool=POOL_A, job=JOB_1 + "zz"), "the jobId in the url is not a UUID"),
        (URL.format(pool=POOL_A, job=JOB_1 + "&x=1"), None),
        (
            URL.format(pool="-" * 36, job=JOB_1),
            "the pool id in the url (after /pools/) is not a UUID",
        ),
        (URL.format(pool=POOL_A, job="-" * 36), "the jobId in the url is not a UUID"),
    ],
    ids=["two-job-ids", "trailing-junk", "other-parameter", "dashes-pool", "dashes-job"],
)
def test_job_urls_are_parsed_not_pattern_matched(
    write_manifest: Write, url: str, message: str | None
) -> None:
    text = f"""
    version: 1
    pools:
      sap: {{id: {POOL_A}}}
    jobs:
      a:
        url: "{url}"
    """
    got = messages(write_manifest(text))
    assert got == ([f"jobs.yaml:6:10: jobs.a.url: {message}"] if message else []) or (
        message and len(got) == 1 and got[0].startswith(f"jobs.yaml:6:10: jobs.a.url: {message}")
    ), got


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", ".inf"),
        ("poll_interval", ".nan"),
        ("timeout", "1" + "0" * 400),
        ("max_poll_interval", "'100000h'"),
        ("expected_duration", "-.inf"),
    ],
)
def test_durations_must_be_finite_and_at_most_30_days(
    write_manifest: Write, field: str, value: str
) -> None:
    path = write_manifest(
        GOOD.replace("    mode: FULL\n", f"    mode: FULL\n    {field}: {value}\n")
    )
    [line] = messages(path)
    assert f"jobs.extract.{field}: must be a duration" in line and "30 days" in line, line


def test_unset_variables_in_typed_fields_never_crash_or_turn_true(write_manifest: Write) -> None:
    text = GOOD.replace(
        "    mode: FULL\n", "    mode: FULL\n    timeout: ${T}\n    allow_failure: ${AF}\n"
    )
    text = text.replace("max_parallel: 2", 'max_parallel: "${N}"')
    path = write_manifest(text)
    result = check_manifest(path, {}, strict_env=False, display="jobs.yaml")
    assert [p.render() for p in result.errors] == [
        "jobs.yaml:9:65: pools.sap.max_parallel: ${VAR} is not supported in 'max_parallel': "
        "write a whole number",
        "jobs.yaml:16:20: jobs.extract.allow_failure: ${VAR} is not supported in 'allow_failure': "
        "write true or false",
    ]
    only_timeout = GOOD.replace("    mode: FULL\n", "    mode: FULL\n    timeout: ${T}\n")
    manifest = load_manifest(write_manifest(only_timeout), {}, strict_env=False)
    assert manifest.jobs["extract"].timeout == 5400.0  # the default's 1h30m, not a crash


def test_unreadable_kinds_of_file_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "jobs.yaml"
    os.mkfifo(fifo)
    [problem] = check_manifest(fifo, {}, strict_env=False).problems
    assert "is not a regular file (a pipe or a device?)" in problem.message
    if Path("/dev/zero").exists():
        [problem] = check_manifest(Path("/dev/zero"), {}, strict_env=False, max_bytes=100).problems
        assert "is not a regular file" in problem.message


def test_no_value_from_the_environment_is_ever_shown(write_manifest: Write) -> None:
    secret = "sk-Very-Secret-Value-123"
    text = GOOD.replace(
        "  realm: eu-1\n", "  realm: eu-1\n  auth:\n    key_env: ${CELONIS_API_KEY}\n"
    ).replace("    mode: FULL\n", "    mode: ${CELONIS_API_KEY}\n    timeout: ${CELONIS_API_KEY}\n")
    text = text.replace("depends_on: [extract]", "depends_on: [extract, '${CELONIS_API_KEY}']")
    found = messages(write_manifest(text), CELONIS_API_KEY=secret)
    assert len(found) == 4, found
    assert not any(secret in line for line in found), found
    assert "got the value of ${CELONIS_API_KEY} (not shown)" in found[1]
    pasted = GOOD.replace("  realm: eu-1\n", f"  realm: eu-1\n  auth: {{key_env: {secret}}}\n")
    [line] = messages(write_manifest(pasted))
    assert secret not in line and "got a value that is not a variable name" in line


def test_did_you_mean_over_many_names_is_fast_and_as_good() -> None:
    names = [
        f"{kind}_{pool}_{n:05d}" for n in range(10_000) for kind, pool in [("load", f"p{n % 20}")]
    ]
    unknown = [f"zz{n}_{'q' * (n % 17)}" for n in range(500)]
    started = time.perf_counter()
    known = Suggestions(names)
    assert [known.hint(word) for word in unknown] == [""] * 500
    assert time.perf_counter() - started < 4  # 25 s comparing with every name
    for name in names[::997]:
        typo = name[:3] + "x" + name[4:]
        assert (
            known.hint(typo)
            == did_you_mean(typo, names[:0] + names)
            == f" (did you mean '{name}'?)"
        )


def test_if_running_is_wait_by_default_set_in_defaults_or_a_job(write_manifest: Write) -> None:
    text = GOOD.replace("  timeout: 1h30m\n", "  timeout: 1h30m\n  if_running: fail\n")
    text = text.replace("    mode: FULL\n", "    mode: FULL\n    if_running: adopt\n")
    m = load_manifest(write_manifest(text), {})
    assert (m.jobs["extract"].if_running, m.jobs["transform"].if_running) == ("adopt", "fail")
    assert load_manifest(write_manifest(GOOD), {}).jobs["extract"].if_running == "wait"
    bad = GOOD.replace("    mode: FULL\n", "    mode: FULL\n    if_running: sometimes\n")
    assert messages(write_manifest(bad)) == [
        "jobs.yaml:15:17: jobs.extract.if_running: must be one of wait, adopt, fail, got 'sometimes'"
    ]


def test_a_bad_pool_or_job_name_is_reported_on_its_own_line(write_manifest: Write) -> None:
    """Issue 22 #4: the annotation lands on the bad name, not on the mapping's first key."""
    path = write_manifest(
        f"""
        version: 1
        connection: {{team: acme, realm: eu-1}}
        pools:
          sap: {{id: {POOL_A}}}
          "bad pool!": {{id: {POOL_B}}}
        jobs:
          fine: {{pool: sap, id: {JOB_1}}}
          "bad job!": {{pool: sap, id: {JOB_2}}}
        """
    )
    shown = messages(path)
    assert any(m.startswith("jobs.yaml:5:3: pools.bad pool!: a pool name must") for m in shown)
    assert any(m.startswith("jobs.yaml:8:3: jobs.bad job!: a job name must") for m in shown)


def test_each_wrong_entry_of_an_extractions_mapping_is_one_problem(write_manifest: Write) -> None:
    """Issue 22 #4: one problem per wrong entry, each on its own line."""
    path = write_manifest(
        f"""
        version: 1
        connection: {{team: acme, realm: eu-1}}
        pools:
          sap: {{id: {POOL_A}}}
        jobs:
          a:
            pool: sap
            id: {JOB_1}
            extractions:
              good: [VBAK]
              numbers: [1]
              count: 5
              nested: {{x: 1}}
              also_good: all
        """
    )
    shown = [m for m in messages(path) if "extractions" in m]
    assert [m.split(": ")[0] for m in shown] == [
        "jobs.yaml:11:16",
        "jobs.yaml:12:14",
        "jobs.yaml:13:15",
    ], shown
    assert all("a list of tables or 'all'" in m for m in shown), shown
