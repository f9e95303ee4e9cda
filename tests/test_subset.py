"""Running part of a data job (issue 12): the manifest's subset keys, their checks, the plan,
the names resolved through the API and the subset execute, end to end against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline, run_pipeline

Cli = Callable[..., CliResult]
FAILURE = "ORA-00942: table or view does not exist"


def tasks(**customers: Any) -> list[dict[str, Any]]:
    """A job of five tasks; `customers` changes the second extraction."""
    return [
        {"name": "SAP orders", "type": "extraction", "tables": ["VBAK", "VBAP"], "duration": "1m"},
        {"name": "SAP customers", "type": "extraction", "tables": ["KNA1"], "duration": "1m"}
        | customers,
        {"name": "Create O2C", "type": "transformation", "duration": "1m"},
        {"name": "Old SQL", "type": "transformation", "duration": "1m", "disabled": True},
        {"name": "O2C", "type": "data_model_load", "tables": ["VBAK"], "duration": "1m"},
    ]


def pipeline(tmp_path: Path, job_tasks: list[dict[str, Any]], **subset: Any) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap")
    p.job("refresh_orders", "sap", behaviour={"tasks": job_tasks}, **subset)
    del p.behaviour["refresh_orders"]["duration"]  # with tasks, durations are per task
    return p


def started(journal: Journal, name: str = "refresh_orders") -> list[dict[str, Any]]:
    return journal.executions(name)


def execute_posts(journal: Journal) -> list[dict[str, Any]]:
    return [r for r in journal.requests("POST") if r["path"].endswith("/execute")]


def test_a_subset_by_name_runs_only_the_named_tasks_with_the_internal_execute(
    cli: Cli, tmp_path: Path
) -> None:
    p = pipeline(
        tmp_path,
        tasks(),
        extractions={"SAP orders": ["VBAK"]},
        transformations=["Create O2C"],
        data_models="none",
    )
    result, journal, _ = run_pipeline(cli, p)
    assert result.code == 0, result.err
    [execution] = started(journal)
    subset = execution["subset"]
    assert [e["tables"] for e in subset["extractions"]] == [["VBAK"]]
    assert len(subset["transformations"]) == 1 and len(subset["tasks"]) == 2
    [post] = execute_posts(journal)
    assert "/v2/" not in post["path"]


def test_a_whole_job_keeps_the_public_endpoint(cli: Cli, tmp_path: Path) -> None:
    result, journal, _ = run_pipeline(cli, pipeline(tmp_path, tasks()))
    assert result.code == 0, result.err
    [post] = execute_posts(journal)
    assert "/v2/data-pools/" in post["path"]
    assert started(journal)[0].get("subset") is None
