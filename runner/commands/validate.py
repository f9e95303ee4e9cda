"""`celonis-runner validate`: every problem of every file, sorted by line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from runner import problems as out
from runner.commands.base import pull_request_summary
from runner.commands.shared import (
    DEFAULT_FILE,
    Context,
    add_github,
    add_manifest_options,
    add_quiet,
    check_file,
    github_enabled,
)
from runner.errors import ExitCode

if TYPE_CHECKING:
    from runner.manifest.model import Manifest

EXAMPLES = """\
  celonis-runner validate                      # checks ./jobs.yaml
  celonis-runner validate --format json jobs.yaml > problems.json
  celonis-runner validate - < rendered.yaml     # the manifest from stdin"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        default=[DEFAULT_FILE],
        metavar="FILE",
        help=f"manifests to check, any number; '-' reads one from stdin (default: {DEFAULT_FILE})",
    )
    parser.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default=None,
        help="text: one problem a line; json: a list of problems; github: workflow annotations"
        " and text (default: github with --github or when GITHUB_ACTIONS=true, else text)",
    )
    add_github(
        parser,
        "annotations (--format github) and, on a pull request, each file's changes against"
        " the target branch with their graph in the step summary ($GITHUB_STEP_SUMMARY)",
    )
    add_quiet(parser, "the verdict (no warnings, one line when every file is valid)")
    add_manifest_options(parser)


def main(args: argparse.Namespace, ctx: Context) -> int:
    github = github_enabled(args, ctx)
    return run(
        args.files,
        output_format=args.format or ("github" if github else "text"),
        environ=ctx.environ,
        stdout=ctx.stdout,
        max_bytes=args.max_size,
        summary_stream=ctx.stderr if github else None,
        stdin=ctx.stdin or sys.stdin,
        quiet=args.quiet,
    )


def run(
    files: Sequence[str],
    *,
    output_format: str,
    environ: Mapping[str, str],
    stdout: TextIO,
    max_bytes: int,
    summary_stream: TextIO | None = None,
    stdin: TextIO | None = None,
    quiet: bool = False,
) -> int:
    """`summary_stream`: write the pull request's step summary, warnings there. `stdin`: where
    the file `-` is read from. `quiet`: errors and the verdict only."""
    found: list[out.Problem] = []
    summaries: list[str] = []
    valid: list[tuple[str, Manifest]] = []
    for name in files:
        result = check_file(name, environ, strict_env=False, max_bytes=max_bytes, stdin=stdin)
        found.extend(result.problems)
        if result.manifest is not None:
            if name != "-":  # stdin has no earlier version to compare with
                valid.append((name, result.manifest))
            summaries.append(_valid_line(result.file, result.manifest))
    errors = out.errors_of(found)
    if quiet:
        found = list(errors)
        summaries = summaries if len(summaries) < 2 else [f"all {len(summaries)} files valid"]
    _write(found, errors, summaries, output_format, stdout)
    if summary_stream is not None:
        pull_request_summary(valid, environ=environ, stream=summary_stream, max_bytes=max_bytes)
    return ExitCode.INVALID if errors else ExitCode.OK


def _write(
    found: Sequence[out.Problem],
    errors: Sequence[out.Problem],
    summaries: Sequence[str],
    output_format: str,
    stdout: TextIO,
) -> None:
    if output_format == "json":
        out.write_json(found, stdout)
        return
    if output_format == "github":
        out.write_github(found, stdout)
    out.write_text(found, stdout)
    if errors:
        stdout.write(_problems_line(found, errors) + "\n")
    else:
        for line in summaries:
            stdout.write(line + "\n")


def _valid_line(name: str, manifest: Manifest) -> str:
    pools = len({j.pool for j in manifest.jobs.values()})
    jobs = len(manifest.jobs)
    return (
        f"{name}: valid ({jobs} job{'' if jobs == 1 else 's'}"
        f" in {pools} pool{'' if pools == 1 else 's'})"
    )


def _problems_line(found: Sequence[out.Problem], errors: Sequence[out.Problem]) -> str:
    """How many errors, and warnings beside them."""
    warnings = len(found) - len(errors)
    extra = f" and {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
    return f"{len(errors)} problem{'s' if len(errors) != 1 else ''}{extra}"
