"""Run a manifest on Apache Airflow 3 (`pip install 'celonis-runner[airflow]'`).

    from runner.airflow import dag_from_manifest, CelonisTaskGroup, CelonisJobOperator

Names are imported on first use, so that Airflow's provider discovery
(`runner.airflow.provider`) does not load the operators, and nothing of
Airflow is imported unless one of these names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.airflow.dag import CelonisManifestError, CelonisTaskGroup, dag_from_manifest
    from runner.airflow.hooks import CelonisHook
    from runner.airflow.operators import CelonisJobOperator
    from runner.airflow.pools import create_pools, pool_commands
    from runner.airflow.triggers import CelonisJobTrigger

_WHERE = {
    "CelonisHook": "runner.airflow.hooks",
    "CelonisJobOperator": "runner.airflow.operators",
    "CelonisJobTrigger": "runner.airflow.triggers",
    "CelonisManifestError": "runner.airflow.dag",
    "CelonisTaskGroup": "runner.airflow.dag",
    "create_pools": "runner.airflow.pools",
    "dag_from_manifest": "runner.airflow.dag",
    "pool_commands": "runner.airflow.pools",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CelonisHook",
    "CelonisJobOperator",
    "CelonisJobTrigger",
    "CelonisManifestError",
    "CelonisTaskGroup",
    "create_pools",
    "dag_from_manifest",
    "pool_commands",
]
