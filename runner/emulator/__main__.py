"""`python -m runner.emulator`: the emulator command on its own (same options as `celonis-runner emulator`)."""

from __future__ import annotations

import argparse
import os
import sys

from runner.emulator.command import add_arguments, main
from runner.errors import RunnerError


def run() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.emulator", description="Serve an emulator of the Celonis API."
    )
    add_arguments(parser)
    args = parser.parse_args()
    try:
        return main(args, os.environ, sys.stdout)
    except RunnerError as exc:
        sys.stderr.write(f"celonis-runner emulator: error: {exc}\n")
        return exc.exit_code


raise SystemExit(run())
