"""The command line: parses arguments, calls one command, maps errors to exit codes.

Commands are imported only when used, so `validate` and `plan` never load
the HTTP stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from runner import __version__
from runner.errors import ExitCode, ManifestError, RunnerError, UsageError
from runner.manifest import problems as out
from runner.manifest.yamlio import DEFAULT_MAX_BYTES


def _scrubbed(message: str, environ: Mapping[str, str]) -> str:
    """The message without the value of any credential-like environment variable (defence in depth)."""
    from runner.logs import Redactor, secret_like_values

    return str(Redactor(secret_like_values(environ)).scrub(message))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_manifest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-size",
        type=_positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help=f"refuse manifests larger than this (default {DEFAULT_MAX_BYTES:,} bytes)",
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    help_text = (
        "NAME, +NAME (with its dependencies), NAME+ (with its dependents), +NAME+, pool:POOL"
    )
    parser.add_argument(
        "--select", nargs="+", action="extend", default=[], metavar="SEL", help=help_text
    )
    parser.add_argument(
        "--exclude", nargs="+", action="extend", default=[], metavar="SEL", help=help_text
    )
    parser.add_argument(
        "--max-parallel", type=_positive_int, metavar="N", help="at most N jobs at once overall"
    )


def _add_github(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--github",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="GitHub Actions annotations (and, for run, the step summary);"
        " default: on when GITHUB_ACTIONS=true",
    )


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the Celonis team URL (default: $CELONIS_BASE_URL, then the manifest)",
    )
    parser.add_argument(
        "--emulator", action="store_true", help="talk to the embedded emulator of the Celonis API"
    )
    parser.add_argument(
        "--scenario", metavar="FILE", help="with --emulator: the emulator's scenario file"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celonis-runner",
        description="Validate, plan and run Celonis data jobs declared in jobs.yaml.",
        epilog="Exit codes: 0 ok; 1 a job failed; 2 invalid manifest or usage; "
        "3 API unusable or internal error; 130/143 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate", help="check manifests; report every problem with its line"
    )
    validate.add_argument("files", nargs="*", default=["jobs.yaml"], metavar="FILE")
    validate.add_argument("--format", choices=["text", "json", "github"], default=None)
    _add_manifest_options(validate)

    plan = sub.add_parser("plan", help="dry run: print the plan that `run` would execute")
    plan.add_argument("file", nargs="?", default="jobs.yaml", metavar="FILE")
    plan.add_argument("--format", choices=["text", "json", "mermaid", "dot"], default="text")
    _add_selection(plan)
    plan.add_argument(
        "--check-remote",
        action="store_true",
        help="then check against the API, read-only, that every pool and job exists and is"
        " visible to the key, and warn about jobs running now",
    )
    _add_connection(plan)
    _add_github(plan)
    _add_manifest_options(plan)

    run = sub.add_parser("run", help="run the jobs in dependency order, in parallel where possible")
    run.add_argument("file", nargs="?", default="jobs.yaml", metavar="FILE")
    _add_selection(run)
    run.add_argument(
        "--fail-fast",
        action="store_true",
        help="after the first failure start nothing new and cancel running jobs",
    )
    run.add_argument(
        "--report",
        metavar="FILE",
        help="write a JSON report of the run (see schema/report.schema.json)",
    )
    run.add_argument(
        "--base-url",
        metavar="URL",
        help="the Celonis team URL (default: $CELONIS_BASE_URL, then the manifest)",
    )
    run.add_argument(
        "--log-format",
        choices=["console", "json"],
        help="default: console on a terminal, JSON lines otherwise",
    )
    run.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail in the log (debug events)"
    )
    run.add_argument(
        "--emulator",
        action="store_true",
        help="run against the embedded emulator of the Celonis API",
    )
    run.add_argument(
        "--scenario", metavar="FILE", help="with --emulator: the emulator's scenario file"
    )
    run.add_argument(
        "--emulator-journal",
        metavar="FILE",
        help="with --emulator: write the emulator's journal (JSON lines)",
    )
    run.add_argument(
        "--no-cancel", action="store_true", help="on Ctrl-C/SIGTERM leave remote jobs running"
    )
    run.add_argument(
        "--grace",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="on Ctrl-C/SIGTERM wait this long for cancelled jobs to end (default 60)",
    )
    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_ID",
        help="run what did not succeed in an earlier run (default: the latest); put FILE before it",
    )
    run.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where run state is saved (default: $CELONIS_RUNNER_STATE_DIR, then .celonis-runner/runs)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="with --resume: resume even though the manifest changed",
    )
    run.add_argument(
        "--junit-xml", metavar="FILE", help="write a JUnit XML report (a test suite per pool)"
    )
    _add_github(run)
    _add_manifest_options(run)

    status = sub.add_parser(
        "status", help="each job's status in Celonis now, with its last execution (read-only)"
    )
    status.add_argument("file", nargs="?", default="jobs.yaml", metavar="FILE")
    status.add_argument("--format", choices=["text", "json"], default="text")
    _add_connection(status)
    _add_github(status)
    _add_manifest_options(status)

    schema = sub.add_parser("schema", help="print the manifest's JSON Schema")
    schema.add_argument(
        "--report", action="store_true", help="print the run report's schema instead"
    )

    emulator = sub.add_parser("emulator", help="serve an emulator of the Celonis API on 127.0.0.1")
    try:
        from runner.emulator.command import add_arguments as add_emulator_arguments
    except ImportError:  # pragma: no cover - while the emulator is being written
        pass
    else:
        add_emulator_arguments(emulator)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    env = os.environ if environ is None else environ
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    try:
        return _dispatch(args, env, stdout, stderr)
    except ManifestError as exc:
        if hasattr(args, "github") and _github(args, env):
            out.write_github(exc.problems, stderr)
        out.write_text(exc.problems, stderr)
        count = len(out.errors_of(exc.problems))
        stderr.write(f"{count} problem{'s' if count != 1 else ''}\n")
        return exc.exit_code
    except RunnerError as exc:
        stderr.write(f"celonis-runner: error: {_scrubbed(str(exc), env)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.write("celonis-runner: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # an internal error: say so plainly, exit 3
        if env.get("CELONIS_RUNNER_DEBUG"):
            raise
        stderr.write(
            f"celonis-runner: internal error: {type(exc).__name__}: {_scrubbed(str(exc), env)}\n"
            "This is a bug; set CELONIS_RUNNER_DEBUG=1 for the traceback and please report it.\n"
        )
        return ExitCode.API_UNUSABLE


def _github(args: argparse.Namespace, env: Mapping[str, str]) -> bool:
    flag: bool | None = getattr(args, "github", None)
    return flag if flag is not None else env.get("GITHUB_ACTIONS") == "true"


def _dispatch(
    args: argparse.Namespace, env: Mapping[str, str], stdout: TextIO, stderr: TextIO
) -> int:
    if args.command == "validate":
        from runner.commands import validate

        fmt = args.format or ("github" if env.get("GITHUB_ACTIONS") == "true" else "text")
        return validate.run(
            args.files, output_format=fmt, environ=env, stdout=stdout, max_bytes=args.max_size
        )
    if args.command == "plan":
        from runner.commands import plan

        if args.scenario and not args.emulator:
            raise UsageError("--scenario goes with --emulator")
        if (args.emulator or args.base_url) and not args.check_remote:
            raise UsageError(
                "--base-url and --emulator go with --check-remote (plan alone makes no request)"
            )
        remote = None
        if args.check_remote:
            remote = plan.RemoteOptions(
                base_url=args.base_url, emulator=args.emulator, scenario=args.scenario
            )
        return plan.run(
            args.file,
            output_format=args.format,
            select=args.select,
            exclude=args.exclude,
            max_parallel=args.max_parallel,
            environ=env,
            stdout=stdout,
            stderr=stderr,
            max_bytes=args.max_size,
            github=_github(args, env),
            remote=remote,
        )
    if args.command == "run":
        from runner.commands import run

        if (args.scenario or args.emulator_journal) and not args.emulator:
            raise UsageError("--scenario and --emulator-journal go with --emulator")
        options = run.RunOptions(
            file=args.file,
            select=args.select,
            exclude=args.exclude,
            max_parallel=args.max_parallel,
            fail_fast=args.fail_fast,
            report=args.report,
            base_url=args.base_url,
            log_format=args.log_format,
            verbose=args.verbose,
            emulator=args.emulator,
            scenario=args.scenario,
            emulator_journal=args.emulator_journal,
            cancel_on_stop=not args.no_cancel,
            grace=args.grace,
            max_bytes=args.max_size,
            resume=args.resume,
            state_dir=args.state_dir,
            force=args.force,
            junit_xml=args.junit_xml,
            github=_github(args, env),
        )
        return run.run(options, environ=env, stdout=stdout, stderr=stderr)
    if args.command == "status":
        from runner.commands import status

        if args.scenario and not args.emulator:
            raise UsageError("--scenario goes with --emulator")
        return status.run(
            args.file,
            output_format=args.format,
            base_url=args.base_url,
            emulator=args.emulator,
            scenario=args.scenario,
            environ=env,
            stdout=stdout,
            stderr=stderr,
            max_bytes=args.max_size,
            github=_github(args, env),
        )
    if args.command == "schema":
        from runner.schema import MANIFEST_SCHEMA, REPORT_SCHEMA, schema_text

        stdout.write(schema_text(REPORT_SCHEMA if args.report else MANIFEST_SCHEMA))
        return ExitCode.OK
    if args.command == "emulator":
        from runner.emulator.command import main as emulator_main

        return emulator_main(args, env, stdout)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
