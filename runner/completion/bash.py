"""The bash completion script: `source <(celonis-runner completion bash)`.

Plain bash (no bash-completion package needed): the command's options, an option's value
(its choices, files, directories, or nothing for free text) and the positionals by place.
`--opt=value` is completed as `--opt value` (bash splits the word at `=`).
"""

from __future__ import annotations

import shlex

from runner.completion.shape import Command, Shape, Value

DRIVER = r"""
_celonis_runner_complete() {
    # $1: what the word is (choice WORDS | file | dir | any); $2: the word so far.
    # One candidate a line (a file name may hold spaces); no mapfile: bash 3.2 has none.
    local IFS=$'\n'
    case $1 in
        choice\ *) COMPREPLY=($(IFS=' '; compgen -W "${1#choice }" -- "$2")) ;;
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$2")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$2")) ;;
        *) COMPREPLY=() ;;
    esac
}

_celonis_runner() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local cmd="" npos=0 skip=0 i word what
    if [[ $cur == "=" ]]; then cur=""; elif [[ $prev == "=" ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == "=" || ${COMP_WORDS[i+1]} == "=" ]]; then skip=0; continue; fi
        if ((skip)); then skip=0; continue; fi
        if [[ -z $cmd ]]; then [[ $word == -* ]] || cmd=$word; continue; fi
        case $word in
            -*) [[ -n $(_celonis_runner_value "$cmd" "$word") ]] && skip=1 ;;
            *) ((npos++)) ;;
        esac
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then what="choice $(_celonis_runner_options "")"; else what="choice $(_celonis_runner_commands)"; fi
        _celonis_runner_complete "$what" "$cur"
        return 0
    fi
    what=$(_celonis_runner_value "$cmd" "$prev")
    if [[ -z $what && $cur == -* ]]; then
        what="choice $(_celonis_runner_options "$cmd")"
    elif [[ -z $what ]]; then
        what=$(_celonis_runner_positional "$cmd" "$npos")
    fi
    _celonis_runner_complete "$what" "$cur"
    return 0
}
"""


def script(shape: Shape) -> str:
    name = shape.prog
    commands = " ".join(c.name for c in shape.commands)
    parts = [
        f"# bash completion for {name}, made by `{name} completion bash` from its parser.\n"
        f"# Install: source <({name} completion bash)   (e.g. in ~/.bashrc)",
        f"_celonis_runner_commands() {{\n    echo {shlex.quote(commands)}\n}}",
        _options(shape),
        _values(shape),
        _positionals(shape),
        DRIVER.strip("\n"),
        f"complete -F _celonis_runner {shlex.quote(name)}",
    ]
    return "\n\n".join(parts) + "\n"


def _function(name: str, cases: list[tuple[str, str]]) -> str:
    """A function printing the words of the first case its arguments match."""
    body = [f"        {pattern}) echo {shlex.quote(words)} ;;" for pattern, words in cases]
    return f'{name}() {{\n    case "$*" in\n' + "\n".join(body) + "\n    esac\n}"


def _pattern(*words: str) -> str:
    return shlex.quote(" ".join(words))


def _options(shape: Shape) -> str:
    cases = [("''", " ".join(f for o in shape.options for f in o.flags))]
    cases += [
        (_pattern(c.name), " ".join(f for o in c.options for f in o.flags)) for c in shape.commands
    ]
    return _function("_celonis_runner_options", cases)


def _values(shape: Shape) -> str:
    """`COMMAND OPTION` -> what its value is; nothing for a flag."""
    cases = [
        (_pattern(c.name, flag), _what(o.value))
        for c in shape.commands
        for o in c.options
        if o.value is not None
        for flag in o.flags
    ]
    return _function("_celonis_runner_value", cases)


def _positionals(shape: Shape) -> str:
    """`COMMAND N` -> what the N-th word that is not an option is (counting from 0)."""
    cases = [case for c in shape.commands for case in _places(c)]
    return _function("_celonis_runner_positional", cases)


def _places(command: Command) -> list[tuple[str, str]]:
    cases = []
    for index, positional in enumerate(command.positionals):
        pattern = _pattern(command.name, str(index))
        if positional.many:
            pattern = _pattern(command.name) + "' '*"
        cases.append((pattern, _what(positional.value)))
    return cases


def _what(value: Value) -> str:
    return " ".join(["choice", *value.choices]) if value.kind == "choice" else value.kind
