from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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
    assert (
        mermaid.startswith("flowchart LR\n")
        and '"extract_sap_master_data<br/>FULL in sap_ecc"]' in mermaid
    )
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
    # only diff's own --detailed-exitcode turns a usage error into 1 (hypothesis found this
    # one: the word as the value of another command's option)
    assert cli("plan", "jobs.yaml", "--tasks", "--detailed-exitcode").code == 2
    assert cli("diff", "--format", "--detailed-exitcode").code == 1


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


def test_commands_are_a_table_each_module_declares_its_arguments() -> None:
    import importlib

    from runner.cli import COMMANDS, build_parser

    for name, info in COMMANDS.items():
        module = importlib.import_module(info.module)
        assert callable(module.add_arguments) and callable(module.main), name
        assert module.EXAMPLES.count("celonis-runner ") in (2, 3), name
        parser = build_parser(name)
        assert parser.parse_args([name]).command == name


def test_commands_share_helpers_through_one_module() -> None:
    commands = ROOT / "runner" / "commands"
    for path in commands.glob("*.py"):
        text = path.read_text()
        for other in ("plan", "check_remote", "status", "run", "validate"):
            if other != path.stem and other != "plan":
                assert f"from runner.commands.{other} import" not in text, path
    assert "runner.commands.plan" not in (commands / "check_remote.py").read_text()
    assert "runner.commands.plan" not in (commands / "status.py").read_text()


def test_version_reads_package_metadata_and_loads_no_yaml() -> None:
    from importlib import metadata

    code = (
        "import sys, io; from runner.cli import main; out = io.StringIO(); "
        "rc = main(['--version'], stdout=out); "
        "assert not [m for m in sys.modules if m.startswith(('yaml', 'runner.manifest'))], "
        "sorted(sys.modules); print(out.getvalue(), end=''); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"celonis-runner {metadata.version('celonis-runner')}\n"


def test_main_in_process_never_hard_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a second signal `main` returns; only the entry point calls os._exit."""
    import os

    from runner import cli
    from runner.commands import run as run_command

    assert "os._exit" not in (ROOT / "runner" / "commands" / "run.py").read_text()
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)
    monkeypatch.setattr(cli, "invoke", lambda argv: cli.Outcome(130, hard_exit=True))
    with pytest.raises(SystemExit):  # os._exit is patched, so entry goes on
        cli.entry()
    assert exits == [130]
    monkeypatch.setattr(cli, "invoke", lambda argv: cli.Outcome(1))
    with pytest.raises(SystemExit) as raised:
        cli.entry()
    assert raised.value.code == 1 and exits == [130]
    assert "ctx" in run_command.run.__kwdefaults__


def test_connect_leaves_logging_to_the_command() -> None:
    import structlog

    from runner.logs import Redactor
    from runner.manifest.loader import load_manifest
    from runner.target import connect

    manifest = load_manifest(ROOT / "jobs.yaml", {})
    marker = [structlog.processors.JSONRenderer()]
    structlog.configure(processors=marker)
    with connect(manifest, {}, Redactor(), emulator=True) as client:
        assert client.base_url.startswith("http://127.0.0.1")
    assert structlog.get_config()["processors"] is marker
    structlog.reset_defaults()


def test_value_options_do_not_swallow_the_manifest(tmp_path: Path) -> None:
    from runner.cli import parse_args

    def parsed(line: str) -> tuple[str, str | None, list[str]]:
        args = parse_args(line.split())
        return args.file, getattr(args, "resume", None), args.select

    assert parsed("plan --select transform_o2c my.yaml") == ("my.yaml", None, ["transform_o2c"])
    assert parsed("plan --select a --select b,c x.yml") == ("x.yml", None, ["a", "b,c"])
    assert parsed("run --resume my.yaml") == ("my.yaml", "latest", [])
    assert parsed("run my.yaml --resume") == ("my.yaml", "latest", [])
    assert parsed("run --resume latest my.yaml") == ("my.yaml", "latest", [])
    assert parsed("run --resume 20260101T000000Z-abcdef") == (
        "jobs.yaml",
        "20260101T000000Z-abcdef",
        [],
    )
    existing = tmp_path / "manifest"
    existing.write_text("")
    assert parsed(f"run --resume {existing}") == (str(existing), "latest", [])
    with pytest.raises(SystemExit):
        parse_args(["run", "a.yaml", "--resume", "b.yaml"])


def test_plan_select_then_file_runs(cli: Cli) -> None:
    result = cli("plan", "--select", "transform_o2c", str(ROOT / "jobs.yaml"), "--format", "json")
    assert result.code == 0, result.err
    assert [j["name"] for j in json.loads(result.out)["jobs"]] == ["transform_o2c"]


def test_grace_must_not_be_negative(cli: Cli) -> None:
    result = cli("run", "--grace", "-5", str(ROOT / "jobs.yaml"))
    assert result.code == 2 and "--grace: must be 0 or more" in result.err
    assert cli("run", "--grace", "nan", str(ROOT / "jobs.yaml")).code == 2


def test_every_command_help_describes_options_and_ends_with_examples() -> None:
    from runner.cli import COMMANDS, build_parser

    descriptions = set()
    for name, info in COMMANDS.items():
        parser = build_parser(name)
        child = next(a for a in parser._actions if a.dest == "command").choices[name]  # type: ignore[attr-defined]
        text = child.format_help()
        descriptions.add(info.summary)
        assert "\n" not in info.summary and info.summary in text
        for action in child._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
        if any(a.dest in ("file", "files") for a in child._actions):
            assert "default: jobs.yaml" in text, name
        if any("--format" in a.option_strings for a in child._actions):
            assert "(default: " in next(
                a.help for a in child._actions if "--format" in a.option_strings
            )
        tail = text.rstrip().split("examples:\n")[-1].splitlines()
        assert 2 <= len(tail) <= 3 and all(
            line.strip().startswith(f"celonis-runner {name}") for line in tail
        ), name
    assert len(descriptions) == len(COMMANDS)


def test_missing_jobs_yaml_suggests_jobs_yml(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "jobs.yml").write_text((ROOT / "jobs.yaml").read_text())
    missing = tmp_path / "jobs.yaml"
    for command in ("validate", "plan"):
        result = cli(command, str(missing))
        assert result.code == 2
        assert f"{missing}: file not found (did you mean {tmp_path / 'jobs.yml'}?)" in (
            result.out + result.err
        )


def test_unknown_pool_lists_or_suggests_pools(cli: Cli) -> None:
    near = cli("plan", str(ROOT / "jobs.yaml"), "--select", "pool:sap_ec")
    assert near.code == 2 and "did you mean 'sap_ecc'?" in near.err
    far = cli("plan", str(ROOT / "jobs.yaml"), "--select", "pool:nope")
    assert far.code == 2 and "(the pools are: " in far.err and "sap_ecc" in far.err


def test_version_in_a_source_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    import runner

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert runner.version() == runner.SOURCE_VERSION
    assert runner.__version__ == runner.SOURCE_VERSION


def test_plan_does_not_import_requests() -> None:
    code = (
        "import sys; from runner.cli import main; "
        f"rc = main(['plan', {str(ROOT / 'jobs.yaml')!r}, '--select', 'transform_o2c']); "
        "assert 'requests' not in sys.modules, 'requests was imported'; sys.exit(rc)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_validate_counts_in_the_singular_too(
    cli: Callable[..., CliResult], write_manifest: Callable[[str], Path]
) -> None:
    path = write_manifest(
        "version: 1\n"
        "pools:\n  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}\n"
        "jobs:\n  only: {pool: sap, id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33}\n"
    )
    result = cli("validate", str(path))
    assert result.code == 0 and result.out == f"{path}: valid (1 job in 1 pool)\n"


def test_abbreviated_long_options_are_refused() -> None:
    """Adding an option must never change what an existing command line means (issue 26):
    argparse's prefix matching took `--base` as `--base-url` and `--junit` as `--junit-xml`."""
    import argparse

    from runner.cli import COMMANDS, build_parser, parse_args

    args = parse_args(["plan", "--base", "HEAD:jobs.yaml", "jobs.yaml"])
    assert args.base == "HEAD:jobs.yaml" and args.base_url is None
    args = parse_args(["run", "--base-url", "https://acme.eu-1.celonis.cloud"])
    assert args.base_url == "https://acme.eu-1.celonis.cloud" and args.base is None
    err = io.StringIO()
    for line in (
        ["run", "--junit", "junit.xml"],
        ["status", "--base", "https://acme.eu-1.celonis.cloud"],
        ["logs", "load", "--base", "https://acme.eu-1.celonis.cloud"],
        ["plan", "--check", "jobs.yaml"],
        ["run", "--report-", "r.json"],
    ):
        with pytest.raises(SystemExit) as raised:
            parse_args(line, io.StringIO(), err)
        assert raised.value.code == 2, line
        assert f"unrecognized arguments: {line[-2]}" in err.getvalue(), line
    for name in COMMANDS:
        parser = build_parser(name)
        assert parser.allow_abbrev is False
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert all(child.allow_abbrev is False for child in sub.choices.values()), name
