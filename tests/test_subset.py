"""Running part of a data job: the manifest's subset keys, their checks, the plan,
the names resolved through the API and the subset execute, end to end against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema
import yaml
from jsonschema import FormatChecker

from runner.schema import REPORT_SCHEMA, load_schema
from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline, emulator_for, job_uuid, pool_uuid, run_pipeline

Cli = Callable[..., CliResult]
FAILURE = "ORA-00942: table or view does not exist"
KEY = "subset-test-key-0123456789"


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


CUSTOMERS_ID = "0b7c2d4e-1f3a-4b5c-8d9e-0a1b2c3d4e5f"


def test_a_subset_by_id_and_a_disabled_task_warned(cli: Cli, tmp_path: Path) -> None:
    job_tasks = tasks(id=CUSTOMERS_ID)
    p = pipeline(
        tmp_path,
        job_tasks,
        extractions=[CUSTOMERS_ID.upper()],
        transformations=["Old SQL"],
        data_models=[],
    )
    result, journal, _ = run_pipeline(cli, p)
    assert result.code == 0, result.err
    assert "transformation 'Old SQL' is disabled in Celonis" in result.err
    assert (
        "jobs.yaml:" in result.err and "warning: jobs.refresh_orders.transformations" in result.err
    )
    [execution] = started(journal)
    assert execution["subset"]["extractions"] == [CUSTOMERS_ID]
    assert execution["subset"]["tasks"][0] == CUSTOMERS_ID


def test_an_unknown_name_stops_the_run_before_anything_starts(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(
        tmp_path,
        tasks(),
        extractions={"SAP Orders": ["VBAK", "VBAX"], "SAP customers": ["KNA2"]},
        data_models=["O2D"],
    )
    result, journal, _ = run_pipeline(cli, p)
    assert result.code == 2
    assert "the data job has no extraction 'SAP Orders' (did you mean 'SAP orders'?)" in result.err
    assert "extraction 'SAP customers' has no table 'KNA2' (did you mean 'KNA1'?)" in result.err
    assert "the data job loads no data model 'O2D' (did you mean 'O2C'?)" in result.err
    assert "3 task names not found in Celonis; nothing was started" in result.err
    assert started(journal) == []
    assert "Traceback" not in result.err
    # placed at the key in the manifest
    lines = (tmp_path / "jobs.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "SAP Orders:")
    assert (
        f"jobs.yaml:{line}:7: jobs.refresh_orders.extractions.SAP Orders: the data job"
        in result.err
    )


def test_plan_check_remote_resolves_the_names_read_only(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path, tasks(), transformations=["Create 02C"])
    manifest, scenario = p.write()
    result = cli(
        "plan",
        str(manifest),
        "--check-remote",
        "--emulator",
        "--scenario",
        str(scenario),
        environ={},
    )
    assert result.code == 2, result.err
    assert "no transformation 'Create 02C' (did you mean 'Create O2C'?)" in result.err


POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
ISSUE_EXAMPLE = f"""\
version: 1
pools:
  sap_ecc:
    id: {POOL}
jobs:
  refresh_orders:
    pool: sap_ecc
    id: {JOB}
    mode: DELTA
    extractions:                 # only these extractions...
      SAP orders: [VBAK, VBAP]   # ...and of this one only these tables
      SAP customers: all         # every table of this one
    transformations: [Create O2C activities]
    data_models: [O2C]           # data model loads; `all` / `none`
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_example_is_valid_and_becomes_the_model(tmp_path: Path) -> None:
    from runner.manifest.loader import load_manifest
    from runner.manifest.task_subset import TaskSubset

    manifest = load_manifest(write(tmp_path, ISSUE_EXAMPLE), {})
    assert manifest.jobs["refresh_orders"].tasks == TaskSubset(
        extractions=(("SAP orders", ("VBAK", "VBAP")), ("SAP customers", None)),
        transformations=("Create O2C activities",),
        data_models=("O2C",),
    )


@pytest.mark.parametrize(
    ("lines", "where", "message"),
    [
        (
            "    transformations: [Create O2C, Create O2C]",
            "9:35: jobs.a.transformations[1]",
            "the same name as item 1; name each name once",
        ),
        (
            "    extractions: {SAP orders: [VBAK, VBAK]}",
            "9:38: jobs.a.extractions.SAP orders[1]",
            "the same table as item 1; name each table once",
        ),
        (
            "    transformations:\n      Create O2C: [T1]",
            "10:7: jobs.a.transformations",
            "tables can be chosen only under 'extractions'",
        ),
        (
            "    data_models: [{O2C: [VBAK]}]",
            "9:18: jobs.a.data_models",
            "tables can be chosen only under 'extractions'",
        ),
        (
            "    extractions: none\n    transformations: []\n    data_models: none",
            "7:5: jobs.a",
            "the job runs nothing",
        ),
        (
            "    extractions: {SAP orders: []}",
            "9:31: jobs.a.extractions.SAP orders",
            "name at least one table, or 'all'",
        ),
        ("    data_models: some", "9:18: jobs.a.data_models", "'all' or 'none', got 'some'"),
    ],
    ids=[
        "twice",
        "table-twice",
        "tables-transformation",
        "tables-model",
        "empty",
        "no-table",
        "word",
    ],
)
def test_what_validate_refuses_in_the_subset_keys(
    tmp_path: Path, lines: str, where: str, message: str
) -> None:
    from runner.manifest.loader import check_manifest
    from tests.test_schema_agreement import check_jsonschema

    text = (
        f"version: 1\npools:\n  sap:\n    id: {POOL}\njobs:\n  a:\n    pool: sap\n    id: {JOB}\n"
    )
    path = write(tmp_path, text + lines + "\n")
    problems = check_manifest(path, {}, strict_env=True).problems
    assert len(problems) == 1 and message in problems[0].message, problems
    assert problems[0].render().startswith(f"{path}:{where}:"), problems[0].render()
    assert check_jsonschema(path).returncode == 1


def test_the_schema_and_validate_accept_every_form(tmp_path: Path) -> None:
    from runner.manifest.loader import check_manifest
    from tests.test_schema_agreement import check_jsonschema

    forms = """\
  all_forms:
    pool: sap_ecc
    id: 5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55
    extractions: [SAP orders]
    transformations: all
    data_models: none
  only_loads:
    pool: sap_ecc
    id: 6b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55
    extractions: {}
    transformations: none
    data_models: all
"""
    path = write(tmp_path, ISSUE_EXAMPLE + forms)
    assert check_manifest(path, {}, strict_env=True).problems == []
    result = check_jsonschema(path)
    assert result.returncode == 0, result.stdout


def test_plan_shows_the_subset_in_every_format(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, ISSUE_EXAMPLE)
    text = cli("plan", str(path), environ={}).out
    assert (
        "only extractions: SAP orders [VBAK, VBAP], SAP customers; "
        "transformations: Create O2C activities; data_models: O2C"
    ) in text
    data = json.loads(cli("plan", str(path), "--format", "json", environ={}).out)
    assert data["jobs"][0]["tasks"] == {
        "extractions": {"SAP orders": ["VBAK", "VBAP"], "SAP customers": "all"},
        "transformations": ["Create O2C activities"],
        "data_models": ["O2C"],
    }
    for fmt in ("mermaid", "dot"):
        shown = cli("plan", str(path), "--format", fmt, environ={}).out
        assert "part: 2 extractions, 1 transformation, 1 data model" in shown


def failing_pipeline(tmp_path: Path) -> Pipeline:
    return pipeline(tmp_path, tasks(outcomes=["FAIL", "SUCCESS"], message=FAILURE))


def test_task_results_in_the_report_state_summary_junit_and_github(
    cli: Cli, tmp_path: Path
) -> None:
    p = failing_pipeline(tmp_path)
    summary = tmp_path / "summary.md"
    result, _, report = run_pipeline(
        cli,
        p,
        "--junit-xml",
        str(tmp_path / "junit.xml"),
        environ={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "true"},
    )
    assert result.code == 1, result.err
    jsonschema.validate(report, load_schema(REPORT_SCHEMA), format_checker=FormatChecker())
    [job] = report["jobs"]
    assert job["subset"] is None
    assert [(t["name"], t["status"]) for t in job["tasks"]] == [
        ("SAP orders", "SUCCESS"),
        ("SAP customers", "FAIL"),
        ("Create O2C", "SKIPPED"),
        ("O2C", "SKIPPED"),
    ]
    assert job["tasks"][0]["duration_seconds"] == 60.0
    assert job["tasks"][1]["error"] == FAILURE and job["error"] == f"FAIL: {FAILURE}"
    assert job["tasks"][0]["started_at"].endswith("Z")
    # the summary: a block of the job's tasks
    assert f"  SAP customers  failed     1m        {FAILURE}" in result.out + result.err
    # JUnit: properties of the job's test case, and its system-out
    junit = (tmp_path / "junit.xml").read_text()
    xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit.xsd")).validate(junit)
    assert (
        f'<property name="refresh_orders.task.2" value="SAP customers: failed 1m: {FAILURE}" />'
        in junit
    )
    assert "task: Create O2C: skipped -" in junit
    # GitHub step summary: a task table
    text = summary.read_text()
    assert f"| refresh_orders | SAP customers | failed | 1m | {FAILURE} |" in text
    # the state file keeps them (schema-checked when read back)
    [state] = (tmp_path / "runs").glob("*.json")
    saved = json.loads(state.read_text())["jobs"]["refresh_orders"]
    assert [t["status"] for t in saved["tasks"]] == ["SUCCESS", "FAIL", "SKIPPED", "SKIPPED"]


def resume_run(cli: Cli, p: Pipeline, base_url: str, *extra: str) -> CliResult:
    env = {
        "CELONIS_API_KEY": KEY,
        "CELONIS_RUNNER_TIME_SCALE": "3000",
        "CELONIS_RUNNER_STATE_DIR": str(p.folder / "runs"),
    }
    return cli("run", str(p.folder / "jobs.yaml"), "--base-url", base_url, *extra, environ=env)


def test_resume_runs_only_the_failed_and_skipped_tasks(cli: Cli, tmp_path: Path) -> None:
    p = failing_pipeline(tmp_path)
    p.write()
    report = tmp_path / "report.json"
    with emulator_for(p, KEY) as emu:
        assert resume_run(cli, p, emu.base_url).code == 1
        second = resume_run(cli, p, emu.base_url, "--resume", "--report", str(report))
        assert second.code == 0, second.err
        first_run, resumed = Journal(emu.journal()).executions("refresh_orders")
        by_name = {t["name"]: t["id"] for t in emu_tasks(emu)}
    assert first_run.get("subset") is None  # the first run: the whole job
    expected = [by_name["SAP customers"], by_name["Create O2C"], by_name["O2C"]]
    assert resumed["subset"]["tasks"] == expected
    assert resumed["subset"]["extractions"] == [by_name["SAP customers"]]
    data = json.loads(report.read_text())
    jsonschema.validate(data, load_schema(REPORT_SCHEMA), format_checker=FormatChecker())
    [job] = data["jobs"]
    assert job["status"] == "succeeded"
    assert [t["name"] for t in job["tasks"]] == ["SAP customers", "Create O2C", "O2C"]
    assert job["subset"] == {
        "extractions": {"SAP customers": "all"},
        "transformations": ["Create O2C"],
        "data_models": ["O2C"],
    }


def test_resume_whole_jobs_runs_the_whole_job_again(cli: Cli, tmp_path: Path) -> None:
    p = failing_pipeline(tmp_path)
    p.write()
    with emulator_for(p, KEY) as emu:
        assert resume_run(cli, p, emu.base_url).code == 1
        second = resume_run(cli, p, emu.base_url, "--resume", "--whole-jobs")
        assert second.code == 0, second.err
        executions = Journal(emu.journal()).executions("refresh_orders")
    assert [e.get("subset") for e in executions] == [None, None]


def emu_tasks(emu: Any) -> list[dict[str, Any]]:
    import requests

    job = job_uuid("refresh_orders")
    pool = pool_uuid("sap")
    answer = requests.get(
        f"{emu.base_url}/integration/api/pools/{pool}/jobs/{job}/tasks/",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    tasks: list[dict[str, Any]] = answer.json()
    return tasks


def test_resume_refuses_when_the_jobs_tasks_changed_and_force_runs_it_whole(
    cli: Cli, tmp_path: Path
) -> None:
    from runner.clock import ScaledClock
    from runner.emulator import Emulator, Scenario

    p = failing_pipeline(tmp_path)
    p.write()
    with emulator_for(p, KEY) as emu:
        assert resume_run(cli, p, emu.base_url).code == 1
        port = int(emu.base_url.rsplit(":", 1)[1])
    # the same Celonis (same address), where someone added a transformation since
    changed = tasks()  # and fixed the source: a new emulator's first execution
    changed.insert(3, {"name": "New SQL", "type": "transformation", "duration": "1m"})
    p.behaviour["refresh_orders"]["tasks"] = changed
    _, scenario_path = p.write()
    scenario = Scenario.from_dict(yaml.safe_load(scenario_path.read_text()))
    with Emulator(scenario, clock=ScaledClock(3000), api_keys=[KEY], port=port) as emu:
        refused = resume_run(cli, p, emu.base_url, "--resume")
        assert refused.code == 2
        assert (
            "the tasks of job 'refresh_orders' changed in Celonis since run" in refused.err
            and "task 'New SQL' was added" in refused.err
            and "Resume with --whole-jobs" in refused.err
        ), refused.err
        assert Journal(emu.journal()).executions("refresh_orders") == []
        forced = resume_run(cli, p, emu.base_url, "--resume", "--force")
        assert forced.code == 0, forced.err
        [execution] = Journal(emu.journal()).executions("refresh_orders")
    assert execution.get("subset") is None  # the whole job


def test_tasks_option_runs_part_of_a_job_and_selects_it(cli: Cli, tmp_path: Path) -> None:
    p = pipeline(tmp_path, tasks())
    p.job("other", "sap")
    result, journal, report = run_pipeline(
        cli, p, "--tasks", "refresh_orders:SAP orders[VBAP];transformations=Create O2C"
    )
    assert result.code == 0, result.err
    [execution] = started(journal)
    assert [e["tables"] for e in execution["subset"]["extractions"]] == [["VBAP"]]
    assert len(execution["subset"]["tasks"]) == 2  # data models: none, as the option says
    assert started(journal, "other") == []  # --tasks selected its job only
    assert report["jobs"][0]["subset"] == {
        "extractions": {"SAP orders": ["VBAP"]},
        "transformations": ["Create O2C"],
        "data_models": [],
    }


@pytest.mark.parametrize(
    ("option", "keys"),
    [
        ("j:SAP orders", {"extractions": {"SAP orders": "all"}}),
        ("j:A[T1, T2],B", {"extractions": {"A": ["T1", "T2"], "B": "all"}}),
        ("j:transformations=X,Y", {"transformations": ["X", "Y"]}),
        ("j:extractions=all;data_models=M", {"extractions": "all", "data_models": ["M"]}),
    ],
)
def test_tasks_option_grammar(option: str, keys: dict[str, Any]) -> None:
    from runner.manifest.task_subset import parse_tasks_option

    job, parsed = parse_tasks_option(option)
    assert job == "j"
    assert parsed == {"extractions": [], "transformations": [], "data_models": [], **keys}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("refresh_orders", "write JOB:TASKS"),
        ("refresh_orders:views=A", "unknown kind 'views'"),
        ("refresh_orders:transformations=A[T]", "only extractions have tables"),
        ("refresh_orders:A[T", "close the table list"),
        ("refresh_orders:transformations=A,A", "the same name as item 1"),
    ],
)
def test_tasks_option_mistakes_are_usage_errors(
    cli: Cli, tmp_path: Path, option: str, message: str
) -> None:
    path = write(tmp_path, ISSUE_EXAMPLE)
    result = cli("plan", str(path), "--tasks", option, environ={})
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err


def test_a_resume_keeps_the_tasks_option_and_runs_only_the_failed_task(
    cli: Cli, tmp_path: Path
) -> None:
    p = failing_pipeline(tmp_path)
    p.write()
    option = ("--tasks", "refresh_orders:SAP orders,SAP customers")
    with emulator_for(p, KEY) as emu:
        assert resume_run(cli, p, emu.base_url, *option).code == 1
        other = resume_run(cli, p, emu.base_url, "--resume", "--tasks", "refresh_orders:O2C")
        assert other.code == 2 and "keeps the selection it started with" in other.err
        assert resume_run(cli, p, emu.base_url, "--resume").code == 0
        first, resumed = Journal(emu.journal()).executions("refresh_orders")
        by_name = {t["name"]: t["id"] for t in emu_tasks(emu)}
    assert first["subset"]["tasks"] == [by_name["SAP orders"], by_name["SAP customers"]]
    assert resumed["subset"]["tasks"] == [by_name["SAP customers"]]


def test_a_subset_execute_whose_answer_is_lost_runs_once(cli: Cli, tmp_path: Path) -> None:
    """The internal execute gets the same care as the v2 one: the connection drops after the
    job started, the runner settles that it did and never sends it again."""
    p = pipeline(tmp_path, tasks(), transformations="none", data_models="none")
    p.settings["faults"] = [
        {
            "method": "POST",
            "path": "/integration/api/pools/*/jobs/*/execute",
            "action": "drop_after",
            "times": 1,
        }
    ]
    result, journal, report = run_pipeline(cli, p)
    assert result.code == 0, result.err
    assert len(started(journal)) == 1
    assert len(execute_posts(journal)) == 1
    assert [t["name"] for t in report["jobs"][0]["tasks"]] == ["SAP orders", "SAP customers"]


class _Tasks:
    """The read side of TaskReader over fixed answers (what resolve reads, nothing else)."""

    def __init__(self, tables: dict[str, list[str]]) -> None:
        self._tables = tables

    def tables(self, pool_id: str, job_id: str, extraction_id: str) -> list[str]:
        return self._tables[extraction_id]

    def loads(self, pool_id: str, job_id: str) -> list[Any]:
        from runner.task_records import LoadInfo

        return [LoadInfo("m1", "O2C")]


def test_resolve_gives_ids_and_refuses_a_name_two_tasks_share() -> None:
    from runner.manifest.task_subset import TaskSubset
    from runner.preflight.task_names import resolve
    from runner.task_records import TaskInfo

    listed = [
        TaskInfo("e1", "SAP orders", "EXTRACTION"),
        TaskInfo("e2", "SAP orders", "EXTRACTION"),
        TaskInfo("e3", "SAP customers", "EXTRACTION"),
        TaskInfo("t1", "Create O2C", "TRANSFORMATION"),
        TaskInfo("m1", "O2C", "DATA_MODEL_LOAD"),
    ]
    reader: Any = _Tasks({"e3": ["KNA1"]})
    subset = TaskSubset(
        extractions=(("E3", ("KNA1",)),), transformations=("Create O2C",), data_models=("O2C",)
    )
    found = resolve(reader, "p", "j", subset, listed)
    assert found.errors == [] and found.ids is not None
    assert found.ids.body() == {
        "executeOnlySubsetOfExtractions": True,
        "extractions": [{"extractionId": "e3", "loadOnlySubsetOfTables": True, "tables": ["KNA1"]}],
        "executeOnlySubsetOfTransformations": True,
        "transformations": ["t1"],
        "loadOnlySubsetOfDataModels": True,
        "dataModels": [{"dataModelExecutionId": "m1", "tables": []}],
    }
    twice = resolve(reader, "p", "j", TaskSubset(extractions=(("SAP orders", None),)), listed)
    assert twice.ids is None
    assert twice.errors == [
        (
            ("extractions", "SAP orders"),
            "the job has 2 extractions named 'SAP orders' (e1, e2): give the id",
        )
    ]
    whole_kinds = resolve(reader, "p", "j", TaskSubset(transformations=()), listed)
    assert whole_kinds.ids is not None
    body = whole_kinds.ids.body()
    assert body["executeOnlySubsetOfExtractions"] is False and body["extractions"] == []
    assert body["executeOnlySubsetOfTransformations"] is True and body["transformations"] == []


def test_the_summary_lists_the_tasks_of_jobs_that_failed_or_ran_a_part_only() -> None:
    from runner.execution.runstate import JobRun, JobState, job_result
    from runner.reports.tasks import summary_text
    from runner.task_records import TaskResult
    from tests.fake_celonis import job as fake_job
    from tests.fake_celonis import plan_of

    plan = plan_of(fake_job("whole"), fake_job("broken"))
    done = (TaskResult("t1", "Extract", "SUCCESS"), TaskResult("t2", "Transform", "SUCCESS"))
    failed = (TaskResult("t1", "Extract", "SUCCESS"), TaskResult("t2", "Transform", "FAIL"))
    whole = JobRun(plan.jobs["whole"], state=JobState.SUCCEEDED, tasks=done)
    broken = JobRun(plan.jobs["broken"], state=JobState.FAILED, tasks=failed)
    text = summary_text([job_result(whole), job_result(broken)], lambda line: line or "")
    assert "Tasks of broken:" in text and "Tasks of whole:" not in text


def test_a_task_named_and_given_by_id_is_sent_once(cli: Cli, tmp_path: Path) -> None:
    """Issue 25 (10): `--tasks 'j:transformations=T1,<T1's id>'` sent T1's id twice in the
    execute body; the ids are de-duplicated after the names are resolved."""
    o2c_id = "0b7f3a52-4c1e-4d8a-9f3b-6e2d1c0a9b87"
    job_tasks = [t | {"id": o2c_id} if t["name"] == "Create O2C" else t for t in tasks()]
    result, journal, _ = run_pipeline(
        cli,
        pipeline(tmp_path, job_tasks),
        "--tasks",
        f"refresh_orders:transformations=Create O2C,{o2c_id.upper()}",
    )
    assert result.code == 0, result.err
    [execution] = started(journal)
    assert execution["subset"]["transformations"] == [o2c_id]


def test_a_tasks_option_error_points_at_the_command_line(cli: Cli, tmp_path: Path) -> None:
    """Issue 22 #14: a name given with --tasks is not on any line of the manifest."""
    p = pipeline(tmp_path, tasks())
    result, journal, _ = run_pipeline(
        cli, p, "--tasks", "refresh_orders:SAP Orders", "--github", environ={"CELONIS_API_KEY": KEY}
    )
    assert result.code == 2
    assert (
        "command line: --tasks 'refresh_orders:SAP Orders': the data job has no extraction"
        " 'SAP Orders' (did you mean 'SAP orders'?)"
    ) in result.err
    assert "jobs.yaml:" not in result.err
    assert "::error title=celonis-runner::--tasks 'refresh_orders:SAP Orders': the data" in (
        result.err
    )
    assert started(journal) == []


def test_an_extraction_named_and_given_by_id_is_sent_once() -> None:
    """Issue 25 (10), extractions: named and given by id (with tables), one entry in the body."""
    from runner.manifest.task_subset import TaskSubset
    from runner.preflight.task_names import resolve
    from runner.task_records import TaskInfo

    listed = [TaskInfo("e3", "SAP customers", "EXTRACTION")]
    reader: Any = _Tasks({"e3": ["KNA1", "KNVV"]})
    subset = TaskSubset(extractions=(("SAP customers", ("KNA1",)), ("E3", ("KNVV", "KNA1"))))
    found = resolve(reader, "p", "j", subset, listed)
    assert found.errors == [] and found.ids is not None
    assert found.ids.body()["extractions"] == [
        {"extractionId": "e3", "loadOnlySubsetOfTables": True, "tables": ["KNA1", "KNVV"]}
    ]
