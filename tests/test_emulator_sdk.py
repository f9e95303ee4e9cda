"""`celonis-runner emulator --tls` serves the whole PyCelonis data-job sequence over HTTPS.

PyCelonis is not on the package registries, so these tests make its requests
with plain `requests` and check every answer against the fields PyCelonis
reads (/work/shared/pycelonis-calls.md, written up in docs/celonis-api.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_fixtures import POOL

KEY = "sdk-test-key"
SAP = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
SCALE = 300
REPO = Path(__file__).resolve().parent.parent

SCENARIO = f"""
pools:
  - id: {POOL}
    name: SAP ECC
    jobs:
      - id: {SAP}
        name: Refresh orders
        tasks:
          - {{name: SAP orders, type: extraction, tables: [VBAK, VBAP], duration: 30s}}
          - name: Create O2C activities
            type: transformation
            duration: 30s
            outcomes: [SUCCESS, FAIL, SUCCESS]
            message: "ORA-00942: table or view does not exist"
          - {{name: O2C, type: data_model_load, tables: [VBAK], duration: 30s}}
"""


class Emu:
    def __init__(self, base_url: str, ca: Path, journal: Path) -> None:
        self.base_url = base_url
        self.ca = ca
        self.journal_path = journal
        self.session = requests.Session()
        # what REQUESTS_CA_BUNDLE does; the machine's own REQUESTS_CA_BUNDLE would win over it
        self.session.trust_env = False
        self.session.verify = str(ca)
        self.session.headers["Authorization"] = f"Bearer {KEY}"  # USER_KEY

    def get(self, path: str, **params: str) -> Any:
        response = self.session.get(self.base_url + path, params=params, timeout=5)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=5)

    def journal(self) -> list[dict[str, Any]]:
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emu]:
    pytest.importorskip("cryptography", reason="emulator --tls needs celonis-runner[tls]")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    env = {**os.environ, "CELONIS_API_KEY": KEY}
    command = [sys.executable, "-m", "runner", "emulator", "--tls", "--port", "0"]
    command += ["--scenario", str(scenario), "--journal", str(journal)]
    command += ["--time-scale", str(SCALE)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        text = ""
        while "certificate:" not in text and process.poll() is None:
            text += process.stdout.readline()
        url = re.search(r"listening on (https://\S+)", text)
        cert = re.search(r"certificate: (\S+?);", text)
        assert url and cert, text + (process.stderr.read() if process.poll() is not None else "")
        assert f"SSL_CERT_FILE={cert.group(1)}" in text
        assert f"REQUESTS_CA_BUNDLE={cert.group(1)}" in text
        ca = Path(cert.group(1))
        assert ca.parent == journal.parent  # written next to the journal
        yield Emu(url.group(1), ca, journal)
    finally:
        process.terminate()
        process.wait(timeout=10)


def has(obj: Any, required: dict[str, type | tuple[type, ...]], read: tuple[str, ...] = ()) -> None:
    """`obj` is a JSON object with `required` fields of these types, and the `read` fields."""
    assert isinstance(obj, dict), obj
    for name, kind in required.items():
        assert isinstance(obj.get(name), kind), (name, obj)
    missing = [name for name in read if name not in obj]
    assert missing == [], (missing, obj)


ITEM = ("id", "poolId", "executionId", "jobId", "taskId", "name", "status", "startDate")
ITEM += ("endDate", "type", "mode", "executionOrder")


def wait_until_done(emu: Emu) -> list[str]:
    """PyCelonis' wait: poll logs/status while QUEUED or RUNNING; every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        entries = emu.get(f"/integration/api/pools/{POOL}/logs/status")
        for entry in entries:
            has(entry, {"jobId": str}, ("status",))
        [status] = [e["status"] for e in entries if e["jobId"] == SAP]
        seen.append(status)
        if status not in ("QUEUED", "RUNNING"):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"still running after 20 s: {seen[-3:]}")


def execute(emu: Emu, mode: str) -> None:
    body = {
        "poolId": POOL,
        "jobId": SAP,
        "mode": mode,
        "executeOnlySubsetOfTransformations": False,
        "transformations": [],
        "executeOnlySubsetOfExtractions": False,
        "extractions": [],
        "loadOnlySubsetOfDataModels": False,
        "dataModels": [],
    }
    response = emu.post(f"/integration/api/pools/{POOL}/jobs/{SAP}/execute", body)
    assert response.status_code == 200, response.text


def test_untrusted_clients_are_refused_and_trusted_ones_connect(emu: Emu) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(emu.base_url + "/api/cloud", timeout=5, verify=True)
    # the certificate names 127.0.0.1 and localhost
    port = emu.base_url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "localhost"):
        answer = emu.session.get(f"https://{host}:{port}/api/cloud", timeout=5)
        assert answer.status_code == 200
    # PyCelonis' key type probe: AppKey first, then Bearer on 401
    probe = requests.get(
        emu.base_url + "/api/cloud", headers={"Authorization": f"AppKey {KEY}"}, verify=str(emu.ca)
    )
    assert probe.status_code == 401


def test_the_pycelonis_sequence_over_https(emu: Emu) -> None:
    check_connect(emu)
    check_pools_and_jobs(emu)
    tasks = check_tasks(emu)
    check_runs(emu, tasks)


def check_connect(emu: Emu) -> None:
    """get_celonis(): user, permissions, team."""
    has(emu.get("/api/cloud"), {"id": str, "teamDomain": str}, ("email", "name", "teamId"))
    permissions = emu.get("/api/cloud/permissions")
    assert isinstance(permissions, list)
    for entry in permissions:
        has(entry, {"serviceName": str, "permissions": list})
    assert "integration" in [e["serviceName"] for e in permissions]
    has(emu.get("/api/team"), {"id": str, "name": str, "domain": str}, ("active",))


def check_pools_and_jobs(emu: Emu) -> None:
    pool_fields = ("name", "description", "timeStamp", "configurationStatus", "locked")
    pool_fields += ("permissions", "tags", "creatorUserId", "objectId")
    [pool] = emu.get("/integration/api/pools")
    has(pool, {"id": str}, pool_fields)
    assert emu.get(f"/integration/api/pools/{POOL}") == pool
    job_fields = ("name", "dataSourceId", "timeStamp", "status", "currentExecutionId")
    job_fields += ("latestExecutionItemId", "dagBasedExecutionEnabled")
    [job] = emu.get(f"/integration/api/pools/{POOL}/jobs")
    has(job, {"id": str, "dataPoolId": str}, job_fields)
    assert emu.get(f"/integration/api/pools/{POOL}/jobs/{SAP}") == job


def check_tasks(emu: Emu) -> list[dict[str, Any]]:
    """Task instances, an extraction's tables, data model loads."""
    base = f"/integration/api/pools/{POOL}/jobs/{SAP}"
    tasks = emu.get(f"{base}/tasks/")
    task_fields = ("taskId", "taskType", "name", "description", "jobId", "poolId")
    task_fields += ("executionOrder", "disabled", "published", "createdAt")
    for task in tasks:
        has(task, {"id": str}, task_fields)
    assert [(t["taskType"], t["name"]) for t in tasks] == [
        ("EXTRACTION", "SAP orders"),
        ("TRANSFORMATION", "Create O2C activities"),
        ("DATA_MODEL_LOAD", "O2C"),
    ]
    expanded = emu.get(f"{base}/extractions/{tasks[0]['id']}/expanded")
    has(expanded, {"id": str, "tables": list}, task_fields)
    for table in expanded["tables"]:
        has(table, {"id": str, "tableName": str}, ("taskId", "jobId", "targetTableName"))
    assert [t["tableName"] for t in expanded["tables"]] == ["VBAK", "VBAP"]
    [load] = emu.get(f"{base}/loads")
    has(load, {"id": str, "dataModelId": str, "tables": list}, ("dataModelName", "jobId"))
    assert load["id"] == tasks[2]["id"]
    for table in load["tables"]:
        has(table, {"id": str, "aliasOrName": str, "selected": bool})
    return list(tasks)


def check_runs(emu: Emu, tasks: list[dict[str, Any]]) -> None:
    """Execute FULL and DELTA, wait, the failure's reason, cancel; the journal agrees."""
    base = f"/integration/api/pools/{POOL}/jobs/{SAP}"
    # execute FULL, wait: SUCCESS
    execute(emu, "FULL")
    assert wait_until_done(emu)[-1] == "SUCCESS"

    # execute DELTA, wait: FAIL, then the reason as PyCelonis finds it
    execute(emu, "DELTA")
    assert wait_until_done(emu)[-1] == "FAIL"
    history = emu.get(f"/integration/api/pools/{POOL}/logs/{SAP}/executions")
    has(history, {"executionItems": list, "numOfPages": int})
    for item in history["executionItems"]:
        has(item, {"id": str, "type": str}, ITEM)
    latest, first = history["executionItems"]
    assert (latest["mode"], latest["status"]) == ("DELTA", "FAIL")
    assert (first["mode"], first["status"]) == ("FULL", "SUCCESS")
    execution_id = latest["executionId"]
    items = emu.get(
        f"/integration/api/pools/{POOL}/logs/executions",
        executionId=execution_id,
        type="TASK",
        id=SAP,
    )
    for item in items:
        has(item, {"id": str, "type": str}, ITEM)
    assert [(i["name"], i["status"]) for i in items] == [
        ("SAP orders", "SUCCESS"),
        ("Create O2C activities", "FAIL"),
        ("O2C", "SKIPPED"),
    ]
    assert [i["taskId"] for i in items] == [t["id"] for t in tasks]
    check_failure_log(emu, execution_id, items[1])

    # execute again and cancel
    execute(emu, "DELTA")
    assert emu.post(f"{base}/cancel").status_code == 200
    assert wait_until_done(emu)[-1] == "CANCEL"

    journal = emu.journal()
    started = [e["mode"] for e in journal if e.get("event") == "started"]
    assert started == ["FULL", "DELTA", "DELTA"]
    cancelled = [e for e in journal if e.get("event") == "cancel_requested"]
    assert len(cancelled) == 1 and cancelled[0]["execution_id"] is not None


def check_failure_log(emu: Emu, execution_id: str, failed: dict[str, Any]) -> None:
    """The detail log of the failed task: its ERROR line first, as PyCelonis reads it."""
    detail = emu.get(
        f"/integration/api/pools/{POOL}/logs/executions/detail",
        executionId=execution_id,
        id=failed["taskId"],
        type="TASK",
    )
    has(detail, {"logMessages": list, "numOfPages": int})
    for line in detail["logMessages"]:
        has(line, {"level": str, "logMessage": str}, ("id", "executionItemId", "date"))
    first_line = detail["logMessages"][0]
    assert first_line["level"] == "ERROR"
    assert first_line["logMessage"] == "ORA-00942: table or view does not exist"


def test_unknown_integration_paths_answer_404_and_are_journaled(emu: Emu) -> None:
    response = emu.session.get(emu.base_url + "/integration/api/nope/1", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"title": "Not Found", "status": 404, "errorCode": "NOT_FOUND"}
    unanswered = requests.get(
        emu.base_url + "/integration/api/pools", timeout=5, verify=str(emu.ca)
    )
    assert unanswered.status_code == 401
    paths = [(e["path"], e["status"]) for e in emu.journal() if e["type"] == "request"]
    assert ("/integration/api/nope/1", 404) in paths
    assert ("/integration/api/pools", 401) in paths


def without_the_extra(tmp_path: Path) -> dict[str, str]:
    """An environment where `cryptography` cannot be imported, as without celonis-runner[tls]."""
    blocker = tmp_path / "block" / "cryptography"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    return {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{REPO}"}


def test_the_embedded_emulator_works_without_the_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "status", str(REPO / "jobs.yaml"), "--emulator"],
        cwd=tmp_path,
        env=without_the_extra(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "extract_sap_master_data" in done.stdout


def test_tls_without_the_extra_names_it(tmp_path: Path) -> None:
    env = without_the_extra(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "runner", "emulator", "--tls", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "celonis-runner[tls]" in done.stderr
    assert "Traceback" not in done.stderr


def test_own_certificate_needs_both_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "emulator", "--tls-cert", "c.pem", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--tls-cert and --tls-key go together" in done.stderr
