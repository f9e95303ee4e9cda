"""The fish completion script: `complete` lines, one per option and per command.

Files are offered only where a file goes (`complete -f` first, then `-F` per place).
"""

from __future__ import annotations

from runner.completion.shape import Command, Option, Shape, Value


def script(shape: Shape) -> str:
    name = shape.prog
    head = f"complete -c {name}"
    top = f"{head} -n __fish_use_subcommand"
    lines = [
        f"# fish completion for {name}, made by `{name} completion fish` from its parser.",
        f"# Install: {name} completion fish > ~/.config/fish/completions/{name}.fish",
        f"complete -c {name} -f",
        *[f"{top} {line}" for o in shape.options for line in _option(o)],
        *[f"{top} -a {c.name} -d {_quote(c.help)}" for c in shape.commands],
    ]
    for command in shape.commands:
        lines += _command(
            f"{head} -n {_quote('__fish_seen_subcommand_from ' + command.name)}", command
        )
    return "\n".join(lines) + "\n"


def _command(head: str, command: Command) -> list[str]:
    lines = [f"{head} {line}" for o in command.options for line in _option(o)]
    values = {p.value for p in command.positionals if p.value.kind != "any"}
    lines += [f"{head} {_value(v)}" for v in sorted(values, key=repr)]
    return lines


def _option(option: Option) -> list[str]:
    """The option with its description; its values on a line of their own (a description
    given with `-a` would be shown beside each value)."""
    flags = " ".join(
        f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}" for flag in option.flags
    )
    if option.value is None:
        return [f"{flags} -d {_quote(option.help)}"]
    value = _value(option.value)
    if " -a " not in value:
        return [f"{flags} {value} -d {_quote(option.help)}"]
    return [f"{flags} {value}", f"{flags} -x -d {_quote(option.help)}"]


def _value(value: Value) -> str:
    """What follows: `-x` takes a value with no file offered, `-r -F` a file."""
    if value.kind == "choice":
        return f"-x -a {_quote(' '.join(value.choices))}"
    if value.kind == "file":
        return "-r -F"
    if value.kind == "dir":
        return "-x -a '(__fish_complete_directories)'"
    return "-x"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
