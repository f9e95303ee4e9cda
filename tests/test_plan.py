from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import ExitCode, PlanError
from runner.manifest.loader import load_manifest
from runner.manifest.model import Manifest
from runner.plan.build import build_plan, downstream, resolve_selection, upstream
from tests.fake_celonis import job, plan_of

EXAMPLE = Path(__file__).parent.parent / "jobs.yaml"


@pytest.fixture(scope="module")
def example() -> Manifest:
    return load_manifest(EXAMPLE, {})


def test_waves_follow_dependencies(example: Manifest) -> None:
    plan = build_plan(example)
    wave_of = {name: p.wave for name, p in plan.jobs.items()}
    for name, planned in plan.jobs.items():
        for dep in planned.depends_on:
            assert wave_of[dep] < wave_of[name]
        assert planned.wave == 1 + max((wave_of[d] for d in planned.depends_on), default=0)
    assert list(plan.jobs) == [n for wave in plan.waves for n in wave]


def test_critical_path_uses_expected_durations(example: Manifest) -> None:
    plan = build_plan(example)
    assert plan.critical_path == ("extract_sap_master_data", "transform_o2c", "load_o2c_model")
    assert plan.critical_path_seconds == 20 * 60 + 25 * 60 + 15 * 60


def test_select_with_upstream(example: Manifest) -> None:
    plan = build_plan(example, select=["+transform_o2c"])
    assert set(plan.jobs) == {
        "transform_o2c",
        "extract_sap_master_data",
        "extract_sap_orders",
        "extract_sap_deliveries",
    }
    assert plan.jobs["transform_o2c"].assumed_done == ()


def test_select_downstream_assumes_unselected_dependencies_done(example: Manifest) -> None:
    plan = build_plan(example, select=["transform_o2c+"])
    assert set(plan.jobs) == {"transform_o2c", "quality_checks", "load_o2c_model"}
    assert plan.jobs["transform_o2c"].assumed_done == (
        "extract_sap_master_data",
        "extract_sap_orders",
        "extract_sap_deliveries",
    )
    assert plan.jobs["load_o2c_model"].depends_on == ("transform_o2c",)
    assert plan.jobs["load_o2c_model"].assumed_done == (
        "transform_customers",
        "transform_opportunities",
    )


def test_pool_selector_and_exclude(example: Manifest) -> None:
    plan = build_plan(example, select=["pool:salesforce"], exclude=["transform_opportunities"])
    assert list(plan.jobs) == ["extract_salesforce"]
    assert "transform_opportunities" in plan.excluded


def test_both_ways_and_commas(example: Manifest) -> None:
    names = resolve_selection(example, ["+transform_customers+,extract_sap_orders"])
    assert set(names) == {
        "transform_customers",
        "extract_sap_master_data",
        "extract_salesforce",
        "load_o2c_model",
        "extract_sap_orders",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "transform_o2",
            "unknown job 'transform_o2' in 'transform_o2' (did you mean 'transform_o2c'?)",
        ),
        ("+extract_sap+", "unknown job 'extract_sap' in '+extract_sap+'"),
        ("pool:sap", "unknown pool 'sap' in 'pool:sap' (did you mean 'sap_ecc'?)"),
    ],
)
def test_unknown_selection_names(example: Manifest, spec: str, message: str) -> None:
    with pytest.raises(PlanError) as info:
        build_plan(example, select=[spec])
    assert str(info.value).startswith(message)
    assert info.value.exit_code == ExitCode.INVALID


def test_max_parallel_below_one_is_a_plan_error(example: Manifest) -> None:
    with pytest.raises(PlanError, match="must be at least 1") as info:
        build_plan(example, max_parallel=0)
    assert info.value.exit_code == ExitCode.INVALID


def test_downstream_and_upstream_share_one_closure(example: Manifest) -> None:
    plan = build_plan(example)
    first = next(iter(plan.jobs))
    below = downstream(plan, first)
    assert first not in below
    for name in below:
        assert first in upstream(plan, name)


def test_pool_limits_only_for_planned_pools(example: Manifest) -> None:
    plan = build_plan(example, select=["pool:sap_ecc"], max_parallel=3)
    assert plan.pool_limits == {"sap_ecc": 2}
    assert plan.max_parallel == 3


def test_plan_is_pure(example: Manifest, write_manifest: Callable[[str], Path]) -> None:
    assert build_plan(example) == build_plan(example)


def test_remaining_is_each_jobs_longest_chain_to_the_end() -> None:
    """What the scheduler starts first when more jobs are ready than can start: by expected
    durations where given, by the median of those for the rest."""
    jobs = [
        job("a", expected_duration=100.0),
        job("b", "a", expected_duration=10.0),
        job("c", "a"),
        job("lone", expected_duration=30.0),
    ]
    remaining = plan_of(*jobs).remaining
    # c has no duration: the median of 100, 10 and 30
    assert remaining == {"a": 130.0, "b": 10.0, "c": 30.0, "lone": 30.0}
    untimed = plan_of(job("x"), job("y", "x"), job("z", "y"), job("w", "x")).remaining
    assert untimed == {"x": 3.0, "y": 2.0, "z": 1.0, "w": 1.0}
