"""`celonis-runner completion SHELL`: print a completion script for bash, zsh or fish.

The script is written from the CLI's own parser with every command's arguments declared
(`Context.full_parser`), so it completes exactly the commands, options and `--format` values
the CLI takes. The scripts call back `completion --names FILE --names-for FORM --word=WORD`
(hidden from the help) for the names in the manifest: one candidate a line, nothing on any
problem, fast (the YAML events only; runner.completion.names).
"""

from __future__ import annotations

import argparse
import importlib

from runner.commands.shared import Context
from runner.errors import ExitCode, UsageError

SHELLS = ("bash", "zsh", "fish")

EXAMPLES = """\
  celonis-runner completion bash >> ~/.bashrc
  celonis-runner completion zsh >> ~/.zshrc    # after compinit there
  celonis-runner completion fish >> ~/.config/fish/config.fish"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Optional for argparse (every command parses without arguments); main() insists on it.
    parser.add_argument(
        "shell", nargs="?", choices=SHELLS, help="the shell to complete in: bash, zsh or fish"
    )
    # what the scripts call at a Tab; hidden from help and usage (and so from the scripts)
    parser.add_argument("--names", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--names-for", default="select", help=argparse.SUPPRESS)
    parser.add_argument("--word", default="", help=argparse.SUPPRESS)
    usage = parser.format_usage().removeprefix("usage: ").replace("[{", "{", 1)
    parser.usage = usage.replace("}]", "}", 1).replace("%", "%%").rstrip("\n")


def main(args: argparse.Namespace, ctx: Context) -> int:
    if args.names is not None:
        ctx.stdout.write(
            "".join(f"{line}\n" for line in names(args.names, args.names_for, args.word))
        )
        return ExitCode.OK
    if not args.shell:
        raise UsageError(f"completion needs SHELL: one of {', '.join(SHELLS)}")
    if ctx.full_parser is None:
        raise UsageError("completion is only run from the command line")
    ctx.stdout.write(script(args.shell, ctx.full_parser()))
    return ExitCode.OK


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell`, from `parser` (every command declared)."""
    from runner.completion.shape import shape_of

    writer = importlib.import_module(f"runner.completion.{shell}")
    text: str = writer.script(shape_of(parser))
    return text


def names(file: str, form: str, word: str) -> list[str]:
    """The candidates for `word` from the manifest `file`; none on any problem (a Tab must never
    print an error into the command line being typed)."""
    from pathlib import Path

    from runner.completion import names as found

    try:
        return found.candidates(form, found.read_names(Path(file)), word)
    except Exception:  # completion stays quiet whatever happens
        return []
