"""Issue 20 #4 with Airflow: a retry under a stale status never executes a second time. Runs the
operator in-process against the emulator (the fixtures of tests/test_airflow.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.test_airflow import ONE_JOB, Journal, _operator, celonis

__all__ = ["celonis"]  # the fixture these tests use

EXECUTE = "/integration/api/v2/data-pools/*"


def test_a_retry_within_the_stale_window_takes_the_earlier_tries_execution(
    celonis: Callable[..., Any], tmp_path: Path
) -> None:
    """Try 1's execute takes effect and its answer is lost; try 2 runs while Celonis still shows
    the old run (status and history, 10 min): its execute gets 409, which is try 1's execute
    taking effect. It waits for that execution: one execution, the task succeeds."""
    from runner.api import UnclearExecuteError

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(ONE_JOB.replace("expected_duration: 6h", "expected_duration: 1h"))
    fault = {"method": "POST", "path": EXECUTE, "action": "drop_after", "times": 1}
    emulator = celonis({"stale_status_for": "10m", "faults": [fault]}, manifest)
    began = datetime.now(UTC) - timedelta(seconds=1)
    first = _operator(manifest, deferrable=False)
    with pytest.raises(UnclearExecuteError):  # try 1 dies right after its execute
        first._client().execute(first.pool_id, first.job_id, "DELTA")
    retry = _operator(manifest, deferrable=False)
    context = {"ti": SimpleNamespace(try_number=2), "dag_run": SimpleNamespace(start_date=began)}
    assert retry.execute(context)["status"] == "SUCCESS"
    journal = Journal(emulator.journal(), manifest)
    assert len(journal.executions("long_load")) == 1
    assert journal.end("long_load")[1] == "SUCCESS"


def test_a_manifest_by_celonis_name_gets_a_names_task_not_a_parse_time_error(
    airflow_home: Path, tmp_path: Path
) -> None:
    """Issue 23: names are looked up in the DAG run by the task celonis_names (no request
    while parsing); the job task takes its ids from that task's XCom."""
    from runner.airflow.dag import dag_from_manifest

    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        "version: 1\npools:\n  sap: {celonis_name: SAP}\njobs:\n"
        "  load:\n    pool: sap\n    celonis_name: Load\n"
    )
    dag = dag_from_manifest(manifest, dag_id="by_name")
    assert dag.task_dict["load"].upstream_task_ids == {"celonis_names"}
    assert dag.task_dict["load"].names_task_id == "celonis_names"


def test_on_kill_waits_for_the_users_action_to_show_in_the_tasks_state(
    airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the trigger was cancelled before Airflow wrote "failed": read as "deferred",
    a mark failed was taken for a clear and nothing was cancelled (the deployment test)."""
    import asyncio

    from runner.airflow import triggers

    monkeypatch.setattr(triggers, "STATE_POLL", 0.01)
    trigger = triggers.CelonisJobTrigger({}, {})
    seen = iter([("deferred", True), ("deferred", True), ("failed", True)])

    async def state() -> tuple[str | None, bool]:
        return next(seen)

    monkeypatch.setattr(trigger, "_task_state", state)
    assert asyncio.run(trigger._settled_task_state()) == ("failed", True)
    monkeypatch.setattr(triggers, "STATE_SETTLE", 0.05)  # a trigger moved: stays deferred

    async def stays() -> tuple[str | None, bool]:
        return "deferred", True

    monkeypatch.setattr(trigger, "_task_state", stays)
    assert asyncio.run(trigger._settled_task_state()) == ("deferred", True)
