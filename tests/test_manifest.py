from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from runner.manifest.loader import check_manifest, load_manifest, parse_job_url
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
        "jobs.yaml:12:5: jobs.extract: needs 'id' (with 'pool') or 'url' (the data job page's address)"
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
