"""The bash completion script: `source <(celonis-runner completion bash)`.

Plain bash (no bash-completion package needed): the command's options, an option's value
(its choices, files, directories, the manifest's names, or nothing for free text) and the
positionals by place. `--opt=value` is completed as `--opt value` (bash splits the word at `=`),
and a word with `:` (`pool:sap`, `JOB:TASKS`) is put together again from bash's pieces.
"""

from __future__ import annotations

import shlex

from runner.completion.shape import Command, Shape, Value

DRIVER = r"""
_celonis_runner_complete() {
    # $1: what the word is (choice WORDS | file | dir | job FORM | any); $2: the word so far;
    # for job: $3 the manifest, $4 the word whole (bash splits it at `:`).
    # One candidate a line (a file name may hold spaces); no mapfile: bash 3.2 has none.
    local IFS=$'\n'
    case $1 in
        choice\ *) COMPREPLY=($(IFS=' '; compgen -W "${1#choice }" -- "$2")) ;;
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$2")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$2")) ;;
        job\ *) _celonis_runner_names "${1#job }" "$3" "$4" ;;
        *) COMPREPLY=() ;;
    esac
}

_celonis_runner_names() {
    # The manifest's names: $1 the form (name | select | tasks), $2 the manifest, $3 the word.
    # bash replaces only what follows the word's last `:`, so that much goes off each one.
    local IFS=$'\n' file=$2 colon=""
    [[ $file == "~/"* ]] && file=$HOME/${file#"~/"}
    [[ $3 == *:* && $COMP_WORDBREAKS == *:* ]] && colon=${3%"${3##*:}"}
    COMPREPLY=($(command celonis-runner completion --names="$file" --names-for "$1" --word="$3" 2>/dev/null))
    [[ -n $colon ]] && COMPREPLY=("${COMPREPLY[@]#"$colon"}")
    [[ $1 == tasks ]] && compopt -o nospace 2>/dev/null
    return 0
}

_celonis_runner() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev word whole="" what
    local cmd="" npos=0 skip=0 i start=$COMP_CWORD
    local -a pos=()
    # bash splits a word at `:` (`pool`, `:`, `sap`): where the current word starts
    while ((start > 1)) && [[ ${COMP_WORDS[start]} == ":" || ${COMP_WORDS[start-1]} == ":" ]]; do ((start--)); done
    for ((i = start; i <= COMP_CWORD; i++)); do whole+=${COMP_WORDS[i]}; done
    prev=${COMP_WORDS[start-1]}
    if [[ $cur == "=" ]]; then cur="" whole=""; elif [[ $prev == "=" ]]; then prev=${COMP_WORDS[start-2]}; fi
    for ((i = 1; i < start; i++)); do
        word=${COMP_WORDS[i]}
        # the pieces after a `:` or `=` belong to the word before
        if [[ $word == [=:] || ${COMP_WORDS[i-1]} == [=:] ]]; then continue; fi
        if [[ ${COMP_WORDS[i+1]} == "=" ]]; then skip=0; continue; fi
        if ((skip)); then skip=0; continue; fi
        if [[ -z $cmd ]]; then [[ $word == -* ]] || cmd=$word; continue; fi
        case $word in
            -*) [[ -n $(_celonis_runner_value "$cmd" "$word") ]] && skip=1 ;;
            *) pos[npos]=$word; ((npos++)) ;;
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
    _celonis_runner_complete "$what" "$cur" "$(_celonis_runner_manifest "$cmd" "${pos[@]}")" "$whole"
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
        _manifests(shape),
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


def _manifests(shape: Shape) -> str:
    """`COMMAND WORD...` (the words that are not options) -> the manifest they name."""
    cases = []
    for command in shape.commands:
        if command.manifest is not None:
            place, default = command.manifest
            cases.append(
                f"        {command.name}) place={place + 2} default={shlex.quote(default)} ;;"
            )
    return (
        "_celonis_runner_manifest() {\n    local place default\n    case $1 in\n"
        + "\n".join(cases)
        + '\n        *) return 0 ;;\n    esac\n    echo "${!place:-$default}"\n}'
    )


def _what(value: Value) -> str:
    if value.kind == "choice":
        return " ".join(["choice", *value.choices])
    return f"job {value.form}" if value.kind == "job" else value.kind
