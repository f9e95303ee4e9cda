"""The command line: a table of commands, the parser built from it, errors mapped to exit codes.

Each command is a module of runner.commands with `add_arguments(parser)`,
`main(args, ctx)` and `EXAMPLES`; adding one is a new module and a line in
COMMANDS. Only the chosen command's module is imported, so `validate` and
`plan` never load the HTTP stack, and `--version` loads no YAML.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn, TextIO

from runner.errors import ExitCode, ManifestError, RunnerError

if TYPE_CHECKING:
    from runner.commands.shared import Context


@dataclass(frozen=True)
class CommandInfo:
    module: str
    summary: str
    """One line: `celonis-runner --help` lists it, the command's `--help` starts with it."""


COMMANDS: dict[str, CommandInfo] = {
    "validate": CommandInfo(
        "runner.commands.validate", "check manifests offline; report every problem with its line"
    ),
    "plan": CommandInfo(
        "runner.commands.plan", "dry run: print the waves and critical path `run` would execute"
    ),
    "diff": CommandInfo(
        "runner.commands.diff", "what a change to the manifest does: jobs, fields, dependencies"
    ),
    "run": CommandInfo(
        "runner.commands.run", "run the jobs in dependency order, in parallel where possible"
    ),
    "status": CommandInfo(
        "runner.commands.status", "each job's status in Celonis now, with its last execution"
    ),
    "init": CommandInfo(
        "runner.commands.init", "write a jobs.yaml from your team's data pools and jobs"
    ),
    "logs": CommandInfo(
        "runner.commands.logs", "a job's latest execution: status, tasks and error log lines"
    ),
    "report": CommandInfo(
        "runner.commands.report", "a saved run again: table, JSON, Gantt timeline or HTML page"
    ),
    "schema": CommandInfo("runner.commands.schema", "print the manifest's JSON Schema"),
    "emulator": CommandInfo(
        "runner.commands.emulator", "serve an emulator of the Celonis API on 127.0.0.1"
    ),
    "completion": CommandInfo(
        "runner.commands.completion", "print a shell completion script (bash, zsh or fish)"
    ),
}

EXIT_CODES = (
    "Exit codes: 0 ok; 1 a job failed; 2 invalid manifest or usage; "
    "3 API unusable or internal error; 130/143 interrupted. "
    "diff --detailed-exitcode: 0 no change, 2 changed, 1 error."
)


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on the line (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _version() -> str:
    from runner import version

    return f"celonis-runner {version()}"


def _version_action(stdout: TextIO) -> type[argparse.Action]:
    class Version(argparse.Action):
        """`--version`: reads the version only when asked (importlib.metadata is not free)."""

        def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
            super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

        def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
            stdout.write(_version() + "\n")
            parser.exit()

    return Version


def _parser_class(stdout: TextIO, stderr: TextIO) -> type[argparse.ArgumentParser]:
    class Parser(argparse.ArgumentParser):
        """Help and usage errors go to the invocation's streams, not always sys.stdout/err."""

        def _print_message(self, message: str, file: object = None) -> None:
            if message:
                (stderr if file is sys.stderr or file is None else stdout).write(message)

    return Parser


def build_parser(
    command: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    every: bool = False,
) -> argparse.ArgumentParser:
    """The parser; only `command`'s arguments are declared (its module is imported for them),
    or, with `every`, every command's (what `completion` walks)."""
    parser = _parser_class(stdout or sys.stdout, stderr or sys.stderr)(
        prog="celonis-runner",
        description="Validate, plan and run Celonis data jobs declared in jobs.yaml.",
        epilog=EXIT_CODES,
        # `--base` must never be read as `--base-url`: a new option must not change old lines
        allow_abbrev=False,
    )
    parser.add_argument("--version", action=_version_action(stdout or sys.stdout))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, info in COMMANDS.items():
        child = sub.add_parser(
            name, help=info.summary, description=info.summary + ".", allow_abbrev=False
        )
        if name == command or every:
            module = _module(name)
            child.formatter_class = argparse.RawDescriptionHelpFormatter
            child.epilog = f"examples:\n{module.EXAMPLES}"
            module.add_arguments(child)
    return parser


def parse_args(
    words: Sequence[str], stdout: TextIO | None = None, stderr: TextIO | None = None
) -> argparse.Namespace:
    """The parsed command line (SystemExit on --help, --version and usage errors, as argparse)."""
    return build_parser(_chosen(words), stdout, stderr).parse_args(words)


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name].module)


@dataclass
class Outcome:
    code: int
    hard_exit: bool = False


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run one command in-process; its exit code (never exits the process)."""
    return invoke(argv, environ=environ, stdout=stdout, stderr=stderr, stdin=stdin).code


def entry() -> NoReturn:
    """The console script and `python -m runner`: main, then exit the process."""
    for stream in (sys.stdout, sys.stderr):
        # the outputs escape what they show; should a character slip through, never a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    outcome = invoke(None)
    if outcome.hard_exit:
        # a second Ctrl-C/SIGTERM: outputs are written; don't wait for threads to wind down
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(outcome.code)
    raise SystemExit(outcome.code)


def invoke(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> Outcome:
    from runner.commands.shared import Context

    words = list(sys.argv[1:] if argv is None else argv)
    ctx = Context(
        environ=os.environ if environ is None else environ,
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        stdin=stdin,
        full_parser=lambda: build_parser(every=True),
    )
    try:
        args = parse_args(words, ctx.stdout, ctx.stderr)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        detailed = _chosen(words) == "diff" and "--detailed-exitcode" in words
        return Outcome(_error_code(int(exc.code or 0), detailed))
    code = _guarded(args, ctx)
    return Outcome(code, ctx.hard_exit)


def _error_code(code: int, detailed: bool) -> int:
    """With `--detailed-exitcode` 2 means "changed": an error exits 1 then, as Terraform's."""
    return ExitCode.JOB_FAILED if detailed and code == ExitCode.INVALID else code


def _guarded(args: argparse.Namespace, ctx: Context) -> int:
    """The command's exit code; errors printed (never a traceback) with their exit code."""
    from runner.commands.shared import scrubbed

    env, stderr = ctx.environ, ctx.stderr
    detailed = bool(getattr(args, "detailed_exitcode", False))
    try:
        code: int = _module(args.command).main(args, ctx)
        return code
    except ManifestError as exc:
        return _error_code(_manifest_problems(exc, args, ctx), detailed)
    except RunnerError as exc:
        stderr.write(f"celonis-runner: error: {scrubbed(str(exc), env)}\n")
        return _error_code(exc.exit_code, detailed)
    except KeyboardInterrupt:
        stderr.write("celonis-runner: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # an internal error: say so plainly, exit 3
        if env.get("CELONIS_RUNNER_DEBUG"):
            raise
        stderr.write(
            f"celonis-runner: internal error: {type(exc).__name__}: {scrubbed(str(exc), env)}\n"
            "This is a bug; set CELONIS_RUNNER_DEBUG=1 for the traceback and please report it.\n"
        )
        return ExitCode.API_UNUSABLE


def _manifest_problems(exc: ManifestError, args: argparse.Namespace, ctx: Context) -> int:
    from runner import problems as out
    from runner.commands.shared import github_enabled

    if hasattr(args, "github") and github_enabled(args, ctx):
        out.write_github(exc.problems, ctx.stderr)
    out.write_text(exc.problems, ctx.stderr)
    count = len(out.errors_of(exc.problems))
    ctx.stderr.write(f"{count} problem{'s' if count != 1 else ''}\n")
    return exc.exit_code
