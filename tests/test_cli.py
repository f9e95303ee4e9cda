from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import JOB_1, POOL_A, CliResult

ROOT = Path(__file__).parent.parent
Cli = Callable[..., CliResult]


def test_validate_example(cli: Cli) -> None:
    result = cli("validate", str(ROOT / "jobs.yaml"))
    assert result.code == 0
    assert result.out == f"{ROOT / 'jobs.yaml'}: valid (9 jobs in 3 pools)\n"


def test_validate_reports_problems_and_exits_2(
    cli: Cli, write_manifest: Callable[[str], Path]
) -> None:
    path = write_manifest(
        f"""
        version: 1
        pools: {{sap: {{id: {POOL_A}}}}}
        jobs:
          a: {{pool: sap, id: {JOB_1}, depends_on: [bb]}}
        """
    )
    result = cli("validate", str(path))
    assert result.code == 2
    assert result.out.splitlines() == [
        f"{path}:4:73: jobs.a.depends_on[0]: unknown job 'bb'",
        "1 problem",
    ]
    as_json = json.loads(cli("validate", "--format", "json", str(path)).out)
    assert as_json == [
        {
            "file": str(path),
            "line": 4,
            "column": 73,
            "path": "jobs.a.depends_on[0]",
            "message": "unknown job 'bb'",
            "severity": "error",
        }
    ]


def test_validate_github_annotations(cli: Cli, write_manifest: Callable[[str], Path]) -> None:
    path = write_manifest("version: 1\npools: {}\njobs: {}\n")
    result = cli("validate", str(path), environ={"GITHUB_ACTIONS": "true"})
    assert result.code == 2
    assert (
        f"::error file={path},line=2,col=8,title=celonis-runner::pools: must not be empty"
        in result.out
    )


def test_validate_directory_and_binary(cli: Cli, tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path))
    assert (result.code, result.out.splitlines()[0]) == (
        2,
        f"{tmp_path}: is a directory, not a manifest file",
    )
    binary = tmp_path / "x.yaml"
    binary.write_bytes(bytes(range(256)))
    result = cli("validate", str(binary))
    assert result.code == 2 and "Traceback" not in result.out + result.err


def test_plan_text_and_json(cli: Cli) -> None:
    result = cli("plan", str(ROOT / "jobs.yaml"))
    assert result.code == 0
    assert "Wave 1" in result.out and "Critical path (expected 1h): " in result.out
    data = json.loads(
        cli("plan", str(ROOT / "jobs.yaml"), "--format", "json", "--select", "transform_o2c+").out
    )
    assert [j["name"] for j in data["jobs"]] == [
        "transform_o2c",
        "quality_checks",
        "load_o2c_model",
    ]
    assert data["jobs"][0]["assumed_done"] == [
        "extract_sap_master_data",
        "extract_sap_orders",
        "extract_sap_deliveries",
    ]


def test_plan_graph_formats(cli: Cli) -> None:
    mermaid = cli("plan", str(ROOT / "jobs.yaml"), "--format", "mermaid").out
    assert mermaid.startswith("flowchart LR\n") and 'subgraph p0["sap_ecc"]' in mermaid
    dot = cli("plan", str(ROOT / "jobs.yaml"), "--format", "dot").out
    assert '"transform_o2c" -> "load_o2c_model";' in dot


def test_plan_unknown_selection_exits_2(cli: Cli) -> None:
    result = cli("plan", str(ROOT / "jobs.yaml"), "--select", "transform_o2")
    assert result.code == 2
    assert result.err == (
        "celonis-runner: error: unknown job 'transform_o2' in 'transform_o2' (did you mean 'transform_o2c'?)\n"
    )


def test_plan_invalid_manifest_exits_2(cli: Cli, write_manifest: Callable[[str], Path]) -> None:
    path = write_manifest("version: 1\n")
    result = cli("plan", str(path))
    assert result.code == 2
    assert result.err.splitlines()[-1] == "2 problems"


def test_usage_error_exits_2(cli: Cli) -> None:
    assert cli("plan", "--max-parallel", "0").code == 2
    assert cli("frobnicate").code == 2


def test_validate_does_not_import_requests() -> None:
    code = (
        "import sys; from runner.cli import main; "
        f"rc = main(['validate', {str(ROOT / 'jobs.yaml')!r}]); "
        "assert 'requests' not in sys.modules, 'requests was imported'; sys.exit(rc)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_python_dash_m_and_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("celonis-runner ")
