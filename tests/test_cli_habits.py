"""What people expect of a CLI (issue 22 #15): -q/--quiet, `validate -`, readable reports,
shell completion."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

from runner.cli import main
from tests.conftest import JOB_1, POOL_A, CliResult
from tests.e2e import Pipeline, run_pipeline

ROOT = Path(__file__).parent.parent
Cli = Callable[..., CliResult]

WARNS = f"""
version: 1
connection: {{team: acme, realm: eu-1}}
pools: {{sap: {{id: {POOL_A}}}}}
jobs:
  a: {{pool: sap, id: {JOB_1}, timeout: "${{UNSET_TIMEOUT}}"}}
"""


def _validate_stdin(text: str, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(
        ["validate", *argv], environ={}, stdout=out, stderr=io.StringIO(), stdin=io.StringIO(text)
    )
    return code, out.getvalue()


def test_validate_dash_reads_the_manifest_from_stdin() -> None:
    good = (ROOT / "jobs.yaml").read_text(encoding="utf-8")
    assert _validate_stdin(good, "-") == (0, "<stdin>: valid (9 jobs in 3 pools)\n")
    code, shown = _validate_stdin("version: 1\npools: {}\njobs: []\n", "-")
    assert code == 2
    assert shown.startswith("<stdin>:"), shown


def test_validate_dash_over_the_size_limit_is_refused() -> None:
    code, shown = _validate_stdin("# " + "x" * 200 + "\n", "-", "--max-size", "100")
    assert code == 2 and "over the limit of 100 bytes" in shown, shown


def test_validate_quiet_shows_only_errors_and_the_verdict(
    cli: Cli, write_manifest: Callable[..., Path]
) -> None:
    warned = write_manifest(WARNS)
    loud = cli("validate", str(warned))
    assert "UNSET_TIMEOUT is not set" in loud.out
    quiet = cli("validate", "-q", str(warned), str(ROOT / "jobs.yaml"))
    assert (quiet.code, quiet.out) == (0, "all 2 files valid\n")
    broken = write_manifest("version: 2\n", name="broken.yaml")
    quiet = cli("validate", "--quiet", str(broken), str(warned))
    assert quiet.code == 2
    assert "UNSET_TIMEOUT" not in quiet.out
    assert quiet.out.splitlines()[-1].endswith("problems") or "problem" in quiet.out


def test_run_quiet_prints_only_problems_and_the_verdict(cli: Cli, tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("fine", "sap")
    p.job("broken", "sap", behaviour={"outcome": "FAIL", "message": "boom", "duration": "1m"})
    env = {"CELONIS_RUNNER_TIME_SCALE": "3000"}
    loud, _, _ = run_pipeline(cli, p, environ=env)
    assert "fine" in loud.out and '"level": "info"' in loud.err
    quiet, _, _ = run_pipeline(cli, p, "-q", environ=env)
    assert quiet.code == 1
    assert '"level": "info"' not in quiet.err and "fine" not in quiet.out
    lines = quiet.out.splitlines()
    assert lines[0].startswith("JOB") and lines[1].startswith("broken"), quiet.out
    assert any(line.startswith("Run failed") for line in lines), quiet.out


def test_report_files_are_readable_by_the_group(cli: Cli, tmp_path: Path) -> None:
    """0644 less the umask (0640 under umask 027), not mkstemp's 0600; the state stays 0600."""
    p = Pipeline(tmp_path).pool("sap")
    p.job("fine", "sap")
    outputs = {"--junit-xml": "junit.xml", "--html": "run.html"}
    extra = [arg for option, name in outputs.items() for arg in (option, str(tmp_path / name))]
    old = os.umask(0o027)
    try:
        result, _, _ = run_pipeline(cli, p, *extra, environ={"CELONIS_RUNNER_TIME_SCALE": "3000"})
        assert result.code == 0, result.err
        out = tmp_path / "again.txt"
        again = cli("report", "latest", "--state-dir", str(tmp_path / "runs"), "--out", str(out))
        assert again.code == 0, again.err
    finally:
        os.umask(old)
    for name in ("report.json", "junit.xml", "run.html", "again.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
    (state,) = (tmp_path / "runs").glob("*.json")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
