"""The one translator from JSON Schema errors to problems (runner/schema.py), shared by every schema."""

from __future__ import annotations

import pytest

from runner.emulator import Scenario, ScenarioError
from runner.manifest import yamlio
from runner.schema import MANIFEST_SCHEMA, schema_issues, validator

SCENARIO = "scenario.schema.json"
POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"


def test_one_validator_per_schema_is_built_once() -> None:
    assert validator(MANIFEST_SCHEMA) is validator(MANIFEST_SCHEMA)
    assert validator(SCENARIO) is validator(SCENARIO)
    assert validator(SCENARIO) is not validator(MANIFEST_SCHEMA)


def test_manifest_and_scenario_enum_typos_read_the_same() -> None:
    """Both used to have their own copy; the scenario's never suggested across case."""
    manifest = {
        "version": 1,
        "pools": {"p": {"id": POOL}},
        "jobs": {"j": {"id": JOB, "mode": "ful"}},
    }
    [issue] = schema_issues(manifest, MANIFEST_SCHEMA)
    assert issue.message == "must be one of FULL, DELTA, got 'ful' (did you mean 'FULL'?)"
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict({"pools": [{"id": POOL, "jobs": [{"id": JOB, "outcome": "succes"}]}]})
    assert str(caught.value) == (
        "scenario: pools[0].jobs[0].outcome: must be one of SUCCESS, FAIL, CANCEL, SKIPPED, "
        "got 'succes' (did you mean 'SUCCESS'?)"
    )


def test_the_caller_decides_how_a_value_is_shown() -> None:
    manifest = {"version": 1, "pools": {"p": {"id": "sk-secret"}}, "jobs": {"j": {"url": 5}}}
    issues = schema_issues(manifest, MANIFEST_SCHEMA, shown=lambda path, value: "<hidden>")
    assert [(i.path, i.message.rsplit(", got ", 1)[1]) for i in issues] == [
        (("pools", "p", "id"), "<hidden>"),
        (("jobs", "j", "url"), "<hidden>"),
    ]
    assert "sk-secret" not in repr(issues)


def test_unknown_keys_point_at_the_key_with_a_suggestion() -> None:
    [issue] = schema_issues({"time_scal": 3}, SCENARIO)
    assert (issue.path, issue.key) == (("time_scal",), True)
    assert issue.message == "unknown key 'time_scal' (did you mean 'time_scale'?)"


def test_positions_are_recorded_while_building_even_through_a_merge_that_contains_itself() -> None:
    doc = yamlio.parse("a: &a\n  x: 1\n  <<: *a\n", display="f.yaml")
    assert [p.message for p in doc.problems] == [
        "an alias refers to a node that contains it (a cycle)"
    ]
    assert doc.position(("a", "x")) == (2, 6)


def test_positions_of_merged_keys_come_from_the_table_built_once() -> None:
    doc = yamlio.parse(
        "x-base: &b {pool: p, mode: FULL}\nx-more: &m {<<: *b, timeout: 1h}\n"
        "jobs:\n  a: {<<: *m, id: i}\n",
        display="f.yaml",
    )
    assert doc.data["jobs"]["a"] == {"pool": "p", "mode": "FULL", "timeout": "1h", "id": "i"}
    assert doc.position(("jobs", "a", "mode")) == (1, 28)
    assert doc.position(("jobs", "a", "timeout")) == (2, 30)
    assert doc.position(("jobs", "a", "id")) == (4, 19)


def test_validators_resolve_no_references_at_validation_time() -> None:
    """Resolving `$ref` was a third of validate's schema time at 10,000 jobs."""
    import json

    for name in (MANIFEST_SCHEMA, SCENARIO):
        assert '"$ref"' not in json.dumps(validator(name, resolved=True).schema)
    assert '"$ref"' not in json.dumps(validator(MANIFEST_SCHEMA).schema)
    # once variables are resolved, no anyOf keeps a branch that can never match
    assert not any(
        False in branches for branches in _any_ofs(validator(MANIFEST_SCHEMA, resolved=True).schema)
    )
    assert schema_issues({"version": 1, "pools": {"p": {"id": "x"}}, "jobs": {}}, MANIFEST_SCHEMA)[
        0
    ].message.startswith("must be a UUID like")


def _any_ofs(node: object) -> list[list[object]]:
    found: list[list[object]] = []
    if isinstance(node, dict):
        if isinstance(node.get("anyOf"), list):
            found.append(node["anyOf"])
        for value in node.values():
            found += _any_ofs(value)
    elif isinstance(node, list):
        for value in node:
            found += _any_ofs(value)
    return found
