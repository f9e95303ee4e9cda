"""The command line's shape, read from the argparse parser: commands, options, what a value is.

Completion scripts are written from this, never by hand, so they cannot drift from the CLI.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

FILE_METAVARS = frozenset({"FILE", "PATH", "BASE", "NEW"})
"""Values that name a file (BASE and NEW may also be REV:PATH; a file is the common case)."""
DIR_METAVARS = frozenset({"DIR"})
NAME_METAVARS = {"JOB": "name", "SEL": "select", "JOB:TASKS": "tasks", "ENV": "env"}
"""Values that hold the manifest's names, by the form they take (`runner.completion.names`):
completed with the names of the manifest the command line names."""
MANIFEST = "FILE"
"""The positional that is the manifest, whose names complete those values."""
HELP_WIDTH = 70


@dataclass(frozen=True)
class Value:
    """What a word completes to: `choice` (one of `choices`), `file`, `dir`, `job` (the
    manifest's names, in `form`: see NAME_METAVARS), or `any` (no suggestion: a number, a URL)."""

    kind: str
    choices: tuple[str, ...] = ()
    form: str = ""


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    value: Value | None
    """None: a flag; it takes no value (or only an optional one, which is not completed)."""
    repeat: bool = False


@dataclass(frozen=True)
class Positional:
    name: str
    help: str
    value: Value
    many: bool = False
    optional: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]

    @property
    def manifest(self) -> tuple[int, str] | None:
        """(place among the positionals, default) of the manifest, if the command reads one and
        has a value that completes its names."""
        values = [o.value for o in self.options] + [p.value for p in self.positionals]
        if not any(v is not None and v.kind == "job" for v in values):
            return None
        for place, positional in enumerate(self.positionals):
            if positional.name == MANIFEST and not positional.many and positional.default:
                return place, positional.default
        return None


@dataclass(frozen=True)
class Shape:
    prog: str
    options: tuple[Option, ...]
    """The options before a command (`--help`, `--version`)."""
    commands: tuple[Command, ...]


def shape_of(parser: argparse.ArgumentParser) -> Shape:
    """The shape of `parser`, whose subcommands must already have their arguments declared."""
    sub = _subparsers(parser)
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    commands = tuple(
        _command(name, helps.get(name, ""), child) for name, child in sub.choices.items()
    )
    options = tuple(_option(a) for a in _shown(parser) if a.option_strings)
    return Shape(parser.prog, options, commands)


def _shown(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's arguments but those hidden from its help (`completion --names`)."""
    return [a for a in parser._actions if a.help != argparse.SUPPRESS]


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError(f"{parser.prog} has no subcommands")


def _command(name: str, text: str, parser: argparse.ArgumentParser) -> Command:
    options = tuple(_option(a) for a in _shown(parser) if a.option_strings)
    positionals = tuple(_positional(a) for a in _shown(parser) if not a.option_strings)
    return Command(name, one_line(text), options, positionals)


def _option(action: argparse.Action) -> Option:
    value = _value(action) if action.nargs not in (0, "?") else None
    text = one_line(action.help or "")
    if value is not None and value.choices and text.startswith(f"{value.choices[0]}:"):
        text = f"one of {', '.join(value.choices)}"  # not the first choice's own description
    repeat = isinstance(action, argparse._AppendAction | argparse._CountAction)
    return Option(tuple(action.option_strings), text, value, repeat=repeat)


def _positional(action: argparse.Action) -> Positional:
    return Positional(
        str(action.metavar or action.dest),
        one_line(action.help or ""),
        _value(action),
        many=action.nargs in ("*", "+"),
        optional=action.nargs in ("?", "*"),
        default=action.default if isinstance(action.default, str) else None,
    )


def _value(action: argparse.Action) -> Value:
    if action.choices is not None:
        return Value("choice", tuple(str(c) for c in action.choices))
    metavar = str(action.metavar or "")
    if metavar in FILE_METAVARS:
        return Value("file")
    if metavar in DIR_METAVARS:
        return Value("dir")
    if metavar in NAME_METAVARS:
        return Value("job", form=NAME_METAVARS[metavar])
    return Value("any")


def one_line(text: str) -> str:
    """A help text as a short description: its first clause, on one line, `%%` as `%`."""
    flat = " ".join(text.replace("%%", "%").split())
    first = flat.split("; ")[0]
    return first if len(first) <= HELP_WIDTH else first[: HELP_WIDTH - 3].rstrip() + "..."
