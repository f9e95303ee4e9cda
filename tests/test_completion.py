"""`celonis-runner completion bash|zsh|fish` (issue 22 #15): scripts made from the real parser,
run in the real shells. bash is everywhere; the zsh and fish tests are marked `tools` and
skip where that shell is missing (`make test-tools` installs them)."""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from runner.cli import COMMANDS, build_parser
from runner.commands import completion
from runner.completion.names import MAX_BYTES, Names, candidates, read_names
from runner.completion.shape import Value, shape_of
from tests.conftest import CliResult

Cli = Callable[..., CliResult]
PROG = "celonis-runner"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with a manifest and a folder, for file and directory completion."""
    (tmp_path / "jobs.yaml").write_text("version: 1\n")
    (tmp_path / "my jobs.yaml").write_text("version: 1\n")
    (tmp_path / "runs").mkdir()
    return tmp_path


NAMED = """\
version: 1
connection: {base_url: "${CELONIS_URL_NEVER_SET}", auth: {type: api_key}}
environments:
  dev: {connection: {base_url: "https://dev.eu-1.celonis.cloud"}}
  prod: {connection: {base_url: "https://prod.eu-1.celonis.cloud"}}
x-common: &common {mode: FULL}
pools:
  sap: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11}
  salesforce: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c12}
jobs:
  extract_orders: {<<: *common, pool: sap, id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b31}
  extract_customers: {pool: salesforce, id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b32}
  transform:
    pool: sap
    id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33
    depends_on: [extract_orders, extract_customers]
"""
OTHER = """\
version: 1
pools: {bw: {id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c13}}
jobs: {load_model: {pool: bw, id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b34}}
"""


@pytest.fixture
def named(tmp_path: Path) -> Path:
    """A directory whose jobs.yaml names jobs and pools (its connection needs a variable that is
    not set), and other.yaml with other names."""
    (tmp_path / "jobs.yaml").write_text(NAMED)
    (tmp_path / "other.yaml").write_text(OTHER)
    return tmp_path


def script(shell: str) -> str:
    return completion.script(shell, build_parser(every=True))


def _flags(command: str) -> set[str]:
    shape = shape_of(build_parser(every=True))
    (found,) = [c for c in shape.commands if c.name == command]
    return {flag for option in found.options for flag in option.flags}


# -- every script carries the whole parser -----------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_command_and_option_of_the_parser_is_in_the_script(shell: str) -> None:
    text = script(shell)
    shape = shape_of(build_parser(every=True))
    assert [c.name for c in shape.commands] == list(COMMANDS)
    for command in shape.commands:
        assert command.name in text
        for option in command.options:
            for flag in option.flags:
                spelled = flag.lstrip("-") if shell == "fish" else flag
                assert spelled in text, (shell, command.name, flag)
            for choice in option.value.choices if option.value else ():
                assert choice in text


def test_the_shape_reads_values_from_the_parser() -> None:
    shape = shape_of(build_parser(every=True))
    plan = next(c for c in shape.commands if c.name == "plan")
    by_flag = {flag: option for option in plan.options for flag in option.flags}
    assert by_flag["--format"].value is not None
    assert by_flag["--format"].value.choices == ("text", "json", "mermaid", "dot")
    assert by_flag["--format"].help == "one of text, json, mermaid, dot"
    assert by_flag["--scenario"].value is not None and by_flag["--scenario"].value.kind == "file"
    assert by_flag["--state-dir"].value is not None and by_flag["--state-dir"].value.kind == "dir"
    assert by_flag["--check-remote"].value is None
    assert by_flag["--select"].repeat and not by_flag["--format"].repeat
    assert [(p.name, p.value.kind, p.optional) for p in plan.positionals] == [
        ("FILE", "file", True)
    ]


def test_completion_takes_one_of_the_three_shells(cli: Cli) -> None:
    done = cli("completion", "bash")
    assert done.code == 0 and done.out == script("bash") and "complete -F" in done.out
    for wrong in (["completion"], ["completion", "tcsh"]):
        result = cli(*wrong)
        assert result.code == 2 and result.out == "", wrong
    assert "completion needs SHELL: one of bash, zsh, fish" in cli("completion").err
    assert "invalid choice: 'tcsh'" in cli("completion", "tcsh").err


# -- bash ----------------------------------------------------------------------------


def _bash_complete(workdir: Path, lines: Sequence[Sequence[str]]) -> list[list[str]]:
    """COMPREPLY of each line (the last word is the one being completed), from the script
    sourced in a real bash, as bash's programmable completion would call it."""
    (workdir / "complete.bash").write_text(script("bash"))
    calls = "\n".join(f"t {' '.join(shlex.quote(w) for w in words)}" for words in lines)
    program = f"""
source ./complete.bash
[[ $(complete -p {PROG}) == "complete -F _celonis_runner {PROG}" ]] || exit 9
t() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
    _celonis_runner {PROG} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    printf '%s\\n' "$(printf '%s|' "${{COMPREPLY[@]}}")"
}}
{calls}
"""
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        env=_with_runner(),
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [sorted(filter(None, line.split("|"))) for line in done.stdout.splitlines()]


def _with_runner() -> dict[str, str]:
    """The environment with this celonis-runner first on PATH (the scripts call it back for
    the manifest's names)."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / PROG).exists(), f"no {PROG} beside {sys.executable}"
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}


def test_bash_completes_commands_options_and_their_values(workdir: Path) -> None:
    cases = {
        (PROG, "ru"): ["run"],
        (PROG, "re"): ["report"],
        (PROG, ""): sorted(COMMANDS),
        (PROG, "--v"): ["--version"],
        (PROG, "run", "--for"): ["--force"],
        (PROG, "run", "--fa"): ["--fail-fast"],
        (PROG, "plan", "--format", ""): ["dot", "json", "mermaid", "text"],
        (PROG, "plan", "--format", "m"): ["mermaid"],
        (PROG, "plan", "--format", "=", "j"): ["json"],  # --format=j: bash splits at `=`
        (PROG, "diff", "--format", ""): ["json", "markdown", "mermaid", "text"],
        (PROG, "run", "--log-format", ""): ["console", "json"],
        (PROG, "completion", ""): ["bash", "fish", "zsh"],
        (PROG, "plan", "j"): ["jobs.yaml"],  # the manifest: files
        (PROG, "plan", "my"): ["my jobs.yaml"],  # one candidate, space and all
        (PROG, "plan", "--format", "json", "j"): ["jobs.yaml"],  # after an option's value
        (PROG, "validate", "a.yaml", "j"): ["jobs.yaml"],  # FILE ...: any number
        (PROG, "run", "--scenario", "j"): ["jobs.yaml"],
        (PROG, "plan", "--state-dir", ""): ["runs"],  # directories only
        (PROG, "plan", "--select", ""): [],  # a job selector: no file offered
        (PROG, "logs", "j"): [],  # JOB, a name
        (PROG, "logs", "load", "j"): ["jobs.yaml"],  # then FILE
        (PROG, "diff", "a.yaml", "b.yaml", "j"): [],  # BASE and NEW taken
    }
    assert dict(zip(cases, _bash_complete(workdir, list(cases)), strict=True)) == cases


def test_bash_offers_every_option_of_each_command(workdir: Path) -> None:
    lines = [(PROG, name, "-") for name in COMMANDS]
    for name, got in zip(COMMANDS, _bash_complete(workdir, lines), strict=True):
        assert set(got) == _flags(name), name
    for name in ("plan", "status", "logs", "diff", "run", "validate"):
        assert {"-q", "--quiet"} <= _flags(name), name  # the parser's options, as they come


def test_bash_completes_the_manifests_names(named: Path) -> None:
    jobs = ["extract_customers", "extract_orders", "transform"]
    cases = {
        (PROG, "logs", ""): jobs,  # ./jobs.yaml, FILE's default
        (PROG, "logs", "ex"): jobs[:2],
        (PROG, "logs", "--format", "json", "tr"): ["transform"],
        (PROG, "logs", "transform", "j"): ["jobs.yaml"],  # then FILE
        (PROG, "run", "jobs.yaml", "--select", "ex"): jobs[:2],
        (PROG, "plan", "--exclude", "t"): ["transform"],
        (PROG, "plan", "--select", "+t"): ["+transform"],
        (PROG, "plan", "--select", "transform,ex"): [f"transform,{j}" for j in jobs[:2]],
        (PROG, "plan", "--select", "=", "ex"): jobs[:2],  # --select=ex
        (PROG, "plan", "--select", "s"): ["state:modified"],
        # bash hands `pool:s` over in pieces and replaces only what follows the `:`
        (PROG, "plan", "--select", "pool", ":", "s"): ["salesforce", "sap"],
        (PROG, "plan", "--select", "pool", ":"): ["salesforce", "sap"],
        (PROG, "run", "--tasks", "ex"): ["extract_customers:", "extract_orders:"],
        (PROG, "run", "--tasks", "extract_orders", ":", ""): [],  # TASKS: Celonis' names
        # the manifest the line names, wherever it is among options and their values
        (PROG, "plan", "other.yaml", "--select", ""): ["load_model", "pool:bw", "state:modified"],
        (PROG, "run", "--tasks", "transform", ":", "x", "other.yaml", "--exclude", "l"): [
            "load_model"
        ],
        (PROG, "logs", "--run", "latest", "x", "other.yaml", "--format", "json", "x"): [],
        (PROG, "run", "missing.yaml", "--select", ""): [],
        (PROG, "status", "--format", ""): ["json", "text"],  # the rest as before
        (PROG, "run", "--env", ""): ["dev", "prod"],  # the manifest's environments
        (PROG, "plan", "--check-remote", "--env", "dev", "--env", "p"): ["prod"],
        (PROG, "plan", "other.yaml", "--env", ""): [],
    }
    assert dict(zip(cases, _bash_complete(named, list(cases)), strict=True)) == cases


@pytest.mark.parametrize(
    "text",
    [
        "jobs: [unclosed\n",  # invalid YAML
        "version: 1\njobs:\n  a: {pool: p}\n  a: {pool: p}\n: :\n\t- x\n",  # and later
        "- just\n- a list\n",
        "",
    ],
)
def test_bash_offers_nothing_and_says_nothing_for_a_broken_manifest(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / "jobs.yaml").write_text(text)
    lines = [(PROG, "logs", ""), (PROG, "plan", "--select", ""), (PROG, "run", "--tasks", "")]
    assert _bash_complete(tmp_path, lines) == [[], [], []]  # and stderr is empty


def test_bash_offers_nothing_without_a_manifest(tmp_path: Path) -> None:
    assert _bash_complete(tmp_path, [(PROG, "logs", ""), (PROG, "plan", "--select", "")]) == [
        [],
        [],
    ]


def test_the_shape_marks_the_values_that_take_names() -> None:
    shape = shape_of(build_parser(every=True))
    by_name = {c.name: c for c in shape.commands}
    for name in ("plan", "run"):
        flags = {f: o.value for o in by_name[name].options for f in o.flags}
        assert flags["--select"] == flags["--exclude"] == Value("job", form="select")
        assert flags["--tasks"] == Value("job", form="tasks")
        assert by_name[name].manifest == (0, "jobs.yaml")
    assert by_name["logs"].positionals[0].value == Value("job", form="name")
    assert by_name["logs"].manifest == (1, "jobs.yaml")
    assert by_name["validate"].manifest is None  # takes no names
    for name in ("plan", "run", "status", "logs"):  # --env: the manifest's environments
        flags = {f: o.value for o in by_name[name].options for f in o.flags}
        assert flags["--env"] == Value("job", form="env")
    assert by_name["status"].manifest == (0, "jobs.yaml")
    completion_flags = _flags("completion")
    assert not completion_flags & {"--names", "--names-for", "--word"}  # hidden


def test_completion_names_prints_one_candidate_a_line(cli: Cli, named: Path) -> None:
    path = str(named / "jobs.yaml")
    done = cli("completion", "--names", path)
    assert done.code == 0 and done.err == ""
    assert done.out.splitlines() == [
        "extract_orders",
        "extract_customers",
        "transform",
        "pool:sap",
        "pool:salesforce",
        "state:modified",
    ]
    assert cli("completion", "--names", path, "--names-for", "name", "--word=t").out == (
        "transform\n"
    )
    tasks = cli("completion", "--names", path, "--names-for", "tasks", "--word=extract_o")
    assert tasks.out == "extract_orders:\n"
    for broken in (str(named / "missing.yaml"), str(named), "/dev/null"):
        got = cli("completion", "--names", broken)
        assert (got.code, got.out, got.err) == (0, "", ""), broken


def test_names_are_read_leniently_and_only_as_names(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n  ok: {}\n  'has space': {}\n  '$(rm -rf /)': {}\n  <<: {x: 1}\n  ok: {}\n"
        "  [a, b]: 1\n  7up: {}\npools: [not, a, mapping]\n"
    )
    assert read_names(path) == Names(jobs=("ok",), pools=())
    big = tmp_path / "big.yaml"
    big.write_text("jobs: {a: 1}\n" + "#" * MAX_BYTES)
    assert read_names(big) == Names()
    names = Names(jobs=("a", "ab"), pools=("p",))
    assert candidates("select", names, "a,+a") == ["a,+a", "a,+ab"]
    assert candidates("select", names, "+p") == []  # pool:P takes no +
    assert candidates("select", names, "") == ["a", "ab", "pool:p", "state:modified"]
    assert candidates("tasks", names, "ab") == ["ab:"]
    assert candidates("tasks", names, "ab:") == []
    assert candidates("name", Names(pools=("p",)), "") == []


# -- fish ------------------------------------------------------------------------------

needs_fish = pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")


def _fish(workdir: Path, *lines: str) -> list[list[str]]:
    """`complete --do-complete LINE` for each line, after sourcing the script in real fish:
    the candidates' words (without their descriptions)."""
    path = workdir / "complete.fish"
    path.write_text(script("fish"))
    calls = "; ".join(
        f"complete --do-complete {shlex.quote(line)}; echo '-- end --'" for line in lines
    )
    done = subprocess.run(
        ["fish", "--no-config", "-c", f"source {shlex.quote(str(path))}; {calls}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        env=_with_runner(),
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    blocks = done.stdout.split("-- end --\n")[:-1]
    return [sorted(line.split("\t")[0] for line in block.splitlines()) for block in blocks]


@pytest.mark.tools
@needs_fish
def test_fish_reads_the_script(workdir: Path) -> None:
    path = workdir / "complete.fish"
    path.write_text(script("fish"))
    done = subprocess.run(["fish", "--no-execute", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.tools
@needs_fish
def test_fish_completes_commands_options_and_their_values(workdir: Path) -> None:
    got = _fish(
        workdir,
        f"{PROG} ru",
        f"{PROG} run --for",
        f"{PROG} plan --format ",
        f"{PROG} completion ",
        f"{PROG} plan j",
        f"{PROG} plan --select j",
        f"{PROG} plan --state-dir r",
        f"{PROG} status -",
    )
    assert got[:7] == [
        ["run"],
        ["--force"],
        ["dot", "json", "mermaid", "text"],
        ["bash", "fish", "zsh"],
        ["jobs.yaml"],
        [],
        ["runs/"],
    ]
    assert set(got[7]) == _flags("status")


@pytest.mark.tools
@needs_fish
def test_fish_completes_the_manifests_names(named: Path) -> None:
    got = _fish(
        named,
        f"{PROG} logs ex",
        f"{PROG} run jobs.yaml --select ex",
        f"{PROG} plan --select pool:s",
        f"{PROG} plan --select=+t",
        f"{PROG} run --tasks extract_o",
        f"{PROG} plan other.yaml --format json --exclude ",
        f"{PROG} plan missing.yaml --select ",
    )
    assert got == [
        ["extract_customers", "extract_orders"],
        ["extract_customers", "extract_orders"],
        ["pool:salesforce", "pool:sap"],
        ["--select=+transform"],
        ["extract_orders:"],
        ["load_model", "pool:bw", "state:modified"],
        [],
    ]


# -- zsh -----------------------------------------------------------------------------


class Zsh:
    """An interactive zsh in a pseudo-terminal (Python's pty, not zsh's zpty), with compinit
    and the script loaded, and `celonis-runner` a function that prints its arguments: a line
    is typed with its Tabs, then Enter shows what completion made of it."""

    PROMPT = b"READY> "

    def __init__(self, home: Path) -> None:
        (home / "complete.zsh").write_text(script("zsh"))
        (home / ".zshrc").write_text(
            "autoload -U compinit && compinit -u -D\n"
            "source ./complete.zsh\n"
            f'{PROG}() {{ print -r -- "ARGS<$*>" }}\n'
            "PS1='READY> '\n"
        )
        zsh = shutil.which("zsh") or "zsh"
        path = _with_runner()["PATH"]  # the script calls celonis-runner back for names
        env = {"ZDOTDIR": str(home), "HOME": str(home), "TERM": "dumb", "PATH": path}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes zsh
            os.chdir(home)
            os.execve(zsh, [zsh, "-i"], env)
        self.read_until(self.PROMPT)

    def read_until(self, marker: bytes, timeout: float = 10) -> bytes:
        seen = b""
        end = time.monotonic() + timeout
        while marker not in seen:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError(f"zsh said {seen!r}")
            seen += os.read(self.fd, 4096)
        return seen

    def typed(self, keys: str) -> str:
        os.write(self.fd, keys.encode())
        return self.read_until(self.PROMPT).decode(errors="replace")

    def close(self) -> None:
        os.close(self.fd)
        os.waitpid(self.pid, 0)


@pytest.fixture
def zsh(workdir: Path) -> Iterator[Zsh]:
    shell = Zsh(workdir)
    yield shell
    shell.close()


@pytest.mark.tools
@needs_zsh
def test_zsh_reads_the_script(workdir: Path) -> None:
    path = workdir / "_celonis-runner"
    path.write_text(script("zsh"))
    done = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert path.read_text().startswith(f"#compdef {PROG}\n")


@pytest.mark.tools
@needs_zsh
def test_zsh_completes_commands_options_and_their_values(zsh: Zsh) -> None:
    assert "ARGS<run>" in zsh.typed(f"{PROG} ru\t\n")
    assert "ARGS<run --fail-fast>" in zsh.typed(f"{PROG} run --fa\t\n")
    assert "ARGS<plan --format mermaid>" in zsh.typed(f"{PROG} plan --format me\t\n")
    assert "ARGS<completion fish>" in zsh.typed(f"{PROG} completion f\t\n")
    assert "ARGS<plan jobs.yaml>" in zsh.typed(f"{PROG} plan jo\t\n")
    shown = zsh.typed(f"{PROG} plan --state-dir ru\t\n")  # a directory: completed with a /
    assert "--state-dir runs/" in shown and "ARGS<plan --state-dir runs>" in shown
    listed = zsh.typed(f"{PROG} plan --format \x04")  # Ctrl-D: list the choices
    assert all(word in listed for word in ("text", "json", "mermaid", "dot")), listed
    zsh.typed("\x15\n")  # Ctrl-U: drop the line


@pytest.mark.tools
@needs_zsh
def test_zsh_completes_the_manifests_names(named: Path) -> None:
    shell = Zsh(named)
    try:
        assert "ARGS<logs transform>" in shell.typed(f"{PROG} logs tr\t\n")
        shown = shell.typed(f"{PROG} plan --select pool:sal\t\n")
        assert "ARGS<plan --select pool:salesforce>" in shown
        shown = shell.typed(f"{PROG} plan other.yaml --exclude l\t\n")
        assert "ARGS<plan other.yaml --exclude load_model>" in shown
        shown = shell.typed(f"{PROG} run --tasks extract_o\tx\n")  # no space after `JOB:`
        assert "ARGS<run --tasks extract_orders:x>" in shown
        listed = shell.typed(f"{PROG} logs ex\x04")  # Ctrl-D: list the candidates
        assert "extract_orders" in listed and "extract_customers" in listed, listed
        shell.typed("\x15\n")
    finally:
        shell.close()


@pytest.mark.tools
@needs_zsh
def test_zsh_loads_the_script_from_fpath(workdir: Path) -> None:
    """The install the README gives: the script as `_celonis-runner` in a directory of $fpath."""
    functions = workdir / "functions"
    functions.mkdir()
    (functions / f"_{PROG}").write_text(script("zsh"))
    program = (
        f"fpath=({shlex.quote(str(functions))} $fpath); autoload -U compinit && compinit -u -D;"
        f" print -r -- $_comps[{PROG}]"
    )
    done = subprocess.run(
        ["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30, cwd=workdir
    )
    assert done.returncode == 0 and done.stdout == f"_{PROG}\n", (done.stdout, done.stderr)
