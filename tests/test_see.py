"""Seeing a run: the Gantt timeline (GitHub summary, `report --format gantt`), the HTML report
(`run --html`, `report --format html`) and `report` over saved state files."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from runner.reports.gantt import escape, write_gantt
from runner.reports.html import render
from runner.runresult.model import JobResult, JobState, RunResult, TaskOutcome
from tests.conftest import CliResult
from tests.e2e import Pipeline, emulator_for, pool_uuid, run_pipeline
from tests.emulator_fixtures import FakeClock

Cli = Callable[..., CliResult]
API_KEY = "apikey-Hq7ZfW2mJ7pWc4Lr9TnQ"


def _pipeline(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap", max_parallel=2).pool("crm")
    p.job("extract_a", "sap", behaviour={"duration": "10m"})
    p.job("extract_b", "sap", behaviour={"duration": "4m"})
    message = f"Extraction failed: key {API_KEY} refused <script>alert(1)</script> & more"
    p.job("broken", "crm", behaviour={"outcome": "FAIL", "message": message, "duration": "2m"})
    p.job("transform", "sap", "extract_a", "extract_b")
    p.job("load", "crm", "transform", "broken")
    return p


def _external_refs(root: ET.Element) -> list[str]:
    return [
        value
        for element in root.iter()
        for name, value in element.attrib.items()
        if name in ("src", "href") or name.endswith("}href")
        if re.match(r"\s*(https?:)?//", value)
    ]


def _check_page(page: str, names: list[str]) -> ET.Element:
    """Well-formed (as XML and for html.parser), every job, no secret, nothing fetched."""
    root = ET.fromstring(page.split("\n", 1)[1])  # after <!DOCTYPE html>
    parser = HTMLParser()
    parser.feed(page)
    parser.close()
    texts = "".join(root.itertext())
    for name in names:
        assert name in texts
    assert API_KEY not in page and API_KEY[:12] not in page
    assert _external_refs(root) == []
    assert not [e for e in root.iter() if e.tag in ("script", "link", "iframe", "img")]
    assert re.search(r"https?://", page) is None
    return root


def test_run_writes_a_self_contained_html_report(cli: Cli, tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    page_path = tmp_path / "out" / "run.html"
    result, _journal, report = run_pipeline(
        cli, p, "--html", str(page_path), environ={"CELONIS_API_KEY": API_KEY}
    )
    assert result.code == 1, result.err
    page = page_path.read_text(encoding="utf-8")
    root = _check_page(page, list(p.jobs))
    svgs = [e for e in root.iter() if e.tag == "svg"]
    assert [s.get("aria-label") for s in svgs] == ["timeline", "dependency graph"]
    # a bar per job that ran, coloured by its outcome; the error line escaped, not markup
    bars = [e for e in svgs[0].iter() if e.tag == "rect"]
    ran = [j for j in report["jobs"] if j["started_at"]]
    assert len(bars) == len(ran) == 4
    assert "<script>alert(1)</script>" not in page
    assert "Extraction failed: key *** refused <script>alert(1)</script> & more" in "".join(
        root.itertext()
    )
    # the graph: a node per job, an edge per dependency
    graph = svgs[1]
    assert len([e for e in graph.iter() if e.tag == "rect"]) == 5
    assert len([e for e in graph.iter() if e.tag == "line"]) == 4


def test_report_reads_the_saved_run_in_every_format(cli: Cli, tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    result, _journal, report = run_pipeline(cli, p, environ={"CELONIS_API_KEY": API_KEY})
    assert result.code == 1
    runs = ["--state-dir", str(p.folder / "runs")]
    env = {"CELONIS_API_KEY": API_KEY}

    as_json = cli("report", "latest", *runs, "--format", "json", environ=env)
    assert as_json.code == 0, as_json.err
    data = json.loads(as_json.out)
    assert data["run_id"] == report["run_id"] and data["status"] == "failed"
    got = {j["name"]: (j["pool"], j["status"], j["wave"]) for j in data["jobs"]}
    assert got == {
        "extract_a": ("sap", "succeeded", 1),
        "extract_b": ("sap", "succeeded", 1),
        "broken": ("crm", "failed", 1),
        "transform": ("sap", "succeeded", 2),
        "load": ("crm", "skipped", 3),
    }
    durations = {j["name"]: j["duration_seconds"] for j in report["jobs"]}
    assert {j["name"]: j["duration_seconds"] for j in data["jobs"]} == durations

    text = cli("report", report["run_id"], *runs, environ=env)
    assert text.code == 0 and "broken" in text.out and "failed" in text.out
    assert API_KEY not in text.out and "***" in text.out

    gantt = cli("report", "latest", *runs, "--format", "gantt", environ=env)
    assert gantt.code == 0
    assert gantt.out.startswith("gantt\n") and "section sap" in gantt.out
    assert re.search(r"#98;roken#32;#40;failed#41; :crit, j\d, \d+, \d+", gantt.out)
    assert re.search(r"#108;oad#32;#40;skipped#41; :milestone", gantt.out)

    page = tmp_path / "saved.html"
    html = cli("report", "latest", *runs, "--format", "html", "--out", str(page), environ=env)
    assert html.code == 0, html.err
    _check_page(page.read_text(encoding="utf-8"), list(p.jobs))


def test_report_of_an_unknown_run_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("report", "20990101T000000Z-abcdef", "--state-dir", str(tmp_path / "none"))
    assert result.code == 2
    assert "no saved run" in result.err and "Traceback" not in result.err


def test_report_names_pools_from_the_state_when_the_manifest_is_gone(
    cli: Cli, tmp_path: Path
) -> None:
    p = _pipeline(tmp_path)
    manifest, _ = p.write()
    run_pipeline(cli, p)
    manifest.unlink()
    result = cli("report", "--state-dir", str(p.folder / "runs"), "--format", "json")
    assert result.code == 0, result.err
    assert {j["pool"] for j in json.loads(result.out)["jobs"]} == {"sap", "crm"}


def test_report_of_an_older_state_file_names_pools_by_id_without_the_manifest(
    cli: Cli, tmp_path: Path
) -> None:
    p = _pipeline(tmp_path)
    manifest, _ = p.write()
    run_pipeline(cli, p)
    manifest.unlink()
    (state,) = (p.folder / "runs").glob("*.json")
    data = json.loads(state.read_text())
    for key in ("plan", "finished_at", "error"):  # what files before the run model lacked
        del data[key]
    del data["manifest"]["resolved"]
    state.write_text(json.dumps(data))
    result = cli("report", "--state-dir", str(p.folder / "runs"), "--format", "json")
    assert result.code == 0, result.err
    jobs = json.loads(result.out)["jobs"]
    assert {j["pool"] for j in jobs} == {pool_uuid("sap"), pool_uuid("crm")}
    assert {j["name"]: j["wave"] for j in jobs}["load"] == 3


def test_github_summary_has_the_timeline(cli: Cli, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result, _, _ = run_pipeline(
        cli, _pipeline(tmp_path), "--github", environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert result.code == 1
    text = summary.read_text()
    block = text.split("### Timeline\n\n```mermaid\n", 1)[1].split("```", 1)[0]
    assert block.startswith("gantt\n")
    assert block.count("section ") == 2
    assert len(re.findall(r"^    \S+ :", block, re.MULTILINE)) == 5
    assert len(re.findall(r":done, ", block)) == 3


def _job(
    name: str,
    pool: str,
    state: JobState,
    started_at: float | None,
    finished_at: float | None,
    error: str | None = None,
    tasks: tuple[TaskOutcome, ...] | None = None,
) -> JobResult:
    return JobResult(
        name, pool, "pool-id", "job-id", "DELTA", state, started_at, finished_at, error, tasks=tasks
    )


def _view(*jobs: JobResult) -> RunResult:
    return RunResult(
        run_id="r1",
        status="failed",
        manifest="jobs.yaml",
        manifest_sha256=None,
        started_at=1000.0,
        finished_at=1100.0,
        error=None,
        jobs=jobs,
        pools=tuple(dict.fromkeys(j.pool for j in jobs)),
    )


def test_gantt_escapes_every_character_that_could_break_the_chart() -> None:
    hostile = "a: b; c # d %% e\nsection x"
    view = _view(
        _job(hostile, "pool: one\n", JobState.FAILED, 1000.0, 1000.0),
        _job("ok", "pool: one\n", JobState.RUNNING, 1010.0, None),
    )
    out = io.StringIO()
    write_gantt(view, out)
    lines = out.getvalue().splitlines()
    assert lines[5] == "  section pool#58;#32;one#10;"
    # one line per task, the name free of ':' ';' '#'-comments and line breaks
    name, data = lines[6].strip().split(" :", 1)
    assert re.fullmatch(r"[A-Za-z0-9_.\-#;]+", name)
    assert data == "crit, j0, 1000000, 1000001"  # a zero-length bar is drawn 1 ms long
    assert lines[7].endswith(":active, j1, 1010000, 1100000")  # still running: up to the end
    decoded = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), name)
    assert decoded == f"{hostile} (failed)"
    assert escape("plain_name-1.x") == "plain_name-1.x"


def test_html_escapes_names_errors_and_task_results() -> None:
    job = _job(
        "j<&>\"'",
        "p\x01ool",
        JobState.FAILED,
        1000.0,
        1050.0,
        "boom </td></table> \x00 done",
        tasks=(TaskOutcome("t1", "extract <x>", "FAIL", error="ORA-01 & co"),),
    )
    page = render(_view(job))
    root = ET.fromstring(page.split("\n", 1)[1])
    texts = "".join(root.itertext())
    assert "j<&>\"'" in texts and "boom </td></table> \ufffd done" in texts
    assert "extract <x>: FAIL (ORA-01 & co)" in texts


class _InterruptedClock(FakeClock):
    """Sleeps in virtual time; the `stop_at`-th sleep is a Ctrl-C."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.sleeps) == self.stop_at:
            raise KeyboardInterrupt


def _watch(tmp_path: Path, output_format: str) -> tuple[int, str, str, list[dict], list[float]]:
    from runner.commands import status
    from runner.commands.shared import RemoteOptions

    p = Pipeline(tmp_path).pool("sap")
    p.job("extract", "sap", behaviour={"last_run": "SUCCESS"})
    p.job("transform", "sap", "extract")
    clock = _InterruptedClock(stop_at=2)
    out, err = io.StringIO(), io.StringIO()
    with emulator_for(p, API_KEY) as emu:
        code = status.run(
            str(p.folder / "jobs.yaml"),
            output_format=output_format,
            remote=RemoteOptions(base_url=emu.base_url),
            environ={"CELONIS_API_KEY": API_KEY},
            stdout=out,
            stderr=err,
            max_bytes=1 << 20,
            watch=status.Watch(interval=5.0, clock=clock),
        )
        journal = emu.journal()
    return code, out.getvalue(), err.getvalue(), journal, clock.sleeps


def test_status_watch_refreshes_until_ctrl_c_and_exits_0(tmp_path: Path) -> None:
    code, out, err, journal, sleeps = _watch(tmp_path, "text")
    assert code == 0, err
    assert sleeps == [5.0, 5.0]  # two refreshes, then Ctrl-C during the second wait
    tables = out.split("As of ")[1:]
    assert len(tables) == 2
    assert tables[0].startswith("2") and "every 5s; Ctrl-C to stop" in tables[0]
    assert tables[0].split("\n", 1)[0] != tables[1].split("\n", 1)[0]  # a new time each time
    for table in tables:
        assert re.search(r"^extract\s+sap\s+SUCCESS", table, re.MULTILINE)
    job_lists = [r for r in journal if r.get("method") == "GET" and r["path"].endswith("/jobs")]
    assert len(job_lists) == 2  # it asked Celonis again, not printed the same answer twice
    assert "Stopped watching after 2 refreshes" in err


def test_status_watch_json_is_one_document_a_refresh(tmp_path: Path) -> None:
    code, out, _err, _journal, _sleeps = _watch(tmp_path, "json")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert len(documents) == 2
    assert [j["name"] for j in documents[1]["jobs"]] == ["extract", "transform"]


def test_status_interval_must_be_a_sane_number(cli: Cli, tmp_path: Path) -> None:
    result = cli("status", str(tmp_path / "jobs.yaml"), "--watch", "--interval", "0")
    assert result.code == 2 and "between 1 and 86400 seconds" in result.err


def test_report_latest_without_any_run_says_where_it_looked(cli: Cli, tmp_path: Path) -> None:
    result = cli("report", "--state-dir", str(tmp_path / "empty"))
    assert result.code == 2
    assert f"no saved run in {tmp_path / 'empty'}" in result.err


def test_a_huge_run_has_no_chart_in_the_step_summary(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.reports import github

    monkeypatch.setattr(github, "TIMELINE_MAX_JOBS", 4)
    summary = tmp_path / "summary.md"
    run_pipeline(
        cli, _pipeline(tmp_path), "--github", environ={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    text = summary.read_text()
    timeline = text.split("### Timeline\n\n", 1)[1]
    assert timeline.startswith("5 jobs: too many for a chart here; see `celonis-runner report ")
    assert "```mermaid\ngantt" not in text


def test_task_results_are_read_tolerantly_from_state_records() -> None:
    record = {"id": "i1", "name": "t1", "status": "FAIL", "error": "ORA-1", "started_at": True}
    assert TaskOutcome.from_dict(record) == TaskOutcome("i1", "t1", "FAIL", error="ORA-1")
    assert TaskOutcome.from_dict({"name": "t2"}) == TaskOutcome("t2", "t2", "")


def test_html_axis_ticks_fall_on_round_values() -> None:
    from runner.reports.html import tick_step

    assert [tick_step(s) for s in (5, 60, 3 * 3600 + 909, 20 * 86400)] == [1, 10, 1800, 5 * 86400]


def test_html_puts_what_failed_the_run_first_and_allowed_failures_apart() -> None:
    from runner.reports.html import ALLOWED_COLOUR, render
    from tests.user_tools import make_run

    run = make_run(20)
    page = render(run)
    top = page.index('<section class="failed-run">')
    assert top < page.index("<h2>Timeline</h2>")
    assert run.jobs[-1].name in page[top : page.index("</section>")]
    assert page.count(f'color: {ALLOWED_COLOUR}">failed (allowed)') == sum(
        j.allowed_failure for j in run.jobs
    )
