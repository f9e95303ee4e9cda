"""`celonis-runner emulator`: the emulator of the Celonis API as a command (runner.emulator.command)."""

from __future__ import annotations

import argparse

from runner.commands.shared import Context

EXAMPLES = """\
  celonis-runner emulator --manifest jobs.yaml --port 8491
  celonis-runner emulator --manifest jobs.yaml --time-scale 60 --journal journal.jsonl"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from runner.emulator.command import add_arguments as add_emulator_arguments

    add_emulator_arguments(parser)


def main(args: argparse.Namespace, ctx: Context) -> int:
    from runner.emulator.command import main as emulator_main

    return emulator_main(args, ctx.environ, ctx.stdout)
