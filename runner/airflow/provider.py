"""Airflow's provider entry point: registers the `celonis` connection type (no Airflow import)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE = "celonis-runner"


def get_provider_info() -> dict[str, Any]:
    """What `apache_airflow_provider` entry points return (Airflow's provider_info schema)."""
    try:
        versions = [version(PACKAGE)]
    except PackageNotFoundError:  # running from a source tree that was not installed
        versions = []
    return {
        "package-name": PACKAGE,
        "name": "Celonis",
        "description": "Run Celonis data jobs from a jobs.yaml manifest: operator, trigger, DAG builder.",
        "versions": versions,
        "connection-types": [
            {"hook-class-name": "runner.airflow.hooks.CelonisHook", "connection-type": "celonis"}
        ],
        "hooks": [{"integration-name": "Celonis", "python-modules": ["runner.airflow.hooks"]}],
        "operators": [
            {"integration-name": "Celonis", "python-modules": ["runner.airflow.operators"]}
        ],
        "triggers": [
            {"integration-name": "Celonis", "python-modules": ["runner.airflow.triggers"]}
        ],
    }
