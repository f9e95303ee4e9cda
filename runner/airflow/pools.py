"""Airflow pools for the manifest pools that have `max_parallel`: their names, and a helper that
creates them or prints the `airflow pools set` commands.

    python -m runner.airflow.pools jobs.yaml            # print the commands
    python -m runner.airflow.pools jobs.yaml --create   # create or update them (needs the metadata DB)

The pools count deferred tasks (`include_deferred`), so a limit holds while
the tasks wait in the triggerer.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping, Sequence

from runner.plan.build import Plan

POOL_PREFIX = "celonis_"


def pool_name(manifest_pool: str) -> str:
    """The Airflow pool of a manifest pool (shared by every DAG that runs jobs of that pool)."""
    return f"{POOL_PREFIX}{manifest_pool}"


def pool_slots(plan: Plan) -> dict[str, int]:
    """Airflow pool name -> slots, for the plan's pools that have a limit."""
    return {pool_name(p): limit for p, limit in plan.pool_limits.items() if limit}


def _description(plan: Plan, name: str) -> str:
    return f"Celonis data pool {name[len(POOL_PREFIX) :]} (max_parallel in {plan.manifest.path})"


def pool_commands(plan: Plan) -> list[str]:
    """`airflow pools set NAME SLOTS DESCRIPTION --include-deferred` for each limited pool."""
    return [
        f"airflow pools set {shlex.quote(name)} {slots}"
        f" {shlex.quote(_description(plan, name))} --include-deferred"
        for name, slots in pool_slots(plan).items()
    ]


def create_pools(plan: Plan) -> Mapping[str, int]:
    """Create or update the pools in Airflow's metadata DB; returns what was set."""
    from airflow.models.pool import Pool

    slots = pool_slots(plan)
    for name, count in slots.items():
        Pool.create_or_update_pool(name, count, _description(plan, name), include_deferred=True)
    return slots


def main(argv: Sequence[str] | None = None) -> int:
    from runner.airflow.dag import CelonisManifestError, load_plan

    parser = argparse.ArgumentParser(
        prog="python -m runner.airflow.pools",
        description="The Airflow pools that hold each manifest pool's max_parallel.",
    )
    parser.add_argument("manifest")
    parser.add_argument("--create", action="store_true", help="create or update them in Airflow")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.manifest)
    except CelonisManifestError as error:
        print(error, file=sys.stderr)
        return 2
    if args.create:
        for name, count in create_pools(plan).items():
            print(f"pool {name}: {count} slot(s)")
        return 0
    for command in pool_commands(plan):
        print(command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
