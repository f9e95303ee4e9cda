"""CI output: the JUnit XML report (validated against tests/data/junit.xsd), GitHub annotations and
step summary, and the plan's graph formats."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlschema

from runner.cli import main
from runner.execution.runstate import JobRun, JobState, RunState, run_result
from runner.manifest.loader import check_manifest
from runner.plan.build import build_plan
from runner.reports.junit import junit_text
from runner.reports.plan_output import write_mermaid
from tests.conftest import CliResult
from tests.e2e import Pipeline

ROOT = Path(__file__).parent.parent
XSD = Path(__file__).parent / "data" / "junit.xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"
Cli = Callable[..., CliResult]

# The JUnit schema that Jenkins and GitLab accept (tests/data/junit.xsd), checked by a real
# XSD validator.
JUNIT_SCHEMA = xmlschema.XMLSchema(str(XSD))


def check_junit(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    JUNIT_SCHEMA.validate(text)
    for node in [root, *root.iter("testsuite")]:  # what consumers parse as numbers
        for count in ("tests", "failures", "errors", "skipped"):
            if count in node.attrib:
                assert int(node.attrib[count]) >= 0
        float(node.attrib["time"])
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.attrib["tests"]) == len(cases)
        assert int(suite.attrib["failures"]) == sum(len(c.findall("failure")) for c in cases)
        assert int(suite.attrib["errors"]) == sum(len(c.findall("error")) for c in cases)
        assert int(suite.attrib["skipped"]) == sum(len(c.findall("skipped")) for c in cases)
        for case in cases:
            assert case.attrib["classname"] == suite.attrib["name"]
            float(case.attrib["time"])
    return root


def test_the_schema_rejects_what_consumers_refuse(tmp_path: Path) -> None:
    bad = (
        '<testsuites skipped="1"><testsuite tests="1">'
        '<testcase name="a"><system-out>x</system-out><skipped message="late"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert not JUNIT_SCHEMA.is_valid(bad)
    JUNIT_SCHEMA.validate(junit_text(run_result(_state(tmp_path))))


# -- one failed run against the emulator, shared by the tests below ----------------------


@dataclass
class FailedRun:
    result: CliResult
    manifest: Path
    junit: str
    summary: str
    lines: dict[str, int]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailedRun]:
    folder = tmp_path_factory.mktemp("ci")
    p = Pipeline(folder).pool("sap", max_parallel=2).pool("crm")
    p.job(
        "extract_a",
        "sap",
        behaviour={"outcome": "FAIL", "message": "Table VBAK: <timeout> | 5 rows"},
    )
    p.job("extract_b", "sap")
    p.job("transform", "sap", "extract_a", "extract_b")
    p.job("extract_crm", "crm")
    p.job(
        "crm_model",
        "crm",
        "extract_crm",
        allow_failure=True,
        behaviour={"outcome": "FAIL", "message": "bad data"},
    )
    p.job("load", "crm", "transform", "crm_model")
    manifest, scenario = p.write()
    summary = folder / "summary.md"
    summary.write_text("# earlier step\n")
    junit = folder / "out" / "junit.xml"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "run",
            str(manifest),
            "--emulator",
            "--scenario",
            str(scenario),
            "--junit-xml",
            str(junit),
            "--log-format",
            "json",
            "--state-dir",
            str(folder / "runs"),
        ],
        environ={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
        stdout=out,
        stderr=err,
    )
    text = manifest.read_text().splitlines()
    lines = {name: text.index(f"  {name}:") + 1 for name in p.jobs}
    yield FailedRun(
        CliResult(code, out.getvalue(), err.getvalue()),
        manifest,
        junit.read_text(),
        summary.read_text(),
        lines,
    )


def test_junit_has_a_suite_per_pool_and_a_case_per_job(failed_run: FailedRun) -> None:
    assert failed_run.result.code == 1
    root = check_junit(failed_run.junit)
    suites = {s.attrib["name"]: s for s in root.iter("testsuite")}
    assert list(suites) == ["sap", "crm"]
    assert {k: suites["sap"].attrib[k] for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "3",
        "failures": "1",
        "errors": "0",
        "skipped": "1",
    }
    assert (root.attrib["tests"], root.attrib["failures"]) == ("6", "1")
    cases = {c.attrib["name"]: c for c in root.iter("testcase")}
    assert list(cases) == [
        "extract_a",
        "extract_b",
        "transform",
        "extract_crm",
        "crm_model",
        "load",
    ]
    assert float(cases["extract_b"].attrib["time"]) > 0
    assert cases["extract_b"].find("failure") is None and cases["extract_b"].find("skipped") is None


def test_junit_failure_carries_celonis_reason(failed_run: FailedRun) -> None:
    cases = {c.attrib["name"]: c for c in ET.fromstring(failed_run.junit).iter("testcase")}
    failure = cases["extract_a"].find("failure")
    assert failure is not None
    assert failure.attrib["type"] == "failed"
    assert failure.attrib["message"].endswith("Table VBAK: <timeout> | 5 rows")
    assert failure.text is not None and "Table VBAK: <timeout> | 5 rows" in failure.text
    skipped = cases["transform"].find("skipped")
    assert skipped is not None and skipped.attrib == {
        "type": "skipped",
        "message": "skipped: extract_a failed",
    }
    allowed = cases["crm_model"].find("skipped")
    assert allowed is not None and allowed.attrib["type"] == "allowed_failure"
    assert "bad data" in allowed.attrib["message"]
    assert cases["load"].find("skipped") is not None  # after transform, which was skipped


def test_github_annotates_each_failure_at_its_line(failed_run: FailedRun) -> None:
    commands = [line for line in failed_run.result.err.splitlines() if line.startswith("::")]
    assert commands == [
        f"::error file={failed_run.manifest},line={failed_run.lines['extract_a']},"
        "title=celonis-runner%3A extract_a failed::FAIL: Table VBAK: <timeout> | 5 rows",
        f"::warning file={failed_run.manifest},line={failed_run.lines['crm_model']},"
        "title=celonis-runner%3A crm_model failed (allowed)::FAIL: bad data",
    ]
    assert "::" not in failed_run.result.out  # stdout stays the summary table


def test_github_step_summary_is_appended(failed_run: FailedRun) -> None:
    summary = failed_run.summary
    assert summary.startswith("# earlier step\n## celonis-runner: run failed\n")
    assert "| Job | Pool | Mode | Status | Duration | Reason |" in summary
    assert (
        "| extract_a | sap | DELTA | ❌ failed |" in summary
        and "FAIL: Table VBAK: &lt;timeout&gt; \\| 5 rows |" in summary
    )
    assert "| crm_model | crm | DELTA | ❌ failed (allowed) |" in summary
    assert "| transform | sap | DELTA | ⏭️ skipped | - | skipped: extract_a failed |" in summary
    assert (
        "### Failures" in summary
        and "```text\nFAIL: Table VBAK: <timeout> | 5 rows\n```" in summary
    )
    graph = summary.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert graph.startswith("flowchart LR\n")
    assert "subgraph" not in graph  # dagre fails on subgraphs from a few dozen jobs
    assert 'j0["extract_a<br/>DELTA in sap<br/>failed"]' in graph
    assert "class j0,j4 failed" in graph and "class j1,j2 succeeded" in graph
    assert "--resume" in summary


def test_no_github_output_outside_actions(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap", behaviour={"outcome": "FAIL"})
    manifest, scenario = p.write()
    summary = tmp_path / "summary.md"
    args = ["run", str(manifest), "--emulator", "--scenario", str(scenario), "--log-format", "json"]
    result = cli(*args, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 1 and "::error" not in result.err and not summary.exists()
    forced_off = cli(
        *args,
        "--no-github",
        environ={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert "::error" not in forced_off.err and not summary.exists()
    forced_on = cli(*args, "--github")
    assert "::error file=" in forced_on.err


# -- manifest problems as annotations in plan and run -------------------------------------


@pytest.mark.parametrize("command", ["plan", "run", "status"])
def test_manifest_problems_are_annotated_in_actions(
    cli: Cli, write_manifest: Callable[[str], Path], command: str
) -> None:
    path = write_manifest("version: 1\npools: {}\njobs: {}\n")
    result = cli(command, str(path), environ={"GITHUB_ACTIONS": "true"})
    assert result.code == 2
    assert (
        f"::error file={path},line=2,col=8,title=celonis-runner::pools: must not be empty\n"
        in result.err
    )
    assert f"{path}:2:8: pools: must not be empty" in result.err
    assert "::" not in cli(command, str(path)).err


def test_plan_warnings_are_annotated_and_stdout_stays_json(
    cli: Cli, write_manifest: Callable[[str], Path]
) -> None:
    path = write_manifest(
        """
        version: 1
        pools:
          sap: {id: "${SAP_POOL:-3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}"}
        jobs:
          extract: {pool: sap, id: "${EXTRACT_ID}"}
        """
    )
    result = cli("plan", str(path), "--format", "json", environ={"GITHUB_ACTIONS": "true"})
    assert result.code == 0, result.err
    assert json.loads(result.out)["format_version"] == 1
    assert result.err.startswith(f"::warning file={path},line=5,")


# -- the plan's pictures -----------------------------------------------------------------


def test_mermaid_dot_and_json_show_pools_and_modes(cli: Cli) -> None:
    manifest = str(ROOT / "jobs.yaml")
    mermaid = cli("plan", manifest, "--format", "mermaid").out
    for pool in ["sap_ecc", "salesforce", "process_models"]:
        assert f" in {pool}" in mermaid
    assert '"extract_sap_master_data<br/>FULL in sap_ecc"]' in mermaid and "classDef" not in mermaid
    dot = cli("plan", manifest, "--format", "dot").out
    assert 'subgraph cluster_0 {\n    label="sap_ecc";' in dot
    assert '"extract_sap_orders" [label="extract_sap_orders\\nDELTA"];' in dot
    data = json.loads(cli("plan", manifest, "--format", "json").out)
    assert data["format_version"] == 1
    assert set(data) == {
        "format_version",
        "manifest",
        "sha256",
        "jobs",
        "waves",
        "critical_path",
        "limits",
        "excluded",
    }
    assert {job["mode"] for job in data["jobs"]} == {"FULL", "DELTA"}


def test_mermaid_with_final_statuses(tmp_path: Path) -> None:
    state = _state(tmp_path)
    out = io.StringIO()
    statuses = {"a": "succeeded", "b": "not_started"}
    write_mermaid(state.plan, out, statuses=statuses)
    text = out.getvalue()
    assert (
        'j0["a<br/>FULL in sap<br/>succeeded"]' in text
        and 'j1["b<br/>DELTA in sap<br/>not started"]' in text
    )
    assert "class j0 succeeded\n" in text and "class j1 not_started\n" in text


# -- JUnit from hand-made states ---------------------------------------------------------


def _state(tmp_path: Path) -> RunState:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "version: 1\n"
        "pools:\n  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}\n"
        "jobs:\n"
        "  a: {pool: sap, id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33, mode: FULL}\n"
        "  b: {pool: sap, id: 5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55, depends_on: [a]}\n"
    )
    manifest = check_manifest(path, {}, strict_env=True, display=str(path)).manifest
    assert manifest is not None
    plan = build_plan(manifest)
    jobs = {name: JobRun(planned) for name, planned in plan.jobs.items()}
    return RunState(
        plan=plan, jobs=jobs, started_at=1_700_000_000.0, run_id="r1", finished_at=1_700_000_100.0
    )


def test_junit_running_job_is_an_error_and_hostile_text_stays_valid_xml(tmp_path: Path) -> None:
    state = _state(tmp_path)
    a, b = state.jobs["a"], state.jobs["b"]
    a.state, a.started_at, a.finished_at = JobState.FAILED, 1_700_000_000.0, 1_700_000_042.5
    a.error = "FAIL: bad\x00byte \x1b[31mred\x1b[0m ]]> & <tag>\nsecond line"
    b.state, b.started_at = JobState.RUNNING, 1_700_000_050.0
    text = junit_text(run_result(state))
    root = check_junit(text)
    failure = root.find("./testsuite/testcase[@name='a']/failure")
    assert failure is not None and failure.attrib["message"] == (
        "FAIL: bad\ufffdbyte \ufffd[31mred\ufffd[0m ]]> & <tag> second line"
    )
    assert failure.text == "FAIL: bad\ufffdbyte \ufffd[31mred\ufffd[0m ]]> & <tag>\nsecond line"
    case_a = root.find("./testsuite/testcase[@name='a']")
    assert case_a is not None and case_a.attrib["time"] == "42.500"
    error = root.find("./testsuite/testcase[@name='b']/error")
    assert error is not None and error.attrib["type"] == "running"
    suite = root.find("testsuite")
    assert suite is not None and suite.attrib["timestamp"] == "2023-11-14T22:13:20"


def test_junit_not_started_is_skipped(tmp_path: Path) -> None:
    state = _state(tmp_path)
    for job in state.jobs.values():
        job.state, job.error = JobState.NOT_STARTED, "not started: the API could not be used"
    root = check_junit(junit_text(run_result(state)))
    skipped = root.findall("./testsuite/testcase/skipped")
    assert [s.attrib for s in skipped] == [
        {"type": "not_started", "message": "not started: the API could not be used"}
    ] * 2
    assert root.find("testsuite") is not None and root.attrib["time"] == "100.000"


def test_unwritable_outputs_are_clear_errors_not_bugs(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.commands import run as run_command

    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, scenario = p.write()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    early = cli("run", str(manifest), "--emulator", "--junit-xml", str(blocker / "junit.xml"))
    assert early.code == 2 and "is not a folder" in early.err  # refused before anything ran
    # a path that goes bad during the run: the summary first, then a clear error, exit 2
    monkeypatch.setattr(run_command, "check_paths", lambda manifest, named: None)
    result = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--log-format",
        "json",
        "--junit-xml",
        str(blocker / "junit.xml"),
        environ={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path)},
    )
    assert result.code == 2
    assert "Run succeeded" in result.out  # the run's own summary came first
    assert (
        f"celonis-runner: warning: cannot append the step summary to $GITHUB_STEP_SUMMARY ({tmp_path}):"
        in result.err
    )
    assert result.err.splitlines()[-1].startswith(
        f"celonis-runner: error: cannot write the JUnit report to {blocker / 'junit.xml'}: "
    )
    assert "bug" not in result.err and "Traceback" not in result.err


def test_unclear_job_in_report_junit_summary_and_github(tmp_path: Path) -> None:
    import jsonschema

    from runner.reports.github import step_summary, write_annotations
    from runner.reports.report import build_report, write_summary

    state = _state(tmp_path)
    a, b = state.jobs["a"], state.jobs["b"]
    a.state, a.error = (
        JobState.UNCLEAR,
        "unclear: the execute may have started; check it in Celonis",
    )
    b.state, b.error = JobState.NOT_STARTED, "not started"
    state.status = "failed"
    report = build_report(run_result(state))
    schema = json.loads((ROOT / "schema" / "report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert [j["status"] for j in report["jobs"]] == ["unclear", "not_started"]
    error = check_junit(junit_text(run_result(state))).find("./testsuite/testcase[@name='a']/error")
    assert error is not None and error.attrib["type"] == "unclear"
    summary = io.StringIO()
    write_summary(run_result(state), summary)
    assert "May still be running in Celonis: a (" in summary.getvalue()
    annotations = io.StringIO()
    write_annotations(run_result(state), annotations)
    assert annotations.getvalue().startswith("::error file=")
    assert "May still be running in Celonis:** a" in step_summary(run_result(state))


def test_may_still_be_running_lists_exactly_running_and_unclear(tmp_path: Path) -> None:
    from runner.reports.report import write_summary

    for a_state, b_state, listed in [
        (JobState.RUNNING, JobState.UNCLEAR, "a, b"),
        (JobState.STARTING, JobState.FAILED, "a"),
        (JobState.SUCCEEDED, JobState.NOT_STARTED, None),
        (JobState.CANCELLED, JobState.SKIPPED, None),
    ]:
        state = _state(tmp_path)
        state.jobs["a"].state, state.jobs["b"].state = a_state, b_state
        out = io.StringIO()
        write_summary(run_result(state), out)
        lines = [x for x in out.getvalue().splitlines() if x.startswith("May still be running")]
        assert lines == (
            [f"May still be running in Celonis: {listed} (run --resume takes them up)"]
            if listed
            else []
        )


def test_summary_never_starts_a_line_with_a_workflow_command(tmp_path: Path) -> None:
    from runner.reports.report import write_summary

    state = _state(tmp_path)
    state.jobs["a"].state = JobState.FAILED
    state.jobs["a"].error = "FAIL: bad\n::error file=x::pwned\r\n  ::set-output name=a::b"
    state.error = "::warning::from Celonis\nsecond"
    state.status = "failed"
    out = io.StringIO()
    write_summary(run_result(state), out)
    assert not [x for x in out.getvalue().splitlines() if x.lstrip().startswith("::")]
    assert "FAIL: bad\\n::error file=x::pwned\\r\\n  ::set-output" in out.getvalue()


def test_outputs_over_the_manifest_are_refused_before_anything_runs(
    cli: Cli, tmp_path: Path
) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, scenario = p.write()
    before = manifest.read_text()
    for option in ("--report", "--junit-xml", "--emulator-journal"):
        result = cli(
            "run", str(manifest), "--emulator", "--scenario", str(scenario), option, str(manifest)
        )
        assert result.code == 2, result.err
        assert f"{option} {manifest} is the manifest itself" in result.err
        assert manifest.read_text() == before and "job_" not in result.err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_report_that_cannot_be_written_still_prints_the_summary(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.reports import outputs

    def refuse(path: Path, data: object, **_: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(outputs, "write_json_atomic", refuse)
    p = Pipeline(tmp_path).pool("sap")
    p.job("only", "sap")
    manifest, scenario = p.write()
    report = tmp_path / "out" / "report.json"
    result = cli(
        "run", str(manifest), "--emulator", "--scenario", str(scenario), "--report", str(report)
    )
    assert result.code == 2
    assert "Run succeeded" in result.out
    assert f"celonis-runner: error: cannot write --report {report}: Permission denied" in result.err
    assert "internal error" not in result.err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    early = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--report",
        str(blocker / "r.json"),
    )
    assert (
        early.code == 2
        and f"cannot write --report {blocker / 'r.json'}: {blocker} is not a folder" in early.err
    )
    state = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--state-dir",
        str(blocker / "runs"),
    )
    assert state.code == 2 and f"cannot save run state in {blocker / 'runs'}" in state.err
    assert "internal error" not in early.err + state.err


def test_a_table_cell_has_no_code_span_where_entities_would_show_as_written() -> None:
    """GitHub shows `&gt;` literally inside backticks: backticks are escaped, not spans."""
    from runner.reports.github import _cell

    cell = _cell("Table `A-->B` failed | <5> rows")
    assert cell == "Table \\`A--&gt;B\\` failed \\| &lt;5&gt; rows"


def test_junit_property_names_are_unique_in_the_file() -> None:
    """xunitparser gathers every suite's properties in one mapping and stops at a repeat."""
    import xml.etree.ElementTree as ET

    from tests.user_tools import make_run

    root = ET.fromstring(junit_text(make_run(30, pools=3)))
    names = [p.get("name") for p in root.iter("property")]
    assert len(root.findall("testsuite")) == 3 and len(names) == len(set(names))
    assert {"run_id", "manifest", "pool_0.pool_id", "pool_2.pool_id"} <= set(names)
