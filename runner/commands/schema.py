"""`celonis-runner schema`: print the manifest's (or the run report's) JSON Schema."""

from __future__ import annotations

import argparse

from runner.commands.shared import Context
from runner.errors import ExitCode

EXAMPLES = """\
  celonis-runner schema > jobs.schema.json     # for your editor's YAML support
  celonis-runner schema --report > report.schema.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", action="store_true", help="print the run report's schema instead"
    )


def main(args: argparse.Namespace, ctx: Context) -> int:
    from runner.schema import MANIFEST_SCHEMA, REPORT_SCHEMA, schema_text

    ctx.stdout.write(schema_text(REPORT_SCHEMA if args.report else MANIFEST_SCHEMA))
    return ExitCode.OK
