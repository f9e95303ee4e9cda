"""`celonis-runner diff BASE [NEW]`: what a change to the manifest does to the pipeline.

Both are validated first; then pools and jobs added, removed and changed, field by field,
the dependency edges, and what the changes reach downstream (runner.manifest.diff).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from runner.commands.base import at_revision, load_pair
from runner.commands.shared import (
    DEFAULT_FILE,
    Context,
    add_github,
    add_manifest_options,
    add_quiet,
    github_enabled,
    scrubbed,
)
from runner.errors import ExitCode

if TYPE_CHECKING:
    from runner.manifest.diff import ManifestDiff

FORMATS = ("text", "json", "markdown", "mermaid")
CHANGED = 2
"""--detailed-exitcode: the manifests differ (Terraform's plan says the same with 2)."""
MAX_ANNOTATIONS = 50

EXAMPLES = """\
  celonis-runner diff origin/main:jobs.yaml             # this branch's jobs.yaml against main's
  celonis-runner diff old.jobs.yaml new.jobs.yaml --format json
  celonis-runner diff HEAD:jobs.yaml --format markdown --detailed-exitcode > diff.md"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "base",
        nargs="?",
        metavar="BASE",
        help="the manifest before the change: a file, or REV:PATH read with `git show`"
        " (origin/main:jobs.yaml; the path is from the repository's top, REV:./PATH from here;"
        " default: HEAD:./NEW, the last commit's, as `git diff`)",
    )
    parser.add_argument(
        "new",
        nargs="?",
        default=DEFAULT_FILE,
        metavar="NEW",
        help=f"the manifest after it, a file or REV:PATH (default: {DEFAULT_FILE})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: a change a line; json: added/removed/changed/edges for scripts; markdown:"
        " for a pull request comment; mermaid: the new graph with the changes marked"
        " (default: text)",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing changed, 2 when something did, 1 on an error (as Terraform)",
    )
    add_github(
        parser,
        "GitHub Actions notices at the changed jobs' lines and the change list with its graph"
        " in the step summary ($GITHUB_STEP_SUMMARY)",
    )
    add_quiet(
        parser,
        "whether anything changed: the text's first line (the other formats are unchanged;"
        " so is the exit code)",
    )
    add_manifest_options(parser)


def main(args: argparse.Namespace, ctx: Context) -> int:
    return run(
        args.base or at_revision("HEAD", args.new),
        args.new,
        output_format=args.format,
        detailed_exitcode=args.detailed_exitcode,
        github=github_enabled(args, ctx),
        environ=ctx.environ,
        stdout=ctx.stdout,
        stderr=ctx.stderr,
        max_bytes=args.max_size,
        quiet=args.quiet,
    )


def run(
    base: str,
    new: str,
    *,
    output_format: str,
    detailed_exitcode: bool,
    github: bool,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    max_bytes: int,
    quiet: bool = False,
) -> int:
    """`quiet`: with text, only its first line (whether anything changed)."""
    from runner.manifest.diff import compare
    from runner.reports.diff_output import WRITERS, markdown, write_headline

    before, after = load_pair(base, new, environ=environ, stderr=stderr, max_bytes=max_bytes)
    diff = compare(before, after)
    text = io.StringIO()
    writer = write_headline if quiet and output_format == "text" else WRITERS[output_format]
    writer(diff, text)
    stdout.write(scrubbed(text.getvalue(), environ))
    if github:
        from runner.reports.github import append_step_summary

        write_annotations(diff, stderr)
        append_step_summary(scrubbed(markdown(diff), environ), environ, stderr)
    return CHANGED if detailed_exitcode and diff.has_changes else ExitCode.OK


def write_annotations(diff: ManifestDiff, stream: TextIO) -> None:
    """A `::notice` at each added or changed job's line of NEW (when NEW is a file here)."""
    from runner.manifest.revision import is_revision
    from runner.reports.diff_output import shown
    from runner.reports.github import command

    if is_revision(diff.new.path):
        return
    notes = [(e.line, f"{e.kind} {e.name} added", "") for e in diff.added]
    notes += [
        (
            c.line,
            f"{c.kind} {c.name} changed",
            "; ".join(
                f"{f.field}: {shown(f.field, f.old)} -> {shown(f.field, f.new)}" for f in c.fields
            ),
        )
        for c in diff.changed
        if c.line
    ]
    for line, title, message in notes[:MAX_ANNOTATIONS]:
        stream.write(
            command(
                "notice",
                message or title,
                title=f"celonis-runner: {title}",
                file=diff.new.path,
                line=line,
            )
        )
