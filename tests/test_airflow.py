"""runner.airflow: the example DAG run with `dag.test()` against the emulator, checked from its journal.

Airflow runs in this process with AIRFLOW_HOME in a temporary folder and a
SQLite metadata DB created once per session. These tests skip only when
Airflow cannot be imported (`pip install -e '.[airflow]'`; `make test` does).
`dag.test()` runs one task at a time, so Airflow's pools and max_active_tasks
are checked as configuration; the journal checks what reached Celonis.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = ROOT / "examples" / "airflow" / "dags"
EXAMPLE_MANIFEST = EXAMPLE_DAGS / "jobs.yaml"
SCALE = 3000.0
KEY = "celonis-test-key-5d1b3e9a7c62-do-not-log"


# -- the Airflow session ---------------------------------------------------------------


@pytest.fixture
def celonis(
    airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, Any], Path], Any]:
    """Start an emulator serving a manifest (plus a scenario's behaviour); point celonis_default at it."""
    from runner.clock import ScaledClock
    from runner.emulator import Emulator, Scenario
    from runner.manifest.loader import load_manifest

    started: list[Any] = []

    def start(behaviour: dict[str, Any], manifest: Path = EXAMPLE_MANIFEST) -> Any:
        model = load_manifest(manifest, {})
        base = Scenario.from_dict({"time_scale": SCALE, "queued_for": "5s", **behaviour})
        emulator = Emulator(
            Scenario.from_manifest(model, base=base), clock=ScaledClock(SCALE), api_keys=[KEY]
        )
        emulator.__enter__()
        started.append(emulator)
        connection = {"conn_type": "celonis", "host": emulator.base_url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_CELONIS_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("CELONIS_RUNNER_TIME_SCALE", str(SCALE))
        return emulator

    start.dags = airflow_home / "dags"  # type: ignore[attr-defined]
    yield start
    for emulator in started:
        emulator.__exit__(None, None, None)


def load_dag_file(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


# -- reading the emulator's journal ----------------------------------------------------


class Journal:
    def __init__(self, entries: list[dict[str, Any]], manifest: Path = EXAMPLE_MANIFEST) -> None:
        self.entries = entries
        self.jobs = yaml.safe_load(manifest.read_text())["jobs"]

    def _id(self, name: str) -> str:
        return str(self.jobs[name]["id"]).lower()

    def executions(self, name: str) -> list[dict[str, Any]]:
        """Executions the API started (not ones the scenario had running already)."""
        return [
            e
            for e in self.entries
            if e.get("event") == "started" and e["job_id"] == self._id(name) and e["by"] == "api"
        ]

    def statuses(self, name: str) -> list[tuple[float, str]]:
        return [
            (e["t"], e["status"])
            for e in self.entries
            if e.get("event") == "status" and e["job_id"] == self._id(name)
        ]

    def end(self, name: str) -> tuple[float, str]:
        return next((t, s) for t, s in self.statuses(name) if s in ("SUCCESS", "FAIL", "CANCEL"))

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
                points += [(execution["t"], 1), (self.end(name)[0], -1)]
        current = best = 0
        for _, delta in sorted(points):
            current += delta
            best = max(best, current)
        return best


# -- the example DAG -------------------------------------------------------------------

BEHAVIOUR = {
    "pools": [
        {
            "id": "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11",
            "jobs": [
                {
                    "id": "a8e1d5c3-7b9f-4a2e-8c6d-3f0b1e7a9d25",
                    "duration": "5m",
                    "outcome": "FAIL",
                    "message": "Check 'orders without customer': 412 rows violate the rule",
                }
            ],
        },
        {
            "id": "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77",
            "jobs": [
                {
                    "id": "6f2a9c4e-8b1d-4d7f-a3e5-0c9b2e6f1a84",
                    "duration": "8m",
                    "outcome": "FAIL",
                    "message": "Opportunity stage 'Won' is not mapped",
                }
            ],
        },
    ]
}


def test_example_dag_runs_each_job_once_in_order_with_failure_policies(
    celonis: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The DAG file from docs/airflow.md, deferrable, against the emulator."""
    from airflow.models import Pool
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from runner.airflow.dag import load_plan
    from runner.airflow.pools import create_pools

    emulator = celonis(BEHAVIOUR)
    assert create_pools(load_plan(EXAMPLE_MANIFEST)) == {"celonis_sap_ecc": 2}
    dag = load_dag_file(celonis.dags / "celonis_nightly.py")  # type: ignore[attr-defined]
    assert dag.max_active_tasks == 4
    assert {t.task_id: t.pool for t in dag.tasks if t.task_id.startswith("extract")} == {
        "extract_sap_orders": "celonis_sap_ecc",
        "extract_sap_deliveries": "celonis_sap_ecc",
        "extract_salesforce": "default_pool",
    }

    run = dag.test()
    journal = Journal(emulator.journal())
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}

    ran = [n for n in journal.jobs if n != "load_sales_model"]
    for name in ran:
        assert len(journal.executions(name)) == 1, name
    for name in ran:  # never before every dependency succeeded (or, allowed, ended)
        started = journal.executions(name)[0]["t"]
        for dependency in journal.jobs[name].get("depends_on", []):
            end, status = journal.end(dependency)
            assert end <= started and (status == "SUCCESS" or dependency == "quality_checks")
    sap = [n for n, job in journal.jobs.items() if job["pool"] == "sap_ecc"]
    assert journal.max_concurrent(sap) <= 2
    # a failure's dependents do not run; an allowed failure's do, and it stays visible
    assert journal.executions("load_sales_model") == []
    assert states["transform_opportunities"] == "failed"
    assert states["load_sales_model"] == "upstream_failed"
    assert states["quality_checks"] == "failed"
    assert states["quality_checks__failure_allowed"] == "success"
    assert states["load_o2c_model"] == "success"
    assert Pool.get_pool("celonis_sap_ecc").include_deferred

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        rendered = session.query(RenderedTaskInstanceFields).all()
        # the deferred waits resumed: execute_complete returned each success
        done = {x.task_id: x.value for x in xcoms if x.key == "return_value"}
        assert done["load_o2c_model"]["status"] == "SUCCESS"
        stored = [json.dumps(x.value) for x in xcoms] + [
            json.dumps(r.rendered_fields) for r in rendered
        ]
    output = capfd.readouterr()
    logs = output.out + output.err + caplog.text
    assert "Pausing task as DEFERRED" in logs and "Trigger completed" in logs
    assert (
        "job 'quality_checks': FAIL: Check 'orders without customer': 412 rows violate the rule"
        in logs
    )
    assert KEY not in logs
    assert not any(KEY in text for text in stored)
    home = celonis.dags.parent  # type: ignore[attr-defined]
    files = [p for p in home.rglob("*") if p.is_file()]  # the metadata DB, task logs, ...
    assert not [p for p in files if KEY.encode() in p.read_bytes()]


# -- killing, timeouts, retries --------------------------------------------------------

ONE_JOB = """
version: 1
pools:
  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}
jobs:
  long_load:
    pool: sap
    id: 2c9e7b1f-5a3d-4f8c-b6e0-9d4a1c7e3b56
    timeout: 12h
    poll_interval: 10s
    expected_duration: 6h
"""


KILLED_DAG = """
from datetime import timedelta
from pathlib import Path

from runner.airflow import dag_from_manifest

dag = dag_from_manifest(
    Path(__file__).parent / "killed.yaml",
    dag_id="celonis_killed",
    deferrable=False,
    operator_kwargs={"execution_timeout": timedelta(seconds=2), "retries": 0},
)
"""


def test_task_killed_mid_run_is_cancelled_in_celonis(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """Airflow's execution_timeout kills the (non-deferrable) task: on_kill cancels the job."""
    dags = celonis.dags  # type: ignore[attr-defined]
    manifest = dags / "killed.yaml"
    manifest.write_text(ONE_JOB)
    (dags / "celonis_killed.py").write_text(KILLED_DAG)
    emulator = celonis({}, manifest)
    run = load_dag_file(dags / "celonis_killed.py").test()
    journal = Journal(emulator.journal(), manifest)
    assert run.get_task_instance("long_load").state == "failed"
    assert len(journal.executions("long_load")) == 1
    assert len(journal.cancels("long_load")) == 1
    assert journal.end("long_load")[1] == "CANCEL"


ALLOWED_DAG = """
from pathlib import Path

from runner.airflow import dag_from_manifest

dag = dag_from_manifest(Path(__file__).parent / "allowed.yaml", dag_id="celonis_allowed")
"""

ALLOWED_JOBS = """
version: 1
pools:
  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}
jobs:
  checks:
    pool: sap
    id: a8e1d5c3-7b9f-4a2e-8c6d-3f0b1e7a9d25
    allow_failure: true
    expected_duration: 5m
  load:
    pool: sap
    id: 2c9e7b1f-5a3d-4f8c-b6e0-9d4a1c7e3b56
    depends_on: [checks]
    expected_duration: 5m
"""


def test_only_an_allowed_failure_leaves_the_dag_run_successful(
    celonis: Callable[..., Any],
) -> None:
    """As `run` exits 0 when only allow_failure jobs failed; the failed task stays visible."""
    dags = celonis.dags  # type: ignore[attr-defined]
    manifest = dags / "allowed.yaml"
    manifest.write_text(ALLOWED_JOBS)
    (dags / "celonis_allowed.py").write_text(ALLOWED_DAG)
    behaviour = {"outcome": "FAIL", "message": "412 rows violate the rule"}
    checks = {"id": "a8e1d5c3-7b9f-4a2e-8c6d-3f0b1e7a9d25", "duration": "5m", **behaviour}
    emulator = celonis(
        {"pools": [{"id": "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11", "jobs": [checks]}]}, manifest
    )
    run = load_dag_file(dags / "celonis_allowed.py").test()
    journal = Journal(emulator.journal(), manifest)
    assert run.state == "success"
    assert run.get_task_instance("checks").state == "failed"
    assert journal.end("checks")[1] == "FAIL" and journal.end("load")[1] == "SUCCESS"
    assert journal.executions("load")[0]["t"] >= journal.end("checks")[0]


def _operator(manifest: Path, **kwargs: Any) -> Any:
    from runner.airflow.credentials import ApiSettings
    from runner.airflow.operators import CelonisJobOperator

    job = yaml.safe_load(manifest.read_text())["jobs"]["long_load"]
    return CelonisJobOperator(
        task_id="long_load",
        pool_id="3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11",
        job_id=job["id"],
        settings=ApiSettings(),
        poll_interval=10.0,
        **kwargs,
    )


def test_deferred_wait_times_out_and_cancels_and_on_kill_cancels(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """The trigger ends at the job's timeout and execute_complete cancels; a kill while deferred
    (trigger.on_kill) cancels too. Never a second execute."""
    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(ONE_JOB)
    emulator = celonis({}, manifest)
    operator = _operator(manifest, timeout=3600.0)  # 1 h: 1.2 s at this time scale
    context = {"ti": SimpleNamespace(try_number=1), "dag_run": SimpleNamespace(start_date=None)}
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger

    event = asyncio.run(_first_payload(trigger))
    assert event["outcome"] == "TIMEOUT"
    with pytest.raises(AirflowException, match="timed out after 1h; cancelled in Celonis"):
        operator.execute_complete(context, event)
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 1 and len(journal.cancels("long_load")) == 1

    with pytest.raises(TaskDeferred) as deferred:
        _operator(manifest).execute(context)
    killed = deferred.value.trigger
    # the task's state after the user's action decides: success and a clear (None: a newer
    # try adopts the execution) leave the job alone, failed cancels it
    for state in ("success", None, "scheduled"):
        killed._task_state = _returning((state, True))
        asyncio.run(killed.on_kill())
    assert len(Journal(emulator.journal(), manifest).cancels("long_load")) == 1
    killed._task_state = _returning(("failed", True))
    asyncio.run(killed.on_kill())
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 2 and len(journal.cancels("long_load")) == 2

    async def cancelled_while_killing() -> None:
        """The triggerer cancels the trigger's task again while on_kill runs: the cancel goes out."""

        async def slow_state() -> tuple[str, bool]:
            await asyncio.sleep(0.2)
            return "failed", True

        killed._task_state = slow_state
        kill = asyncio.create_task(killed.on_kill())
        await asyncio.sleep(0.05)
        kill.cancel()
        with pytest.raises(asyncio.CancelledError):
            await kill
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len(Journal(emulator.journal(), manifest).cancels("long_load")) == 3:
                return

    asyncio.run(cancelled_while_killing())
    assert len(Journal(emulator.journal(), manifest).cancels("long_load")) == 3


async def _first_payload(trigger: Any) -> Any:
    """The payload of the trigger's first event (None when it yields none)."""
    async for event in trigger.run():
        return event.payload
    return None


def _returning(value: Any) -> Callable[[], Any]:
    async def result() -> Any:
        return value

    return result


def test_a_retry_waits_for_the_run_an_earlier_try_started(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """Try 2 finds the execution try 1 started still running: it waits for it, never executes."""
    from runner.airflow.operators import CelonisJobOperator

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(ONE_JOB.replace("expected_duration: 6h", "expected_duration: 1h"))
    emulator = celonis({}, manifest)
    first = _operator(manifest, deferrable=False)
    client = first._client()
    client.execute(first.pool_id, first.job_id, "DELTA")  # try 1 died after its execute
    began = datetime.now(UTC) - timedelta(seconds=1)
    retry: CelonisJobOperator = _operator(manifest, deferrable=False)
    context = {"ti": SimpleNamespace(try_number=2), "dag_run": SimpleNamespace(start_date=began)}
    assert retry.execute(context)["status"] == "SUCCESS"
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 1
    assert journal.end("long_load")[1] == "SUCCESS"
    # and once it succeeded, a further try does not execute it again either
    context["ti"] = SimpleNamespace(try_number=3)
    assert _operator(manifest, deferrable=False).execute(context)["status"] == "SUCCESS"
    assert len(Journal(emulator.journal(), manifest).executions("long_load")) == 1


EXECUTION_TIMEOUT_JOBS = ONE_JOB


def test_execution_timeout_is_honoured_while_deferred(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """execution_timeout goes to defer() and to the trigger's wait: when it is reached the job
    is cancelled and the task fails as Airflow's timeout does (retryable). When Airflow's own
    trigger timeout ends the deferral first (`__fail__`), the run is cancelled too."""
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import AirflowTaskTimeout, TaskDeferralTimeout, TaskDeferred

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(EXECUTION_TIMEOUT_JOBS)
    emulator = celonis({}, manifest)
    began = datetime.now(UTC)
    context = {
        "ti": SimpleNamespace(try_number=1, start_date=began),
        "dag_run": SimpleNamespace(start_date=began - timedelta(seconds=1)),
    }
    operator = _operator(manifest, execution_timeout=timedelta(seconds=2))
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert timedelta(seconds=1) <= deferred.value.timeout <= timedelta(seconds=2)
    trigger = deferred.value.trigger

    event = asyncio.run(_first_payload(trigger))
    assert event["outcome"] == "EXECUTION_TIMEOUT"
    assert time.time() - began.timestamp() >= 2.0
    with pytest.raises(
        AirflowTaskTimeout,
        match=r"execution_timeout \(2s\) reached while waiting; cancelled in Celonis",
    ):
        operator.execute_complete(context, event)
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 1 and len(journal.cancels("long_load")) == 1

    # Airflow's trigger timeout came first: the task resumes with __fail__
    again = _operator(manifest, execution_timeout=timedelta(seconds=2))
    with pytest.raises(TaskDeferred):
        again.execute(context)
    failed = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(TaskDeferralTimeout):
        again.resume_execution("__fail__", failed, context)
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 2 and len(journal.cancels("long_load")) == 2
    assert [status for _, status in journal.statuses("long_load")].count("CANCEL") == 2


THREE_JOBS = """
version: 1
pools:
  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}
jobs:
  a: {pool: sap, id: 2c9e7b1f-5a3d-4f8c-b6e0-9d4a1c7e3b56, expected_duration: 20m}
  b: {pool: sap, id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349, expected_duration: 25m}
  c: {pool: sap, id: a8e1d5c3-7b9f-4a2e-8c6d-3f0b1e7a9d25, expected_duration: 30m}
"""


def test_triggers_in_one_triggerer_share_one_poller_per_pool(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """Three deferred tasks of one pool in one event loop: one `logs/status` read per round."""
    from airflow.sdk.exceptions import TaskDeferred

    from runner.airflow.credentials import ApiSettings
    from runner.airflow.operators import CelonisJobOperator
    from runner.airflow.poller import pollers

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(THREE_JOBS)
    emulator = celonis({}, manifest)
    jobs = yaml.safe_load(THREE_JOBS)["jobs"]
    context = {"ti": SimpleNamespace(try_number=1), "dag_run": SimpleNamespace(start_date=None)}
    triggers = []
    for name, job in jobs.items():
        operator = CelonisJobOperator(
            task_id=name, pool_id=job_pool(THREE_JOBS), job_id=job["id"], settings=ApiSettings()
        )
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        triggers.append(deferred.value.trigger)
    before = _status_reads(emulator)

    async def all_events() -> tuple[list[Any], int, int]:
        events = await asyncio.gather(*(_first_payload(t) for t in triggers))
        shared = pollers()
        (poller,) = shared._pollers.values()
        return events, poller.rounds, len(shared._clients)

    events, rounds, clients = asyncio.run(all_events())
    assert [e["outcome"] for e in events] == ["SUCCESS"] * 3
    assert _status_reads(emulator) - before == rounds and clients == 1


def job_pool(manifest: str) -> str:
    return str(yaml.safe_load(manifest)["pools"]["sap"]["id"])


def _status_reads(emulator: Any) -> int:
    return sum(
        1
        for e in emulator.journal()
        if e.get("type") == "request" and e["method"] == "GET" and "/logs/status" in e["path"]
    )


def test_factory_defaults_one_retry_and_one_active_run(airflow_home: Path) -> None:
    """A retry is safe (it adopts the earlier try's execution); two runs at once are not useful."""
    from runner.airflow import dag_from_manifest

    dag = dag_from_manifest(EXAMPLE_MANIFEST, dag_id="defaults")
    assert dag.max_active_runs == 1
    jobs = [t for t in dag.tasks if not t.task_id.endswith("__failure_allowed")]
    assert {t.retries for t in jobs} == {1}
    chosen = dag_from_manifest(
        EXAMPLE_MANIFEST, dag_id="chosen", max_active_runs=2, default_args={"retries": 3}
    )
    assert chosen.max_active_runs == 2
    assert {t.retries for t in chosen.tasks if t.task_id == "load_o2c_model"} == {3}
    none = dag_from_manifest(EXAMPLE_MANIFEST, dag_id="none", operator_kwargs={"retries": 0})
    assert {t.retries for t in none.tasks if t.task_id == "load_o2c_model"} == {0}


def test_connection_form_fields_in_the_api_servers_hook_metadata(airflow_home: Path) -> None:
    """What `/ui/connections/hook_meta` answers for the celonis type (Airflow reads it from
    the provider info, not from the hook)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    metas = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    meta = metas["celonis"]
    assert meta.hook_name == "Celonis"
    assert meta.hook_class_name == "runner.airflow.hooks.CelonisHook"
    fields = meta.standard_fields
    assert fields is not None and fields.host is not None and fields.password is not None
    assert fields.host.title == "Base URL"
    assert fields.host.placeholder == "https://TEAM.REALM.celonis.cloud"
    assert fields.password.title == "API key, application key or OAuth client secret"
    assert fields.port is not None and fields.port.hidden
    assert meta.extra_fields is not None
    assert meta.extra_fields["auth_type"]["schema"]["enum"] == ["api_key", "app_key", "oauth"]
    assert meta.extra_fields["auth_type"]["value"] == "api_key"
    assert set(meta.extra_fields) == {"auth_type", "scope"}


# -- parse time, CLI, provider -----------------------------------------------------------


def test_manifest_problem_fails_at_parse_time_with_validates_lines(
    airflow_home: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "jobs.yaml").write_text(
        ONE_JOB + "  transform:\n    pool: sapp\n    id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349\n"
        "    depends_on: [long_lod]\n"
    )
    dag_file = (EXAMPLE_DAGS / "celonis_nightly.py").read_text()
    (folder / "celonis_nightly.py").write_text(dag_file)
    shown = str(folder / "jobs.yaml")
    expected = [line for line in cli("validate", shown).out.splitlines() if line.startswith(shown)]
    assert len(expected) == 2  # the unknown pool and the unknown dependency, with did-you-mean
    errors = DagBag(dag_folder=str(folder)).import_errors
    (message,) = errors.values()
    for line in expected:
        assert line in message


def test_cli_validate_does_not_import_airflow() -> None:
    code = (
        "import sys; from runner.cli import main; "
        "rc = main(['validate', 'jobs.yaml']); "
        "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_provider_registers_the_celonis_connection_type(airflow_home: Path) -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManagerTaskRuntime()
    assert "celonis-runner" in manager.providers
    hook = manager.hooks["celonis"]
    assert hook is not None and hook.hook_class_name == "runner.airflow.hooks.CelonisHook"


def test_connection_settings_and_key_env_fallback(airflow_home: Path) -> None:
    from runner.airflow.credentials import ApiSettings, endpoint_from_connection, resolve_endpoint
    from runner.api import KeyAuth, OAuthClientAuth
    from runner.errors import UsageError

    oauth = SimpleNamespace(
        conn_id="celonis_default",
        host="https://acme.eu-1.celonis.cloud",
        schema=None,
        port=None,
        login="client-1",
        password="s3cret",
        extra='{"auth_type": "oauth", "scope": "x"}',
    )
    endpoint = endpoint_from_connection(oauth)
    assert isinstance(endpoint.auth, OAuthClientAuth) and endpoint.auth.scope == "x"
    assert endpoint.base_url == "https://acme.eu-1.celonis.cloud"
    # the form stores its fields in extra, null when left empty (older forms: prefixed keys)
    for extra in ('{"auth_type": null, "scope": null}', '{"extra__celonis__auth_type": "app_key"}'):
        plain = endpoint_from_connection(SimpleNamespace(**{**vars(oauth), "extra": extra}))
        assert isinstance(plain.auth, KeyAuth)
        assert plain.auth.scheme == ("AppKey" if "app_key" in extra else "Bearer")
    with pytest.raises(UsageError, match="has no password: put the key there"):
        endpoint_from_connection(SimpleNamespace(**{**vars(oauth), "password": "", "extra": None}))
    # no connection: the manifest's base URL and key_env
    settings = ApiSettings(base_url="https://acme.eu-1.celonis.cloud", key_env="TEAM_KEY")
    fallback = resolve_endpoint(settings, None, {"TEAM_KEY": "k"})
    assert isinstance(fallback.auth, KeyAuth) and fallback.auth.key_env == "TEAM_KEY"
    with pytest.raises(UsageError, match="connection 'other' is not defined"):
        resolve_endpoint(ApiSettings(conn_id="other"), None, {"TEAM_KEY": "k"})
    # an environment's URL is not overridden by a $CELONIS_BASE_URL that names another Celonis
    prod = ApiSettings(base_url="https://prod.eu-1.celonis.cloud", environment="prod")
    ambient = {"CELONIS_API_KEY": "k", "CELONIS_BASE_URL": "https://dev.eu-1.celonis.cloud"}
    with pytest.raises(UsageError, match="environment 'prod' declares"):
        resolve_endpoint(prod, None, ambient)
    agreeing = {**ambient, "CELONIS_BASE_URL": "https://prod.eu-1.celonis.cloud/"}
    assert resolve_endpoint(prod, None, agreeing).base_url == "https://prod.eu-1.celonis.cloud"


def test_docs_show_the_example_dag_that_runs_here() -> None:
    text = (ROOT / "docs" / "airflow.md").read_text()
    example = (EXAMPLE_DAGS / "celonis_nightly.py").read_text()
    assert f"```python\n{example}```" in text


def test_task_group_with_select_sits_between_other_tasks(airflow_home: Path) -> None:
    from airflow.sdk import DAG, TriggerRule

    from runner.airflow import CelonisTaskGroup
    from runner.airflow.dag import FailureAllowed

    with DAG("orders_pipeline", schedule=None) as dag:
        before, after = FailureAllowed(task_id="land_files"), FailureAllowed(task_id="notify")
        group = CelonisTaskGroup(
            manifest=EXAMPLE_MANIFEST,
            group_id="celonis",
            select=["+load_o2c_model"],
            exclude=["extract_sap_orders"],
        )
        before >> group >> after
    ids = set(dag.task_dict) - {"land_files", "notify"}
    assert ids == {
        "celonis.extract_sap_deliveries",
        "celonis.extract_salesforce",
        "celonis.transform_o2c",
        "celonis.quality_checks",
        "celonis.quality_checks__failure_allowed",
        "celonis.load_o2c_model",
    }
    load = dag.task_dict["celonis.load_o2c_model"]
    assert load.upstream_task_ids == {
        "celonis.quality_checks__failure_allowed",
        "celonis.extract_salesforce",
    }
    assert load.trigger_rule == TriggerRule.ALL_SUCCESS
    assert (
        dag.task_dict["celonis.quality_checks__failure_allowed"].trigger_rule
        == TriggerRule.ONE_DONE
    )
    assert dag.task_dict["celonis.extract_salesforce"].upstream_task_ids == {"land_files"}
    assert "celonis.load_o2c_model" in dag.task_dict["notify"].upstream_task_ids


# -- pools and jobs by name, environments (issue 23) -------------------------------------------

BY_NAME = """\
version: 1
environments:
  dev:
    connection:
      base_url: http://127.0.0.1:9
      auth: {key_env: DEV_KEY}
  prod:
    connection:
      base_url: http://127.0.0.1:9
      auth: {key_env: PROD_KEY}
    defaults:
      timeout: 3h
pools:
  sap: {celonis_name: SAP ECC}
  crm: {celonis_name: Salesforce}
jobs:
  extract:
    pool: sap
    celonis_name: Extract orders
    expected_duration: 5m
  transform:
    pool: sap
    celonis_name: Transform orders
    depends_on: [extract]
    expected_duration: 5m
  accounts:
    pool: crm
    celonis_name: Load accounts
    expected_duration: 5m
"""

BY_NAME_DAG = """
from pathlib import Path

from runner.airflow import dag_from_manifest

dag = dag_from_manifest(
    Path(__file__).parent / "{manifest}", dag_id="{dag_id}", environment="prod"
)
"""

PROD = {
    ("SAP ECC", "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"): {
        "Extract orders": "a8e1d5c3-7b9f-4a2e-8c6d-3f0b1e7a9d25",
        "Transform orders": "2c9e7b1f-5a3d-4f8c-b6e0-9d4a1c7e3b56",
    },
    ("Salesforce", "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77"): {
        "Load accounts": "6f2a9c4e-8b1d-4d7f-a3e5-0c9b2e6f1a84",
    },
}


@pytest.fixture
def prod_team(airflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The prod team's emulator (pools and jobs with names), behind the connection celonis_prod;
    celonis_default points nowhere."""
    from runner.clock import ScaledClock
    from runner.emulator import Emulator, Scenario

    pools = [
        {
            "id": pool_id,
            "name": pool,
            "jobs": [{"id": i, "name": n, "duration": "5m"} for n, i in jobs.items()],
        }
        for (pool, pool_id), jobs in PROD.items()
    ]
    scenario = Scenario.from_dict({"time_scale": SCALE, "queued_for": "5s", "pools": pools})
    with Emulator(scenario, clock=ScaledClock(SCALE), api_keys=[KEY]) as emulator:
        connection = {"conn_type": "celonis", "host": emulator.base_url, "password": KEY}
        monkeypatch.setenv("AIRFLOW_CONN_CELONIS_PROD", json.dumps(connection))
        nowhere = {"conn_type": "celonis", "host": "http://127.0.0.1:9", "password": "x"}
        monkeypatch.setenv("AIRFLOW_CONN_CELONIS_DEFAULT", json.dumps(nowhere))
        monkeypatch.setenv("CELONIS_RUNNER_TIME_SCALE", str(SCALE))
        yield emulator


def _by_name_dag(home: Path, dag_id: str, manifest_text: str) -> Any:
    dags = home / "dags"
    (dags / f"{dag_id}.yaml").write_text(manifest_text)
    dag_file = dags / f"{dag_id}.py"
    dag_file.write_text(BY_NAME_DAG.format(manifest=f"{dag_id}.yaml", dag_id=dag_id))
    return load_dag_file(dag_file)


def _requests(emulator: Any) -> list[str]:
    return [f"{e['method']} {e['path']}" for e in emulator.journal() if e.get("type") == "request"]


def test_names_are_looked_up_once_per_dag_run_in_the_chosen_environment(
    airflow_home: Path, prod_team: Any
) -> None:
    """environment="prod": connection celonis_prod, prod's defaults; one pool list and one job
    list per pool for the whole DAG run (the task celonis_names), every job run by prod's ids."""
    import re

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = _by_name_dag(airflow_home, "celonis_by_name", BY_NAME)
    assert dag.task_dict["extract"].timeout == 3 * 3600  # prod's defaults
    assert dag.task_dict["extract"].api_settings.conn_id == "celonis_prod"
    assert dag.task_dict["celonis_names"].downstream_task_ids == {
        "extract",
        "transform",
        "accounts",
    }
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(("celonis_names", "extract", "transform", "accounts"), "success")
    requests = _requests(prod_team)
    assert requests.count("GET /integration/api/pools") == 1
    lists = [r for r in requests if re.fullmatch(r"GET /integration/api/pools/[^/]+/jobs", r)]
    assert len(lists) == 2  # one per pool, not one per job or per task
    executes = sorted(r.split("/")[-2] for r in requests if r.endswith("/execute"))
    by_id = {i: n for jobs in PROD.values() for n, i in jobs.items()}
    assert sorted(by_id[i] for i in executes) == [
        "Extract orders",
        "Load accounts",
        "Transform orders",
    ]
    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        done = {x.task_id: x.value for x in xcoms if x.key == "return_value"}
    assert done["celonis_names"]["jobs.accounts"] == [
        "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77",
        "6f2a9c4e-8b1d-4d7f-a3e5-0c9b2e6f1a84",
    ]
    assert done["accounts"]["job_id"] == "6f2a9c4e-8b1d-4d7f-a3e5-0c9b2e6f1a84"


def test_a_name_that_matches_nothing_fails_the_names_task_at_its_line(
    airflow_home: Path, prod_team: Any
) -> None:
    """No job task runs (none executes in Celonis); the names task fails for good (no retry)
    with the name's file:line:col and did-you-mean."""
    from airflow.sdk.exceptions import AirflowFailException

    text = BY_NAME.replace("celonis_name: Load accounts", "celonis_name: Load acounts")
    dag = _by_name_dag(airflow_home, "celonis_by_bad_name", text)
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["celonis_names"] == "failed"
    assert {states[n] for n in ("extract", "transform", "accounts")} == {"upstream_failed"}
    assert not [r for r in _requests(prod_team) if r.endswith("/execute")]
    manifest = airflow_home / "dags" / "celonis_by_bad_name.yaml"
    line = text.splitlines().index("    celonis_name: Load acounts") + 1
    with pytest.raises(AirflowFailException) as failed:  # what the failed task raised
        dag.task_dict["celonis_names"].execute({})
    assert (
        f"{manifest}:{line}:5: jobs.accounts.celonis_name: no data job named 'Load acounts'"
        " in pool 'crm' (did you mean 'Load accounts'?)"
    ) in str(failed.value)


def test_names_resolved_at_parse_time_only_when_asked(
    airflow_home: Path, prod_team: Any, tmp_path: Path
) -> None:
    from runner.airflow import CelonisManifestError, dag_from_manifest

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(BY_NAME)
    before = len(_requests(prod_team))
    lazy = dag_from_manifest(manifest, dag_id="lazy", environment="prod")
    assert len(_requests(prod_team)) == before  # parsing asks Celonis nothing
    assert lazy.task_dict["accounts"].job_id == ""
    eager = dag_from_manifest(manifest, dag_id="eager", environment="prod", resolve_at_parse=True)
    assert "celonis_names" not in eager.task_dict
    assert eager.task_dict["accounts"].job_id == "6f2a9c4e-8b1d-4d7f-a3e5-0c9b2e6f1a84"
    manifest.write_text(BY_NAME.replace("Extract orders", "Extract ordres"))
    with pytest.raises(
        CelonisManifestError, match=r"jobs\.yaml:\d+:\d+: jobs\.extract\.celonis_name"
    ):
        dag_from_manifest(manifest, dag_id="bad", environment="prod", resolve_at_parse=True)
