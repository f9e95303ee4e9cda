"""The finished-run model (runner.runresult): a run's own outputs and `report` of its saved
state are the same bytes, whichever directory `report` runs in; old state files still load."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.runresult.read import load_saved
from runner.runresult.records import result_of
from tests.conftest import CliResult
from tests.e2e import Pipeline

Cli = Callable[..., CliResult]
API_KEY = "apikey-Hq7ZfW2mJ7pWc4Lr9TnQ"


def _pipeline(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path / "project").pool("sap", max_parallel=2).pool("crm")
    p.folder.mkdir()
    p.job("extract", "sap", behaviour={"duration": "10m"})
    message = f"Extraction failed: key {API_KEY} refused <b>x</b> | and\nmore"
    p.job("broken", "crm", behaviour={"outcome": "FAIL", "message": message, "duration": "2m"})
    p.job("optional", "crm", behaviour={"outcome": "FAIL", "duration": "1m"}, allow_failure=True)
    p.job("transform", "sap", "extract")
    p.job("load", "crm", "transform", "broken")
    return p


def test_report_of_the_saved_run_is_byte_identical_to_the_runs_outputs(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _pipeline(tmp_path)
    p.write()
    monkeypatch.chdir(p.folder)  # the run keeps the manifest's path as given: relative
    summary = tmp_path / "step-summary.md"
    env = {"CELONIS_API_KEY": API_KEY}
    ran = cli(
        "run",
        "jobs.yaml",
        "--emulator",
        "--scenario",
        "scenario.yaml",
        "--state-dir",
        "runs",
        "--report",
        "out/report.json",
        "--junit-xml",
        "out/junit.xml",
        "--html",
        "out/run.html",
        "--github",
        "--log-format",
        "json",
        environ={**env, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert ran.code == 1, ran.err
    out = p.folder / "out"
    outputs = {
        "report-json": (out / "report.json").read_text(encoding="utf-8"),
        "junit": (out / "junit.xml").read_text(encoding="utf-8"),
        "html": (out / "run.html").read_text(encoding="utf-8"),
        "github": summary.read_text(encoding="utf-8"),
        "summary": ran.out.split("State saved in ")[0],
    }
    assert "optional" in outputs["summary"] and "failed (allowed)" in outputs["summary"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # pools are still named, not shown as ids
    runs = str(p.folder / "runs")
    for output_format, expected in outputs.items():
        shown = cli("report", "latest", "--state-dir", runs, "--format", output_format, environ=env)
        assert shown.code == 0, shown.err
        assert shown.out == expected, output_format
        assert API_KEY not in shown.out
    assert "sap" in outputs["html"] and "failed (allowed)" in outputs["html"]
    assert "succeeded (allowed)" not in outputs["html"]


def test_the_run_model_of_a_saved_run_keeps_the_runs_end_and_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _pipeline(tmp_path)
    p.write()
    monkeypatch.chdir(p.folder)
    cli(
        "run",
        "jobs.yaml",
        "--emulator",
        "--scenario",
        "scenario.yaml",
        "--state-dir",
        "runs",
        "--report",
        "report.json",
        environ={"CELONIS_API_KEY": API_KEY},
    )
    report = json.loads((p.folder / "report.json").read_text())
    (state,) = (p.folder / "runs").glob("*.json")
    saved = load_saved(state)
    result = result_of(saved)
    assert result.manifest == "jobs.yaml" and result.pools == ("sap", "crm")
    assert report["finished_at"] is not None
    assert result.finished_at == saved.data["finished_at"]
    jobs = {j.name: j for j in result.jobs}
    assert jobs["optional"].allowed_failure and not jobs["broken"].allowed_failure
    assert set(jobs["load"].depends_on) == {"transform", "broken"}
    assert jobs["load"].wave == 3


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["state-v1.json", "state-v2.json"])
def test_state_files_of_earlier_versions_still_load(name: str, cli: Cli, tmp_path: Path) -> None:
    saved = load_saved(DATA / name)
    result = result_of(saved)
    assert saved.data["state_version"] == int(name[7])
    assert result.status == "failed" and result.finished_at == saved.data["updated_at"]
    jobs = {j.name: j for j in result.jobs}
    assert [j.report_status for j in result.jobs] == ["succeeded", "failed", "succeeded", "skipped"]
    assert jobs["load"].wave == 3 and set(jobs["load"].depends_on) == {"transform", "broken"}
    assert "ORA-00942: table missing" in (jobs["broken"].error or "")
    assert jobs["extract"].pool == jobs["extract"].pool_id  # no names kept: ids stand
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / name.replace("state-", "20250101T000000Z-")).write_bytes((DATA / name).read_bytes())
    for output_format in ("text", "json", "summary", "report-json", "junit", "github", "html"):
        shown = cli("report", "latest", "--state-dir", str(runs), "--format", output_format)
        assert shown.code == 0, (output_format, shown.err)


def _imports(folder: Path) -> dict[str, set[str]]:
    import ast

    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        found[path.name] = names
    return found


@pytest.mark.parametrize("package", ["reports", "runresult"])
def test_reports_and_the_run_model_import_neither_the_engine_nor_the_client(package: str) -> None:
    root = Path(__file__).parent.parent / "runner" / package
    for module, names in _imports(root).items():
        bad = [n for n in names if n.startswith(("runner.execution", "runner.api"))]
        assert bad == [], f"runner/{package}/{module} imports {bad}"
