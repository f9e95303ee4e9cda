"""What people expect of a CLI (issue 22 #15): -q/--quiet, `validate -`, readable reports,
shell completion."""

from __future__ import annotations

import io
import json
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


# -- -q on plan, status, diff and logs (logs: tests/test_logs_command.py) ------------


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_plan_quiet_prints_the_headline_and_the_critical_path(cli: Cli) -> None:
    manifest = str(ROOT / "jobs.yaml")
    loud = cli("plan", manifest)
    quiet = cli("plan", manifest, "-q")
    assert (loud.code, quiet.code) == (0, 0)
    assert quiet.out.splitlines() == [
        "Plan for " + manifest + ": 9 jobs in 3 pools, 3 waves",
        "Critical path (expected 1h): extract_sap_master_data -> transform_o2c -> load_o2c_model",
    ]
    assert set(quiet.out.splitlines()) < set(_lines(loud.out))
    for other in ("json", "mermaid", "dot"):
        assert cli("plan", manifest, "--quiet", "--format", other).out == (
            cli("plan", manifest, "--format", other).out
        ), other


def test_plan_quiet_still_shows_problems(cli: Cli, write_manifest: Callable[..., Path]) -> None:
    broken = write_manifest("version: 2\n")
    result = cli("plan", "-q", str(broken))
    assert result.code == 2 and result.out == "" and "problem" in result.err


def test_diff_quiet_says_only_whether_anything_changed(
    cli: Cli, write_manifest: Callable[..., Path]
) -> None:
    base = str(ROOT / "jobs.yaml")
    text = (ROOT / "jobs.yaml").read_text().replace("max_parallel: 2", "max_parallel: 3", 1)
    new = str(write_manifest(text, name="new.yaml"))
    loud = cli("diff", base, new, "--detailed-exitcode")
    quiet = cli("diff", base, new, "--detailed-exitcode", "-q")
    assert (loud.code, quiet.code) == (2, 2)  # the exit code is what it was
    assert len(_lines(loud.out)) > 1
    assert quiet.out == loud.out.splitlines()[0] + "\n"
    assert quiet.out.startswith(f"Changes from {base} to {new}: 1 pool changed")
    same = cli("diff", base, base, "-q")
    assert (same.code, same.out) == (0, cli("diff", base, base).out)
    assert same.out.startswith("No changes:")
    for other in ("json", "markdown", "mermaid"):
        assert cli("diff", base, new, "-q", "--format", other).out == (
            cli("diff", base, new, "--format", other).out
        ), other


def test_status_quiet_shows_only_the_jobs_that_are_not_fine(cli: Cli, tmp_path: Path) -> None:
    from tests.e2e import emulator_for

    p = Pipeline(tmp_path).pool("sap").pool("crm")
    p.job("extract", "sap", behaviour={"last_run": "SUCCESS"})
    p.job("transform", "sap", "extract", behaviour={"running_at_start": "30m"})
    p.job("broken", "sap", behaviour={"last_run": "FAIL"})
    p.job("load", "crm", "transform")
    key = "status-quiet-key-0123456789"
    with emulator_for(p, key) as emu:

        def status(*extra: str) -> CliResult:
            manifest = str(tmp_path / "jobs.yaml")
            environ = {"CELONIS_API_KEY": key}
            return cli("status", manifest, "--base-url", emu.base_url, *extra, environ=environ)

        loud, quiet = status(), status("-q")
        loud_json, quiet_json = status("--format", "json"), status("--format", "json", "-q")
    assert (loud.code, quiet.code) == (0, 0), quiet.err
    assert [line.split()[0] for line in loud.out.splitlines()] == [
        "JOB",
        "extract",
        "transform",
        "broken",
        "load",
    ]
    header, *rows, count = quiet.out.splitlines()
    assert header.split()[:3] == ["JOB", "POOL", "STATUS"]
    assert [row.split()[:3] for row in rows] == [
        ["broken", "sap", "FAIL"],
        ["load", "crm", "never"],
    ]
    assert count == "2 of 4 jobs not fine (fine: SUCCESS, QUEUED or RUNNING)"
    assert quiet_json.out == loud_json.out and json.loads(quiet_json.out)["jobs"]


def test_status_quiet_with_every_job_fine_is_one_line() -> None:
    from runner.commands.status import JobRow, write_quiet_table
    from runner.manifest.model import Job

    job = Job(name="a", pool="sap", pool_id="p", job_id="j")
    out = io.StringIO()
    write_quiet_table([JobRow(job, "SUCCESS"), JobRow(job, "RUNNING")], out)
    assert out.getvalue() == "all 2 jobs fine (SUCCESS, QUEUED or RUNNING)\n"
    out = io.StringIO()
    write_quiet_table([JobRow(job, "SUCCESS"), JobRow(job, None, error="not found")], out)
    assert out.getvalue().splitlines()[1].split()[:4] == ["a", "sap", "NOT", "FOUND"]


def test_status_watch_quiet_shows_the_short_table_each_refresh(tmp_path: Path) -> None:
    from runner.commands import status
    from runner.commands.shared import RemoteOptions
    from tests.e2e import emulator_for
    from tests.emulator_fixtures import FakeClock

    class Interrupted(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if len(self.sleeps) == 2:
                raise KeyboardInterrupt

    p = Pipeline(tmp_path).pool("sap")
    p.job("extract", "sap", behaviour={"last_run": "SUCCESS"})
    p.job("transform", "sap", "extract")
    out = io.StringIO()
    with emulator_for(p, "watch-quiet-key-0123456789") as emu:
        code = status.run(
            str(p.folder / "jobs.yaml"),
            output_format="text",
            remote=RemoteOptions(base_url=emu.base_url),
            environ={"CELONIS_API_KEY": "watch-quiet-key-0123456789"},
            stdout=out,
            stderr=io.StringIO(),
            max_bytes=1 << 20,
            watch=status.Watch(interval=5.0, clock=Interrupted()),
            quiet=True,
        )
    assert code == 0
    tables = out.getvalue().split("As of ")[1:]
    assert len(tables) == 2
    for table in tables:
        _, header, row, count = table.splitlines()
        assert header.startswith("JOB") and row.split()[:3] == ["transform", "sap", "never"]
        assert count == "1 of 2 jobs not fine (fine: SUCCESS, QUEUED or RUNNING)"
