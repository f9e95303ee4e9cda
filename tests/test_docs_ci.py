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
GITHUB = ROOT / "docs" / "examples" / "github-workflow.yml"
GITLAB = ROOT / "docs" / "examples" / "gitlab-ci.yml"
SCHEDULED = ROOT / "docs" / "examples" / "github-scheduled.yml"
EXAMPLES = [GITHUB, GITLAB, SCHEDULED]
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
    assert {"plan", "run"} <= subcommands
    for line in lines:
        try:
            parse_args(argv(line))
        except SystemExit:
            pytest.fail(f"{path.name}: celonis-runner rejects: {line}")


def test_the_examples_use_the_ci_features() -> None:
    github, gitlab, scheduled = (path.read_text() for path in EXAMPLES)
    assert "celonis-runner validate" in github + gitlab
    for text in (github, gitlab, scheduled):
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


def snippets() -> Iterator[tuple[str, str]]:
    """(where, text) of every file a user copies from: README, docs, the hook file."""
    for path in [ROOT / "README.md", ROOT / ".pre-commit-hooks.yaml", *ROOT.glob("docs/**/*.*")]:
        if path.suffix in (".md", ".yml", ".yaml"):
            yield str(path.relative_to(ROOT)), path.read_text()


def test_no_snippet_pins_a_tag_that_does_not_exist() -> None:
    """`rev: v0.1.0` and `@v0.1.0` failed: no such tag. Pin what exists, or a placeholder that
    says plainly what to replace."""
    import subprocess

    done = subprocess.run(["git", "tag"], cwd=ROOT, capture_output=True, text=True)
    tags = set(done.stdout.split()) if done.returncode == 0 else set()
    pins = re.compile(r"(?:rev:\s*|celonis-runner@)([^\s\"'#]+)")
    found = 0
    for where, text in snippets():
        for line in text.splitlines():
            for ref in pins.findall(line):
                found += 1
                assert ref in tags or (ref == "COMMIT_SHA" and "REPLACE" in text), (where, line)
    assert found >= 4


def test_gitlab_image_has_what_its_commands_need() -> None:
    document = yaml.safe_load(GITLAB.read_text())
    image = document["default"]["image"]
    installs = " ".join(document["default"]["before_script"])
    if "git+" in installs:  # pip clones: the image needs git (python:*-slim and alpine have none)
        assert not image.endswith(("-slim", "-alpine")) and "alpine" not in image, image


def test_scheduled_example_runs_on_cron_and_may_read_other_runs_artifacts() -> None:
    for path in (SCHEDULED, GITHUB):
        document = yaml.safe_load(path.read_text())
        assert document["permissions"] == {"contents": "read", "actions": "read"}, path.name
        steps = [s for job in document["jobs"].values() for s in job["steps"]]
        download = [
            s for s in steps if str(s.get("uses", "")).startswith("actions/download-artifact")
        ]
        assert download and all("run-id" in s["with"] for s in download)
    on = yaml.safe_load(SCHEDULED.read_text())[True]  # YAML 1.1 reads the key `on` as True
    [cron] = on["schedule"]
    assert len(cron["cron"].split()) == 5 and "workflow_dispatch" in on


def test_the_pull_request_check_comments_the_diff_and_runs_only_what_changed() -> None:
    """Issue 26: the PR check comments `diff --format markdown` and a slim run of the changed
    jobs and everything downstream goes to a dev team; both need the target branch fetched."""
    document = yaml.safe_load(GITHUB.read_text())
    check, slim = document["jobs"]["check"], document["jobs"]["slim-run"]
    assert check["permissions"] == {"contents": "read", "pull-requests": "write"}
    for job in (check, slim):
        assert job["steps"][0]["with"]["fetch-depth"] == 0
    lines = [argv(line) for text in scripts(document) for line in commands(text)]
    diff = next(words for words in lines if words[0] == "diff")
    assert diff[1:] == ["origin/GITHUB_EXPRESSION:jobs.yaml", "jobs.yaml", "--format", "markdown"]
    assert "gh pr comment" in GITHUB.read_text()
    slim_lines = [argv(line) for text in scripts(slim) for line in commands(text)]
    [run] = [words for words in slim_lines if words[0] == "run"]
    assert run[run.index("--select") + 1] == "state:modified+"
    assert run[run.index("--base") + 1] == "origin/GITHUB_EXPRESSION:jobs.yaml"
    assert "--base-url" in run and "DEV" in str(slim["env"])
