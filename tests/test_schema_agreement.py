"""The published schema agrees with `validate`: check-jsonschema (and so VS Code) accepts what
the runner accepts, `${VAR}` included, and both refuse what the runner refuses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.manifest.loader import check_manifest

ROOT = Path(__file__).parent.parent
SCHEMA = ROOT / "schema" / "jobs.schema.json"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
JOB_2 = "5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55"

# ${VAR} in every field where the runner takes one (every text field but the *_env names)
EVERY_VARIABLE = """\
version: 1
connection:
  team: ${CELONIS_TEAM:-acme}
  realm: ${CELONIS_REALM}
  auth:
    type: ${AUTH_TYPE:-oauth}
    client_id_env: CELONIS_CLIENT_ID
    client_secret_env: CELONIS_CLIENT_SECRET
    scope: ${SCOPE:-integration.data-pools}
defaults:
  mode: ${MODE:-DELTA}
  timeout: ${TIMEOUT:-2h}
  poll_interval: ${POLL}
  max_poll_interval: ${MAX_POLL:-1m}
  expected_duration: ${EXPECTED:-10m}
  if_running: ${IF_RUNNING:-wait}
pools:
  sap:
    id: ${SAP_POOL_ID}
    name: ${POOL_NAME:-SAP}
jobs:
  extract:
    pool: ${POOL:-sap}
    id: ${EXTRACT_JOB_ID}
    mode: ${EXTRACT_MODE}
    description: ${DESCRIPTION:-extract} costs $${NOT_A_VARIABLE}
    timeout: ${EXTRACT_TIMEOUT}
    poll_interval: 5s
    max_poll_interval: ${EXTRACT_MAX_POLL}
    expected_duration: ${EXTRACT_EXPECTED}
    if_running: ${EXTRACT_IF_RUNNING:-adopt}
    extractions:
      SAP orders: ${ORDER_TABLES:-all}
    transformations: ${TRANSFORMATIONS:-all}
    data_models: ${MODELS:-none}
  transform:
    url: https://${HOST:-acme.eu-1.celonis.cloud}/integration/ui/pools/${SAP_POOL_ID}/data-configuration/data-jobs?jobId=${TRANSFORM_JOB_ID}
    depends_on: ["${FIRST:-extract}"]
  load:
    url: ${LOAD_URL}
    depends_on: [transform]
    extractions: ${EXTRACTIONS:-none}
    timeout: ${LOAD_MINUTES:-5}m
"""
ENVIRONMENT = {
    "CELONIS_REALM": "eu-1",
    "POLL": "10s",
    "SAP_POOL_ID": POOL,
    "EXTRACT_JOB_ID": JOB,
    "EXTRACT_MODE": "FULL",
    "EXTRACT_TIMEOUT": "45m",
    "EXTRACT_MAX_POLL": "30s",
    "EXTRACT_EXPECTED": "5m",
    "TRANSFORM_JOB_ID": JOB_2,
    "LOAD_URL": f"https://acme.eu-1.celonis.cloud/integration/ui/pools/{POOL}"
    "/data-configuration/data-jobs?jobId=0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349",
}


def manifests_in_the_repository(tmp_path: Path) -> list[Path]:
    """jobs.yaml, the manifests under examples/ and docs/, and every yaml block of README.md
    and docs/*.md that is a manifest (has top-level 'version:' and 'jobs:')."""
    files = [ROOT / "jobs.yaml"]
    for folder in (ROOT / "examples", ROOT / "docs"):
        for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")]):
            if _is_manifest(path.read_text(encoding="utf-8")):
                files.append(path)
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"^```ya?ml\n(.*?)^```", doc.read_text(encoding="utf-8"), re.M | re.S)
        for number, block in enumerate(blocks):
            if _is_manifest(block):
                path = tmp_path / f"{doc.stem}-{number}.yaml"
                path.write_text(block, encoding="utf-8")
                files.append(path)
    return files


def _is_manifest(text: str) -> bool:
    return bool(re.search(r"^version:", text, re.M) and re.search(r"^jobs:", text, re.M))


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    if not CHECK_JSONSCHEMA.exists() and shutil.which("check-jsonschema") is None:
        pytest.fail(
            "check-jsonschema is missing: install the test extra (pip install -e '.[test]')"
        )
    program = str(CHECK_JSONSCHEMA) if CHECK_JSONSCHEMA.exists() else "check-jsonschema"
    return subprocess.run(
        [program, "--schemafile", str(SCHEMA), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_manifest_of_the_repository_and_the_docs_passes_both(tmp_path: Path) -> None:
    variables = tmp_path / "every-variable.yaml"
    variables.write_text(EVERY_VARIABLE, encoding="utf-8")
    files = [*manifests_in_the_repository(tmp_path), variables]
    assert len(files) >= 3, files  # jobs.yaml, the README's example, the ${VAR} manifest
    result = check_jsonschema(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        checked = check_manifest(path, ENVIRONMENT, strict_env=True)
        assert checked.problems == [], (path, [p.render() for p in checked.problems])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"    id: {POOL[:-1]}", "must be a UUID"),
        (
            "    max_parallel: ${N}",
            "${VAR} is not supported in 'max_parallel': write a whole number",
        ),
        (
            "    allow_failure: ${AF}",
            "${VAR} is not supported in 'allow_failure': write true or false",
        ),
        ("    key_env: ${CELONIS_API_KEY}", "give the NAME of the variable, without ${...}"),
        ("    timeout: 31d", "must be a duration more than 0 and at most 30 days"),
        ("    timeout: 2592001", "must be a duration more than 0 and at most 30 days"),
        ("    mode: full", "must be one of FULL, DELTA"),
        ("    timeout: 0s", "must be a duration more than 0"),
        ("    poll_interval: 0", "must be a duration more than 0"),
        ("    id: ${X:-not-a-uuid}", "must be a UUID"),
        (f"    id: xx-${{S:-{POOL}}}-yy", "must be a UUID"),
        ("    if_running: ${IF:-sometimes}", "must be one of wait, adopt, fail"),
        ("    transformations: ${T:-some}", "must be a list of task names"),
    ],
    ids=[
        "uuid",
        "max_parallel",
        "allow_failure",
        "key_env",
        "unit",
        "too-long",
        "mode",
        "zero",
        "zero-number",
        "uuid-default",
        "unanchored",
        "if_running-default",
        "task-names-default",
    ],
)
def test_what_validate_refuses_the_schema_refuses(tmp_path: Path, line: str, message: str) -> None:
    field = line.split(":")[0].strip()
    section = {"id": "pool", "max_parallel": "pool", "key_env": "auth"}.get(field, "job")
    pool = f"    id: {POOL}\n" + (line + "\n" if section == "pool" and field != "id" else "")
    if field == "id":
        pool = line + "\n"
    auth = "  auth:\n" + line.replace("    ", "    ", 1) + "\n" if section == "auth" else ""
    job = f"    pool: sap\n    id: {JOB}\n" + (line + "\n" if section == "job" else "")
    text = (
        f"version: 1\nconnection:\n  team: acme\n  realm: eu-1\n{auth}"
        f"pools:\n  sap:\n{pool}jobs:\n  a:\n{job}"
    )
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    problems = check_manifest(
        path, {"N": "2", "AF": "true", "CELONIS_API_KEY": "k"}, strict_env=True
    )
    assert [message in p.message for p in problems.problems] == [True], problems.problems
    assert check_jsonschema(path).returncode == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("acme.eu-1.celonis.cloud", "not a URL"),
        ("http://acme.eu-1.celonis.cloud", "must use https://"),
        ("https://acme.eu-1.celonis.cloud/integration", "remove the path"),
        ("https://user@acme.eu-1.celonis.cloud", "must be the team's address only"),
        ("https://user:s3cretpw@acme.eu-1.celonis.cloud", "with no user or password"),
    ],
)
@pytest.mark.parametrize(
    "connection",
    [
        "connection:\n  base_url: {url}\n",
        "connection: {{team: acme, realm: eu-1}}\n"
        "environments:\n  dev:\n    connection:\n      base_url: {url}\n",
    ],
    ids=["top-level", "environment"],
)
def test_a_base_url_validate_refuses_the_schema_refuses(
    tmp_path: Path, url: str, message: str, connection: str
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        f"version: 1\n{connection.format(url=url)}"
        f"pools:\n  sap:\n    id: {POOL}\njobs:\n  a:\n    pool: sap\n    id: {JOB}\n",
        encoding="utf-8",
    )
    problems = check_manifest(path, {}, strict_env=True).problems
    assert [message in p.message for p in problems] == [True], problems
    assert "s3cretpw" not in problems[0].message  # a password in the URL is never shown
    assert check_jsonschema(path).returncode == 1
