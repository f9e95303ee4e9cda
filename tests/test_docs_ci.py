"""The CI examples in docs/: valid YAML, shown verbatim in docs/ci.md, and every `celonis-runner`
command in them accepted by our own argument parser."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runner.cli import parse_args

ROOT = Path(__file__).parent.parent
EXAMPLES = [
    ROOT / "docs" / "examples" / "github-workflow.yml",
    ROOT / "docs" / "examples" / "gitlab-ci.yml",
]
SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>", "2>&1"}


SHELL_KEYS = {"run", "script", "before_script", "after_script"}  # GitHub steps, GitLab jobs


def scripts(node: object, shell: bool = False) -> Iterator[str]:
    """The shell text of every step (GitHub `run`) and job (GitLab `script` and the like)."""
    if isinstance(node, str):
        if shell:
            yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from scripts(value, shell or key in SHELL_KEYS)
    elif isinstance(node, list):
        for item in node:
            yield from scripts(item, shell)


def commands(text: str) -> Iterator[str]:
    """Each `celonis-runner ...` command line, continuation lines joined."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    for line in joined.splitlines():
        if line.strip().startswith("celonis-runner "):
            yield line.strip()


def argv(line: str) -> list[str]:
    """The arguments the shell would pass: CI expressions and $VARS as words, up to a redirect."""
    line = re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPRESSION", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:
        if word in SHELL_OPERATORS or set(word) <= set("<>|&;"):
            break
        words.append(word)
    assert words[0] == "celonis-runner"
    return words[1:]


def test_argv_handles_variables_expressions_and_redirects() -> None:
    line = 'celonis-runner plan "$FILE" --resume ${{ inputs.id }} --format json > plan.json'
    assert argv(line) == ["plan", "$FILE", "--resume", "GITHUB_EXPRESSION", "--format", "json"]
    assert list(commands("a\ncelonis-runner run jobs.yaml \\\n  --report r.json\n")) == [
        "celonis-runner run jobs.yaml --report r.json"
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_command_in_the_examples_parses(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    lines = [line for text in scripts(document) for line in commands(text)]
    subcommands = {argv(line)[0] for line in lines}
    assert {"validate", "plan", "run"} <= subcommands
    for line in lines:
        try:
            parse_args(argv(line))
        except SystemExit:
            pytest.fail(f"{path.name}: celonis-runner rejects: {line}")


def test_the_examples_use_the_ci_features() -> None:
    github, gitlab = (path.read_text() for path in EXAMPLES)
    for text in (github, gitlab):
        assert "--junit-xml junit.xml" in text and "--report report.json" in text
        assert "--resume" in text and "--check-remote" in text
        assert "CELONIS_RUNNER_STATE_DIR: celonis-state" in text
    assert "actions/upload-artifact" in github and "junit: junit.xml" in gitlab


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_docs_ci_shows_the_examples_verbatim(path: Path) -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert f"```yaml\n{path.read_text()}```\n" in doc
    assert f"(examples/{path.name})" in doc


def test_readme_documents_the_ci_options() -> None:
    readme = (ROOT / "README.md").read_text()
    for text in (
        "--junit-xml",
        "--check-remote",
        "--github",
        "GITHUB_STEP_SUMMARY",
        "celonis-runner status",
        "pre-commit",
        "celonis-runner-validate",
        "docs/ci.md",
    ):
        assert text in readme, text


def test_docs_ci_describes_the_log_formats() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert "--log-format json" in doc and "CELONIS_RUNNER_LOG_FORMAT: json" in doc
    assert "JSON lines when stderr is not a terminal" not in (ROOT / "README.md").read_text()
