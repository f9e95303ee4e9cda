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
from runner import problems as out
from runner.errors import ExitCode, ManifestError, RunnerError, UsageError
from runner.yamlio import DEFAULT_MAX_BYTES


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
    _add_manifest_options(run)

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
        out.write_text(exc.problems, stderr)
        count = len(out.errors_of(exc.problems))
        stderr.write(f"{count} problem{'s' if count != 1 else ''}\n")
        return exc.exit_code
    except RunnerError as exc:
        stderr.write(f"celonis-runner: error: {exc}\n")
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
            f"celonis-runner: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug; set CELONIS_RUNNER_DEBUG=1 for the traceback and please report it.\n"
        )
        return ExitCode.API_UNUSABLE


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
        )
        return run.run(options, environ=env, stdout=stdout, stderr=stderr)
    if args.command == "schema":
        from runner.schema import MANIFEST_SCHEMA, REPORT_SCHEMA, schema_text

        stdout.write(schema_text(REPORT_SCHEMA if args.report else MANIFEST_SCHEMA))
        return ExitCode.OK
    if args.command == "emulator":
        from runner.emulator.command import main as emulator_main

        return emulator_main(args, env, stdout)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
