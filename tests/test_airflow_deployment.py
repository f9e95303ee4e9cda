"""runner.airflow on a real Airflow deployment: scheduler, triggerer, dag-processor and api-server
as separate processes (LocalExecutor, SQLite, AIRFLOW_HOME in a temporary folder), against the
in-process emulator, driven through the api-server's REST API as the UI drives it, and checked
from the emulator's journal.

Marked `airflow_deployment` and left out of the default run (it takes minutes):
`make test-airflow-deployment` runs it (`.ci/run` does).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

pytestmark = [pytest.mark.airflow_deployment, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCALE = 60.0
"""Virtual seconds per real second: Airflow's own latencies (seconds) stay small next to jobs."""
KEY = "deployment-test-key-8c1f4e2a9b7d"
BULK = 40
EXAMPLE_MANIFEST = ROOT / "examples" / "airflow" / "dags" / "jobs.yaml"


def _manifest() -> dict[str, Any]:
    """The example's pools and jobs, a pool of 40 jobs run at once, and jobs to act on."""
    manifest = yaml.safe_load(EXAMPLE_MANIFEST.read_text())
    manifest["defaults"]["poll_interval"] = "30s"
    manifest["pools"]["bulk"] = {"id": "b0000000-0000-4000-8000-000000000000", "max_parallel": BULK}
    manifest["pools"]["actions"] = {"id": "a0000000-0000-4000-8000-000000000000"}
    for n in range(BULK):
        manifest["jobs"][f"bulk_{n:02d}"] = {
            "pool": "bulk",
            "id": f"b0000000-0000-4000-8000-{n + 1:012d}",
            "expected_duration": f"{50 + n % 20}m",
        }
    durations = {
        "cleared": "40m",
        "marked_success": "30m",
        "marked_failed": "2h",
        "timed_out": "2h",
    }
    for n, (name, duration) in enumerate(durations.items()):
        manifest["jobs"][name] = {
            "pool": "actions",
            "id": f"a0000000-0000-4000-8000-{n + 1:012d}",
            "expected_duration": duration,
        }
    return manifest


DAGS = {
    "celonis_nightly": 'select=["pool:sap_ecc", "pool:salesforce"]',
    "celonis_bulk": 'select=["pool:bulk"], max_active_tasks=64',
    "celonis_actions": 'select=["cleared", "marked_success", "marked_failed"],'
    ' operator_kwargs={"retry_delay": timedelta(seconds=2)}',
    "celonis_timeout": 'select=["timed_out"],'
    ' operator_kwargs={"execution_timeout": timedelta(seconds=20), "retries": 0}',
}


def _dag_file(dag_id: str, arguments: str) -> str:
    return textwrap.dedent(
        f"""
        from datetime import datetime, timedelta
        from pathlib import Path

        from runner.airflow import dag_from_manifest

        dag = dag_from_manifest(
            Path(__file__).parent / "jobs.yaml",
            dag_id={dag_id!r},
            schedule=None,
            start_date=datetime(2026, 1, 1),
            {arguments},
        )
        """
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    home: Path
    manifest: Path
    emulator: Any
    api: str
    token: str
    env: dict[str, str]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The api-server's REST API. Reads and PATCHes are tried again after a timeout or a
        5xx: Airflow on SQLite answers "Database error" (a locked database) and stalls now
        and then when the machine is busy; that is the test bed, not what is tested. A POST
        (a new DAG run) is sent once."""
        headers = {"Authorization": f"Bearer {self.token}"}
        again = method != "POST"
        for attempt in range(1, 5):
            try:
                response = requests.request(
                    method, self.api + path, headers=headers, timeout=30, **kwargs
                )
            except requests.Timeout:
                if not again or attempt == 4:
                    raise
                time.sleep(2)
                continue
            if response.status_code < 500 or not again or attempt == 4:
                break
            time.sleep(2)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def trigger(self, dag_id: str) -> str:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
        return str(run["dag_run_id"])

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        answer = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti for ti in answer["task_instances"]}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_logs(self, dag_id: str) -> str:
        """Every log file of the DAG's tasks, triggers' included."""
        files = sorted((self.home / "logs" / f"dag_id={dag_id}").rglob("*.log"))
        return "\n".join(f.read_text(errors="replace") for f in files)


def _until(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _airflow_env(home: Path, port: int, origin: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    connection = {"conn_type": "celonis", "host": "", "password": KEY}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "5",
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_CELONIS_DEFAULT": json.dumps(connection),
            "CELONIS_RUNNER_TIME_SCALE": str(SCALE),
            "CELONIS_RUNNER_TIME_ORIGIN": repr(origin),
        }
    )
    return env


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    try:
        import airflow  # noqa: F401
    except ImportError as error:
        pytest.skip(f"Airflow is not installed ({error}): pip install -e '.[airflow]'")
    from runner.clock import ScaledClock
    from runner.emulator import Emulator, Scenario
    from runner.manifest.loader import load_manifest

    home = Path(tempfile.mkdtemp(prefix="airflow-deployment-"))
    (home / "dags").mkdir()
    manifest = home / "dags" / "jobs.yaml"
    manifest.write_text(yaml.safe_dump(_manifest(), sort_keys=False))
    for dag_id, arguments in DAGS.items():
        (home / "dags" / f"{dag_id}.py").write_text(_dag_file(dag_id, arguments))
    origin = time.time()
    base = Scenario.from_dict({"time_scale": SCALE, "queued_for": "5s"})
    scenario = Scenario.from_manifest(load_manifest(manifest, {}), base=base)
    emulator = Emulator(scenario, clock=ScaledClock(SCALE, origin), api_keys=[KEY])
    emulator.__enter__()
    port = _free_port()
    env = _airflow_env(home, port, origin)
    connection = {"conn_type": "celonis", "host": emulator.base_url, "password": KEY}
    env["AIRFLOW_CONN_CELONIS_DEFAULT"] = json.dumps(connection)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run(
            [sys.executable, "-m", "runner.airflow.pools", str(manifest), "--create"],
            env=env,
            check=True,
            capture_output=True,
        )
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            log = (home / f"{component}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [BIN / "airflow", component],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        api = f"http://127.0.0.1:{port}"
        _until("the api-server", lambda: _answers(api + "/api/v2/monitor/health"), 180)
        token = requests.get(api + "/auth/token", timeout=30).json()["access_token"]
        deployment = Deployment(home, manifest, emulator, api, token, env)

        def parsed() -> bool:
            dags = deployment.call("GET", "/api/v2/dags?limit=100")["dags"]
            return set(DAGS) <= {d["dag_id"] for d in dags}

        _until("the DAG files to be parsed", parsed, 180)
        yield deployment
    finally:
        for process in processes:  # their sessions: the components and what they started
            with _suppressed():
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with _suppressed():
                    os.killpg(process.pid, signal.SIGKILL)
        emulator.__exit__(None, None, None)
        if os.environ.get("KEEP_AIRFLOW_HOME") is None:
            shutil.rmtree(home, ignore_errors=True)


class _suppressed:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], ProcessLookupError)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


# -- the journal -----------------------------------------------------------------------


class Journal:
    def __init__(self, entries: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
        self.entries = entries
        self.jobs = manifest["jobs"]
        self.pools = manifest["pools"]

    def _id(self, name: str) -> str:
        return str(self.jobs[name]["id"]).lower()

    def executions(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries
            if e.get("event") == "started" and e["job_id"] == self._id(name) and e["by"] == "api"
        ]

    def ends(self, name: str) -> list[tuple[float, str]]:
        return [
            (e["t"], e["status"])
            for e in self.entries
            if e.get("event") == "status"
            and e["job_id"] == self._id(name)
            and e["status"] in ("SUCCESS", "FAIL", "CANCEL")
        ]

    def cancels(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries
            if e.get("event") == "cancel_requested" and e["job_id"] == self._id(name)
        ]

    def max_concurrent(self, names: list[str]) -> int:
        points = []
        for name in names:
            for execution in self.executions(name):
                points += [(execution["t"], 1), (self.ends(name)[0][0], -1)]
        current = best = 0
        for _, delta in sorted(points):
            current += delta
            best = max(best, current)
        return best

    def status_reads(self, pool: str) -> int:
        """GETs of the pool's `logs/status`, its jobs' own status and their execution history."""
        prefix = f"/integration/api/pools/{self.pools[pool]['id']}/"
        return sum(
            1
            for e in self.entries
            if e.get("type") == "request"
            and e["method"] == "GET"
            and e["path"].startswith(prefix)
            and (e["path"].endswith(("/logs/status", "/executions")) or "/jobs/" in e["path"])
        )


def _cli_status_reads(deployment: Deployment, manifest: dict[str, Any], pool: str) -> float:
    """Status reads per job of `celonis-runner run` on the same jobs (its own emulator)."""
    folder = deployment.home / "cli"
    folder.mkdir(exist_ok=True)
    scenario = folder / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"time_scale": 600, "queued_for": "5s"}))
    journal = folder / "journal.jsonl"
    env = {
        k: v
        for k, v in deployment.env.items()
        if not k.startswith(("AIRFLOW", "CELONIS_RUNNER_TIME"))
    }
    env["CELONIS_API_KEY"] = KEY
    done = subprocess.run(
        [
            *(BIN / "celonis-runner", "run", str(deployment.manifest), "--select", f"pool:{pool}"),
            *("--emulator", "--scenario", str(scenario), "--emulator-journal", str(journal)),
            *("--state-dir", str(folder / "state")),
        ],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    return Journal(entries, manifest).status_reads(pool) / BULK


# -- the tests -------------------------------------------------------------------------


def test_every_job_once_in_order_within_pool_limits_and_the_clis_request_budget(
    deployment: Deployment,
) -> None:
    """The example's jobs and 40 jobs at once in one pool, as two DAG runs side by side."""
    runs = {dag_id: deployment.trigger(dag_id) for dag_id in ("celonis_nightly", "celonis_bulk")}

    def finished() -> bool:
        return all(deployment.run_state(d, r) in ("success", "failed") for d, r in runs.items())

    _until("both DAG runs to finish", finished, 900, every=5)
    manifest = yaml.safe_load(deployment.manifest.read_text())
    journal = Journal(deployment.emulator.journal(), manifest)
    for dag_id, run_id in runs.items():
        states = {t: ti["state"] for t, ti in deployment.tasks(dag_id, run_id).items()}
        assert set(states.values()) == {"success"}, (dag_id, states)
        assert deployment.run_state(dag_id, run_id) == "success"
    names = [
        n for n, j in manifest["jobs"].items() if j["pool"] in ("sap_ecc", "salesforce", "bulk")
    ]
    for name in names:
        assert len(journal.executions(name)) == 1, name
        assert [status for _, status in journal.ends(name)] == ["SUCCESS"], name
        started = journal.executions(name)[0]["t"]
        for dependency in manifest["jobs"][name].get("depends_on", []):
            assert journal.ends(dependency)[0][0] <= started, (name, dependency)
    sap = [n for n, j in manifest["jobs"].items() if j["pool"] == "sap_ecc"]
    assert journal.max_concurrent(sap) <= 2
    bulk = [n for n, j in manifest["jobs"].items() if j["pool"] == "bulk"]
    assert journal.max_concurrent(bulk) == BULK  # all 40 ran at once

    per_job = journal.status_reads("bulk") / BULK
    cli = _cli_status_reads(deployment, manifest, "bulk")
    print(f"status reads per job: Airflow {per_job:.2f}, CLI {cli:.2f}")
    assert per_job <= 1.5 * cli, (per_job, cli)


def test_ui_actions_on_deferred_tasks_do_what_the_docs_say(deployment: Deployment) -> None:
    """Clear: the newer try adopts the running job (never cancelled). Mark success: the job is
    left running. Mark failed: the job is cancelled. execution_timeout: cancelled at the limit."""
    actions = deployment.trigger("celonis_actions")
    timeout_run = deployment.trigger("celonis_timeout")
    names = ("cleared", "marked_success", "marked_failed")

    def deferred() -> bool:
        states = deployment.tasks("celonis_actions", actions)
        return all(states[n]["state"] == "deferred" for n in names)

    _until("the three tasks to be deferred", deferred, 300)
    base = f"/api/v2/dags/celonis_actions/dagRuns/{actions}/taskInstances"
    deployment.call("PATCH", f"{base}/marked_success", json={"new_state": "success"})
    deployment.call("PATCH", f"{base}/marked_failed", json={"new_state": "failed"})
    clear = {"dag_run_id": actions, "task_ids": ["cleared"], "dry_run": False, "only_failed": False}
    deployment.call("POST", "/api/v2/dags/celonis_actions/clearTaskInstances", json=clear)

    manifest = yaml.safe_load(deployment.manifest.read_text())

    def ended() -> Journal | None:
        journal = Journal(deployment.emulator.journal(), manifest)
        done = all(journal.ends(n) for n in (*names, "timed_out"))
        runs = [("celonis_actions", actions), ("celonis_timeout", timeout_run)]
        over = all(deployment.run_state(d, r) in ("success", "failed") for d, r in runs)
        return journal if done and over else None

    journal = _until("the jobs and runs to end", ended, 600, every=3)
    states = deployment.tasks("celonis_actions", actions)
    # clear: try 2 waited for the execution try 1 started; nothing cancelled it
    assert states["cleared"]["state"] == "success" and states["cleared"]["try_number"] == 2
    assert len(journal.executions("cleared")) == 1 and journal.cancels("cleared") == []
    assert [s for _, s in journal.ends("cleared")] == ["SUCCESS"]
    # mark success: the job ran on to its own end
    assert states["marked_success"]["state"] == "success"
    assert journal.cancels("marked_success") == []
    assert [s for _, s in journal.ends("marked_success")] == ["SUCCESS"]
    # mark failed: cancelled in Celonis
    assert states["marked_failed"]["state"] == "failed"
    assert len(journal.cancels("marked_failed")) == 1, _trigger_lines(deployment, "marked_failed")
    assert [s for _, s in journal.ends("marked_failed")] == ["CANCEL"]
    # execution_timeout (20 s) while deferred: cancelled then, the task failed
    timed = deployment.tasks("celonis_timeout", timeout_run)["timed_out"]
    assert timed["state"] == "failed"
    (cancel,) = journal.cancels("timed_out")
    started = journal.executions("timed_out")[0]["t"]
    assert (cancel["t"] - started) / SCALE < 20 + 15  # real seconds: at the limit, not later
    assert [s for _, s in journal.ends("timed_out")] == ["CANCEL"]
    logs = deployment.task_logs("celonis_actions")  # a trigger logs to its task's log
    assert "marked success: job a0000000-0000-4000-8000-000000000002" in logs
    assert "left running in Celonis (not cancelled)" in logs
    # (a clear's own line is not asserted: whether the old trigger's log reaches the cleared
    # try's file depends on when Airflow moves the task to its next try; what a clear does to
    # the job, nothing, is asserted above)
    assert "marked failed: cancelled job a0000000-0000-4000-8000-000000000003" in logs


def test_connection_form_shows_the_celonis_fields(deployment: Deployment) -> None:
    """The api-server's hook metadata, which the UI's connection form is built from."""
    metas = deployment.call("GET", "/ui/connections/hook_meta")
    (meta,) = [m for m in metas if m["connection_type"] == "celonis"]
    fields = meta["standard_fields"]
    assert fields["host"]["title"] == "Base URL"
    assert fields["password"]["title"] == "API key, application key or OAuth client secret"
    assert fields["port"]["hidden"] and fields["url_schema"]["hidden"]
    assert meta["extra_fields"]["auth_type"]["schema"]["enum"] == ["api_key", "app_key", "oauth"]


def _trigger_lines(deployment: Deployment, task: str) -> str:
    """What the triggerer and the task's logs say of `task`'s trigger (for a failure's message)."""
    logs = [deployment.home / "triggerer.log", *deployment.home.glob(f"logs/**/task_id={task}/*")]
    lines = [
        line.strip()[:400]
        for path in logs
        if path.is_file()
        for line in path.read_text(errors="replace").splitlines()
        if task in line or "on_kill" in line or "the task was" in line or "cancel" in line
    ]
    return "\n".join(lines[-40:]) or "(no log line mentions it)"
