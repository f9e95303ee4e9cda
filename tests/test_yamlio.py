from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.manifest import yamlio
from runner.manifest.loader import check_manifest


def test_positions_follow_paths_through_merge_keys() -> None:
    doc = yamlio.parse(
        "base: &b\n  pool: p\n  mode: FULL\njob:\n  <<: *b\n  id: x\n", display="f.yaml"
    )
    assert doc.data == {
        "base": {"pool": "p", "mode": "FULL"},
        "job": {"id": "x", "pool": "p", "mode": "FULL"},
    }
    assert doc.position(("job", "id")) == (6, 7)
    assert doc.position(("job", "mode")) == (3, 9)  # where the merged value is written
    assert doc.position(("job", "id"), key=True) == (6, 3)
    assert doc.position(("job", "missing")) == (5, 3)  # the parent, when the field is absent


def test_explicit_keys_win_over_merged_ones() -> None:
    doc = yamlio.parse("a: &a {mode: FULL, x: 1}\nb:\n  <<: *a\n  mode: DELTA\n", display="f")
    assert doc.data["b"] == {"mode": "DELTA", "x": 1}
    assert doc.problems == []
    assert doc.position(("b", "mode")) == (4, 9)  # the explicit value, not the merged one
    assert doc.position(("b", "x")) == (1, 23)


def test_earlier_merge_sources_win() -> None:
    doc = yamlio.parse("a: &a {m: 1}\nb: &b {m: 2}\nc:\n  <<: [*a, *b]\n", display="f")
    assert doc.data["c"] == {"m": 1}
    assert doc.position(("c", "m")) == (1, 11)


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    doc = yamlio.parse("jobs:\n  a: 1\n  b: 2\n  a: 3\n", display="f.yaml")
    [problem] = doc.problems
    assert (problem.line, problem.column, problem.path) == (4, 3, "jobs.a")
    assert problem.message.startswith("duplicate key 'a' (first defined on line 2)")


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(yamlio.YamlError) as info:
        yamlio.parse("a: [1, 2\nb: 3\n", display="f.yaml")
    assert (info.value.problem.line, info.value.problem.column) == (2, 2)
    assert "YAML syntax error" in info.value.problem.message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        ref = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([ref] * 9)}]")
    started = time.perf_counter()
    doc = yamlio.parse("\n".join(lines) + "\n", display="bomb.yaml")
    assert time.perf_counter() - started < 5
    assert doc.data is None
    assert "alias bomb" in doc.problems[0].message


def test_alias_that_contains_itself_is_refused() -> None:
    doc = yamlio.parse("a: &a\n  b: *a\n", display="f")
    assert doc.problems[0].message == "an alias refers to a node that contains it (a cycle)"


def test_deep_nesting_is_refused() -> None:
    doc = yamlio.parse("a: " + "[" * 200 + "]" * 200 + "\n", display="f")
    assert doc.data is None
    assert "nested deeper than" in doc.problems[0].message


def test_unknown_tags_are_refused() -> None:
    doc = yamlio.parse("a: !!python/object:os.system ls\n", display="f")
    assert "unsupported YAML tag" in doc.problems[0].message


def test_dates_stay_text() -> None:
    assert yamlio.parse("a: 2024-01-01\n", display="f").data == {"a": "2024-01-01"}


def test_non_utf8_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(yamlio.YamlError) as info:
        yamlio.read_text(path, display="m.yaml")
    problem = info.value.problem
    assert (problem.line, problem.column) == (2, 10)
    assert "not valid UTF-8 (byte 0xe9)" in problem.message


def test_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("a: 1\n" * 100)
    with pytest.raises(yamlio.YamlError) as info:
        yamlio.read_text(path, display="m.yaml", max_bytes=100)
    assert "over the limit of 100 bytes" in info.value.problem.message


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(yamlio.YamlError, match="is a directory"):
        yamlio.read_text(tmp_path, display="d")
    with pytest.raises(yamlio.YamlError, match="file not found"):
        yamlio.read_text(tmp_path / "nope.yaml", display="nope.yaml")


def test_no_garbage_collection_while_a_big_document_is_built_and_the_collector_is_back_after() -> (
    None
):
    import gc

    text = "jobs:\n" + "".join(
        f"  j{i}: {{pool: p, id: x{i}, depends_on: [a, b]}}\n" for i in range(20_000)
    )
    collections: list[str] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    gc.callbacks.append(count)
    try:
        doc = yamlio.parse(text, display="big.yaml")
    finally:
        gc.callbacks.remove(count)
    # compose and build ran with the collector paused (~1,000 collections without); at most
    # one runs as the collector comes back at the end
    assert len(collections) <= 1, len(collections)
    assert gc.isenabled()
    # what was built is frozen: a later full collection does not walk it again
    assert gc.get_freeze_count() >= 20_000
    assert doc.data["jobs"]["j19999"] == {"pool": "p", "id": "x19999", "depends_on": ["a", "b"]}
    with pytest.raises(yamlio.YamlError):
        yamlio.parse("a: [\n", display="f")
    assert gc.isenabled()  # also after a syntax error


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("allow_failure: yes", "'yes' is true only in YAML 1.1"),
        ("allow_failure: Off", "write false"),
        ("timeout: 1:30", "for a duration write units like 1m30s"),
        ("timeout: 1:02:03", "units like 1h2m3s"),
        ("timeout: 1_000", "write 1000 (no '_')"),
    ],
)
def test_values_only_yaml_1_1_reads_as_booleans_or_numbers_are_refused_where_they_are(
    tmp_path: Path, value: str, message: str
) -> None:
    """Editors read YAML 1.2: `yes` and `1:30` are text there. Both must read the file alike."""
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "version: 1\npools:\n  sap:\n    id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11\njobs:\n  a:\n"
        f"    pool: sap\n    id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33\n    {value}\n"
        "    description: 'yes'\n  b:\n    pool: sap\n    id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349\n"
        '    description: "1:30"\n',
        encoding="utf-8",
    )
    problems = check_manifest(path, {}, strict_env=True).problems
    assert [(p.line, p.column) for p in problems] == [(9, 5 + len(value.split(":")[0]) + 2)]
    assert message in problems[0].message, problems[0].render()
