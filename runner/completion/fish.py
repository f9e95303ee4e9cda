"""The fish completion script: `complete` lines, one per option and per command.

Files are offered only where a file goes (`complete -f` first, then `-F` per place); the
manifest's names where a job or a selector goes, from `celonis-runner completion --names`.
"""

from __future__ import annotations

from runner.completion.shape import Command, Option, Shape, Value

NAMES = r"""function __celonis_runner_names --argument-names form
    # The manifest's names in `form` (name | select | tasks); the manifest is the command's
    # FILE when typed (the words that are neither options nor their values), else its default.
    set -l tokens (commandline -opc)
    set -l cmd ''
    set -l pos
    set -l skip 0
    for token in $tokens[2..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $token
            test -n "$cmd"; and not string match -q -- '*=*' $token
            and __celonis_runner_valued $cmd $token; and set skip 1
        else if test -z "$cmd"
            set cmd $token
        else
            set -a pos $token
        end
    end
    set -l manifest (__celonis_runner_manifest $cmd); or return 0
    set -l file $manifest[2]
    set -q pos[$manifest[1]]; and set file $pos[$manifest[1]]
    set file (string replace -r -- '^~/' "$HOME/" $file)
    set -l word (string replace -r -- '^--[^=]*=' '' (commandline -ct))
    command celonis-runner completion --names=$file --names-for $form --word=$word 2>/dev/null
end
"""


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
        NAMES.rstrip("\n"),
        _valued(shape),
        _manifests(shape),
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


def _valued(shape: Shape) -> str:
    """`__celonis_runner_valued COMMAND OPTION`: whether the option takes a value (for the
    commands that complete names: to tell their positionals from the options' values)."""
    pairs = [
        _quote(f"{c.name} {flag}")
        for c in shape.commands
        if c.manifest is not None
        for o in c.options
        if o.value is not None
        for flag in o.flags
    ]
    return (
        "function __celonis_runner_valued\n"
        f'    contains -- "$argv[1] $argv[2]" {" ".join(pairs)}\n'
        "end"
    )


def _manifests(shape: Shape) -> str:
    """`__celonis_runner_manifest COMMAND`: the manifest's place among the positionals (from 1)
    and its default, one a line; fails for a command that completes no names."""
    cases = []
    for command in shape.commands:
        if command.manifest is not None:
            place, default = command.manifest
            cases.append(
                f"        case {command.name}\n            printf '%s\\n' {place + 1} {_quote(default)}"
            )
    body = "\n".join(cases)
    return (
        "function __celonis_runner_manifest\n    switch $argv[1]\n"
        f"{body}\n        case '*'\n            return 1\n    end\nend"
    )


def _value(value: Value) -> str:
    """What follows: `-x` takes a value with no file offered, `-r -F` a file."""
    if value.kind == "choice":
        return f"-x -a {_quote(' '.join(value.choices))}"
    if value.kind == "file":
        return "-r -F"
    if value.kind == "dir":
        return "-x -a '(__fish_complete_directories)'"
    if value.kind == "job":
        return f"-x -a {_quote(f'(__celonis_runner_names {value.form})')}"
    return "-x"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
