"""Hostile and broken input: never a traceback, always exit 2 with a message that names the place."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli import main
from runner.emulator import ScenarioError, load_scenario
from runner.errors import UsageError
from runner.execution.statefile import load_saved

ROOT = Path(__file__).parent.parent
EXAMPLE = (ROOT / "jobs.yaml").read_text()
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(\d+:\d+:)? ")
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def validate(path: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", str(path), *extra], environ={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def check_clean_failure(path: Path, code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        lines = out.splitlines()
        assert re.fullmatch(r"\d+ problems?( and \d+ warnings?)?", lines[-1]), out
        for line in lines[:-1]:
            assert line.startswith(str(path)), line


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


@FAST
@given(content=st.binary(max_size=400))
def test_random_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "jobs.yaml"
    path.write_bytes(content)
    check_clean_failure(path, *validate(path))


@FAST
@given(data=yaml_values)
def test_random_yaml_documents(tmp_path_factory: pytest.TempPathFactory, data: object) -> None:
    path = tmp_path_factory.mktemp("yaml") / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = validate(path)
    check_clean_failure(path, code, out, err)
    assert code == 2


@FAST
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(EXAMPLE) - 1),
            st.sampled_from(["delete", "insert", "duplicate-line", "tab"]),
            st.text(alphabet=" :-[]{}&*!|>'\"#\t\nabc0123xyz_$", min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_manifest(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, str, str]]
) -> None:
    text = EXAMPLE
    for position, action, insert in edits:
        position %= max(len(text), 1)
        if action == "delete":
            text = text[:position] + text[position + len(insert) :]
        elif action == "insert":
            text = text[:position] + insert + text[position:]
        elif action == "tab":
            text = text[:position] + "\t" + text[position:]
        else:
            start = text.rfind("\n", 0, position) + 1
            end = text.find("\n", position) + 1 or len(text)
            text = text[:end] + text[start:end] + text[end:]
    path = tmp_path_factory.mktemp("mutated") / "jobs.yaml"
    path.write_text(text)
    check_clean_failure(path, *validate(path))
    _, out, err = validate(path, "--format", "json")
    assert "Traceback" not in err
    for problem in json.loads(out):
        assert set(problem) == {"file", "line", "column", "path", "message", "severity"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 9)}]\n"
                for i in range(12)
            ),
            "alias bomb",
        ),
        ("version: &v\n  self: *v\n", "an alias refers to a node that contains it"),
        ("version: 1\njobs:\n\tx: 1\n", "YAML syntax error"),
        ("version: 1\nname: " + "x" * 200_000 + "\n", "unknown key 'name'"),
        # libyaml's own depth limit (newer wheels) or ours (PyYAML 6.0's) refuses it first
        (
            "version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n",
            ("YAML syntax error", "nested deeper than 64"),
        ),
        ("version: 1\nx: " + "{a: " * 80 + "1" + "}" * 80 + "\n", "nested deeper than"),
    ],
    ids=["billion-laughs", "self-reference", "tab-indent", "long-string", "deep-flow", "deep-maps"],
)
def test_known_hostile_documents(
    tmp_path: Path, content: str, expected: str | tuple[str, ...]
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(content)
    started = time.perf_counter()
    code, out, err = validate(path)
    assert time.perf_counter() - started < 10
    wanted = (expected,) if isinstance(expected, str) else expected
    assert code == 2 and any(e in out for e in wanted) and "Traceback" not in out + err


def test_size_limit_option(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(EXAMPLE)
    code, out, _ = validate(path, "--max-size", "100")
    assert code == 2 and "over the limit of 100 bytes (raise it with --max-size" in out
    assert validate(path)[0] == 0


@FAST
@given(data=yaml_values)
def test_random_scenarios_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, data: object
) -> None:
    path = tmp_path_factory.mktemp("scenario") / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert str(path) in str(exc) or any(p.file == str(path) for p in exc.problems)


@FAST
@given(content=st.binary(max_size=300))
def test_random_scenario_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("scenario") / "scenario.yaml"
    path.write_bytes(content)
    with contextlib.suppress(ScenarioError):
        load_scenario(path)


@FAST
@given(cut=st.integers(min_value=0, max_value=2000), noise=st.binary(max_size=20))
def test_truncated_or_corrupt_state_files(
    tmp_path_factory: pytest.TempPathFactory, cut: int, noise: bytes
) -> None:
    good = json.dumps(
        {
            "state_version": 1,
            "run_id": "r",
            "status": "running",
            "selection": {"select": [], "exclude": []},
            "fingerprint": {},
            "jobs": {"a": {"state": "running", "handle": {"before": {}}, "intent_at": 1.0}},
        },
        indent=2,
    ).encode()
    path = tmp_path_factory.mktemp("state") / "run.json"
    path.write_bytes(good[: cut % (len(good) + 1)] + noise)
    try:
        load_saved(path)
    except UsageError as exc:
        assert str(exc).startswith(f"cannot resume from {path}: ")
