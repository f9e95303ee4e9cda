"""The zsh completion script: a `#compdef` function for `$fpath`, or sourced after compinit.

Each command's options with their descriptions through `_arguments`, values by what they
are (choices, `_files`, directories, the manifest's names), the positionals in order.
"""

from __future__ import annotations

from runner.completion.shape import Command, Option, Positional, Shape, Value

Manifest = tuple[int, str] | None

NAMES = r"""_celonis_runner_names() {
    # The manifest's names. The last three arguments: the form (name | select | tasks), the
    # manifest's place among the positionals ($line, from _arguments), its default; before
    # them, what _arguments passes on for compadd.
    local form=${@[-3]} file=${line[${@[-2]} + 1]:-${@[-1]}}
    local -a names suffix
    names=(${(f)"$(command celonis-runner completion --names=${file/#\~/$HOME} --names-for $form --word=$PREFIX 2>/dev/null)"})
    [[ $form == tasks ]] && suffix=(-S '')
    compadd "${@[1,-4]}" "${suffix[@]}" -a names
}
"""

TAIL = """\
if [[ $funcstack[1] == _celonis-runner ]]; then
    _celonis_runner "$@"
else
    compdef _celonis_runner celonis-runner
fi
"""


def script(shape: Shape) -> str:
    name = shape.prog
    lines = [
        f"#compdef {name}",
        f"# zsh completion for {name}, made by `{name} completion zsh` from its parser.",
        f'# Install: {name} completion zsh > "${{fpath[1]}}/_{name}"  (then start a new shell),',
        f"# or after compinit: source <({name} completion zsh)",
        "",
        "_celonis_runner() {",
        '    local curcontext="$curcontext" state line',
        "    typeset -A opt_args",
        "    _arguments -C \\",
        *[f"        {spec} \\" for o in shape.options for spec in _option(o)],
        "        '1: :_celonis_runner_commands' \\",
        "        '*:: :->command'",
        "    [[ $state == command ]] || return",
        "    curcontext=${curcontext%:*:*}:celonis-runner-$words[1]:",
        "    case $words[1] in",
        *[line for c in shape.commands for line in _command(c)],
        "    esac",
        "}",
        "",
        "_celonis_runner_commands() {",
        "    local -a commands",
        "    commands=(",
        *[f"        {_quote(_escape(c.name, ':') + ':' + c.help)}" for c in shape.commands],
        "    )",
        "    _describe -t commands 'celonis-runner command' commands",
        "}",
        "",
        NAMES,
        TAIL,
    ]
    return "\n".join(lines)


def _command(command: Command) -> list[str]:
    specs = [spec for o in command.options for spec in _option(o, command.manifest)]
    specs += [_positional(p, command.manifest) for p in command.positionals]
    body = " \\\n                ".join(specs)
    return [f"        ({command.name})", f"            _arguments -s {body} ;;"]


def _option(option: Option, manifest: Manifest = None) -> list[str]:
    """`_arguments` specs: one per spelling, each excluding the others (`-q` and `--quiet`)."""
    text = f"[{_escape(option.help, '[]')}]"
    value = "" if option.value is None else f":{_action(option.value, manifest)}"
    exclusive = f"({' '.join(option.flags)})" if len(option.flags) > 1 else ""
    repeat = "*" if option.repeat else ""
    return [
        _quote(f"{'' if repeat else exclusive}{repeat}{flag}{text}{value}") for flag in option.flags
    ]


def _positional(positional: Positional, manifest: Manifest) -> str:
    place = "*" if positional.many else ""
    colons = "::" if positional.optional and not positional.many else ":"
    message = _escape(positional.name, ":")
    return _quote(
        f"{place}{colons}{message}:{_action(positional.value, manifest).split(':', 1)[1]}"
    )


def _action(value: Value, manifest: Manifest = None) -> str:
    """`MESSAGE:ACTION` for a value (the names of `manifest`: its place and default)."""
    if value.kind == "job" and manifest is not None:
        place, default = manifest
        return f"{value.form}:_celonis_runner_names {value.form} {place} {_escape(default, ' ')}"
    if value.kind == "choice":
        return f"{value.kind}:({' '.join(_escape(c, ' ()') for c in value.choices)})"
    return {"file": "file:_files", "dir": "directory:_files -/"}.get(value.kind, "value: ")


def _escape(text: str, special: str) -> str:
    return "".join("\\" + c if c in special or c == "\\" else c for c in text)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
