"""The Celonis jobs of jobs.yaml (beside this file), every night at 02:00 UTC.

Credentials: the Airflow connection celonis_default (type celonis).
Pools: run `python -m runner.airflow.pools jobs.yaml --create` once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from runner.airflow import dag_from_manifest

dag = dag_from_manifest(
    Path(__file__).parent / "jobs.yaml",
    dag_id="celonis_nightly",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_parallel=4,
)
