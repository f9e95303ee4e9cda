"""Pools and jobs given by `celonis_name`, looked up from Airflow: once per DAG run, in a task.

`dag_from_manifest` (and `CelonisTaskGroup`) add the task `celonis_names` upstream of every
job task when the manifest names a pool or job without its id. It looks the names up with
runner.preflight.names (one pool list, one job list per pool that holds a job given by name:
never a request per job) in the team of the chosen environment, and returns the ids as its
XCom, `{"jobs.NAME": [pool id, job id]}`; each job task reads its ids from there.

Why an XCom of one task: it belongs to the DAG run (a new run looks the names up again, so a
pool moved between teams is followed), it is in the metadata DB (Airflow 3 runs each task in
a process of its own, so a module-level cache would be looked up again by every task), a retry
of a job task reads the same ids as its first try, and nothing is left behind to clean up (as
a Variable keyed by the run would be). A name that matches nothing, or several, fails this task
with `file:line:col: path: message` lines and did-you-mean; no job task runs then (as `run`
sends no execute while a name is unresolved). `resolve_at_parse=True` looks them up when the
DAG file is parsed instead (every parse costs the requests; a problem is an import error).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from runner.airflow.credentials import ApiSettings
from runner.airflow.operators import DEFAULT_RETRIES, connect
from runner.errors import RunnerError
from runner.manifest.model import Manifest
from runner.preflight.names import Resolution, resolve_names
from runner.preflight.remote import ReadApi
from runner.problems import Problem

NAMES_TASK_ID = "celonis_names"


class NamesUnresolved(RunnerError):
    """Some names found no single id; the message holds the problems, one a line."""


def needs_lookup(manifest: Manifest) -> bool:
    """Whether a job of `manifest` lacks its pool's id or its own."""
    return any(not (job.pool_id and job.job_id) for job in manifest.jobs.values())


def look_up(api: ReadApi, manifest: Manifest) -> Resolution:
    """The manifest's names looked up; NamesUnresolved with the problems' lines when any failed."""
    resolution = resolve_names(api, manifest)
    if resolution.errors:
        raise NamesUnresolved(
            f"{resolution.summary()}; no job was started:\n{problem_lines(resolution.problems)}"
        )
    return resolution


def problem_lines(problems: Sequence[Problem]) -> str:
    """As `validate` prints them: `file:line:col: path: message`, one a line."""
    return "\n".join(p.render() for p in problems)


def job_ids(manifest: Manifest) -> dict[str, list[str]]:
    """The XCom value: `jobs.NAME` -> [pool id, job id]."""
    return {f"jobs.{name}": [job.pool_id, job.job_id] for name, job in manifest.jobs.items()}


class CelonisNamesOperator(BaseOperator):
    """Look up the manifest's Celonis names once for this DAG run; the ids are its XCom."""

    ui_color = "#f0f6e8"

    def __init__(
        self,
        *,
        manifest: Manifest,
        settings: ApiSettings,
        environ: Mapping[str, str] | None = None,
        retries: int = DEFAULT_RETRIES,
        **kwargs: Any,
    ) -> None:
        super().__init__(retries=retries, **kwargs)
        self.manifest = manifest
        self.api_settings = settings
        self._environ = environ

    def execute(self, context: Context) -> dict[str, list[str]]:
        environ = os.environ if self._environ is None else self._environ
        try:
            resolution = look_up(connect(self.api_settings, environ), self.manifest)
        except NamesUnresolved as error:
            self.log.error("%s", error)  # the task log shows each name's file:line:col
            raise AirflowFailException(str(error)) from None  # a retry would find the same
        except RunnerError as error:  # an ApiError too: a retry may get through
            raise AirflowException(f"the Celonis names could not be looked up: {error}") from None
        self.log.info(
            "Celonis names looked up%s with %d requests: %s",
            f" in environment {self.manifest.environment!r}" if self.manifest.environment else "",
            resolution.requests,
            dict(resolution.manifest.resolved),
        )
        return job_ids(resolution.manifest)
