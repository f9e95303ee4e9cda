"""A manifest as Airflow tasks: `dag_from_manifest` (a whole DAG) and `CelonisTaskGroup` (a group
inside your own DAG).

One `CelonisJobOperator` per planned job, `task_id` = the job's name, edges from
`depends_on`; the plan comes from `build_plan`, so `select`/`exclude` take the
CLI's grammar. `environment` picks an entry of the manifest's `environments:` (Airflow
connection `celonis_<environment>`); jobs given by `celonis_name` get their ids from the task
`celonis_names`, once per DAG run (runner.airflow.names). A manifest problem raises `CelonisManifestError` at parse time
with the lines `validate` prints, so they show among Airflow's import errors.

`allow_failure`: the job's task fails (and stays red) but a gate task
`<job>__failure_allowed` (trigger rule one_done) passes once it ran, so its
dependents run; if the job never ran (its own dependency failed), the gate
is skipped and so are they.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, Context, TaskGroup, TriggerRule

from runner.airflow.credentials import DEFAULT_CONN_ID, ApiSettings
from runner.airflow.names import (
    NAMES_TASK_ID,
    CelonisNamesOperator,
    look_up,
    needs_lookup,
    problem_lines,
)
from runner.airflow.operators import CelonisJobOperator, connect
from runner.airflow.pools import pool_name
from runner.errors import RunnerError, UsageError
from runner.manifest.loader import check_manifest
from runner.manifest.model import Manifest
from runner.plan.build import Plan, build_plan
from runner.problems import Problem

FAILURE_ALLOWED_SUFFIX = "__failure_allowed"
_TASK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_TASK_ID_MAX = 200


class CelonisManifestError(ValueError):
    """The manifest cannot become tasks; the message holds one `file:line:col: path: message` a line."""


class FailureAllowed(BaseOperator):
    """Passes once the upstream job ran, failed or not: its dependents run after an allowed failure."""

    ui_color = "#f4f4f4"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trigger_rule=TriggerRule.ONE_DONE, **kwargs)

    def execute(self, context: Context) -> None:
        self.log.info("the upstream job ran (allow_failure: its outcome does not stop dependents)")


def load_plan(
    manifest: str | os.PathLike[str],
    *,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_parallel: int | None = None,
    environ: Mapping[str, str] | None = None,
    environment: str | None = None,
    resolve_at_parse: bool = False,
    conn_id: str | None = DEFAULT_CONN_ID,
) -> Plan:
    """Check the manifest as `run` does (in `environment`, whose connection and defaults it
    takes) and plan it; CelonisManifestError with validate's lines. Jobs given by name keep
    empty ids (looked up in each DAG run) unless `resolve_at_parse`: then they are looked up
    now, through `conn_id` (as `add_jobs` picks it)."""
    shown = os.fspath(manifest)
    env = os.environ if environ is None else environ
    result = check_manifest(
        Path(shown), env, strict_env=True, display=shown, environment=environment
    )
    if result.manifest is None:
        raise CelonisManifestError(problem_lines(result.problems))
    model = result.manifest
    if resolve_at_parse and needs_lookup(model):
        model = _resolved_now(model, conn_id, env)
    try:
        plan = build_plan(model, select=select, exclude=exclude, max_parallel=max_parallel)
    except UsageError as error:
        raise CelonisManifestError(f"{shown}: {error}") from None
    _check_task_ids(shown, plan)
    return plan


def _check_task_ids(shown: str, plan: Plan) -> None:
    bad = [
        Problem(shown, p.job.line, 1, f"jobs.{name}", _TASK_ID_RULE)
        for name, p in plan.jobs.items()
        if not _valid_task_id(name)
    ]
    if bad:
        raise CelonisManifestError(problem_lines(bad))


def _resolved_now(model: Manifest, conn_id: str | None, environ: Mapping[str, str]) -> Manifest:
    """`resolve_at_parse=True`: the names looked up while the DAG file is parsed."""
    try:
        api = connect(ApiSettings.from_manifest(model, conn_id), environ)
        return look_up(api, model).manifest
    except RunnerError as error:
        raise CelonisManifestError(str(error)) from None


_TASK_ID_RULE = (
    "this job name cannot be an Airflow task_id: use letters, digits, '_', '.' and '-'"
    f" (at most {_TASK_ID_MAX} characters)"
)


def _valid_task_id(name: str) -> bool:
    return 0 < len(name) <= _TASK_ID_MAX and set(name) <= _TASK_ID_CHARS


def add_jobs(
    plan: Plan,
    *,
    conn_id: str | None = DEFAULT_CONN_ID,
    deferrable: bool = True,
    use_pools: bool = True,
    operator_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, CelonisJobOperator]:
    """One task per planned job in the current DAG or task group, linked by `depends_on`."""
    settings = ApiSettings.from_manifest(plan.manifest, conn_id)
    names = _names_task(plan, settings, operator_kwargs)
    tasks: dict[str, CelonisJobOperator] = {}
    gates: dict[str, BaseOperator] = {}
    for name, planned in plan.jobs.items():  # dependency order: upstream tasks exist already
        job = planned.job
        extra: dict[str, Any] = dict(operator_kwargs or {})
        if names is not None:
            extra["names_task_id"] = names.task_id
        if use_pools and plan.pool_limits.get(job.pool):
            extra["pool"] = pool_name(job.pool)
        task = CelonisJobOperator(
            task_id=name,
            pool_id=job.pool_id,
            job_id=job.job_id,
            mode=job.mode,
            settings=settings,
            job_name=name,
            timeout=job.timeout,
            poll_interval=job.poll_interval,
            max_poll_interval=job.max_poll_interval,
            settle_window=job.settle_window,
            deferrable=deferrable,
            **extra,
        )
        for dependency in planned.depends_on:
            task.set_upstream(gates.get(dependency) or tasks[dependency])
        if names is not None:
            task.set_upstream(names)
        tasks[name] = task
        if job.allow_failure:
            gate = FailureAllowed(task_id=f"{name}{FAILURE_ALLOWED_SUFFIX}")
            gate.set_upstream(task)
            gates[name] = gate
    return tasks


def _names_task(
    plan: Plan, settings: ApiSettings, operator_kwargs: Mapping[str, Any] | None
) -> CelonisNamesOperator | None:
    """The task that looks up the plan's names in each DAG run (None when every id is given)."""
    if not needs_lookup(plan.manifest):
        return None
    kwargs = {k: v for k, v in (operator_kwargs or {}).items() if k in _NAMES_TASK_KWARGS}
    return CelonisNamesOperator(
        task_id=NAMES_TASK_ID, manifest=plan.manifest, settings=settings, **kwargs
    )


_NAMES_TASK_KWARGS = frozenset({"retries", "retry_delay", "execution_timeout", "environ"})
"""The `operator_kwargs` that apply to the names task too."""


def dag_from_manifest(
    manifest: str | os.PathLike[str],
    *,
    dag_id: str,
    schedule: Any = None,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_parallel: int | None = None,
    conn_id: str | None = DEFAULT_CONN_ID,
    deferrable: bool = True,
    use_pools: bool = True,
    environ: Mapping[str, str] | None = None,
    operator_kwargs: Mapping[str, Any] | None = None,
    environment: str | None = None,
    resolve_at_parse: bool = False,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG running the manifest's jobs (or the selected ones).

    `max_parallel` becomes the DAG's `max_active_tasks` (it counts running, not
    deferred, tasks); `operator_kwargs` go to every task (retries, ...);
    other keyword arguments go to `DAG`. `max_active_runs` defaults to 1: two
    runs of one manifest at once would run every job twice, and the second
    run's tasks would wait for the first's executions.

    `environment`: the entry of the manifest's `environments:` to run in (its connection and
    defaults); its Airflow connection is `celonis_<environment>` unless `conn_id` names
    another. Pools and jobs given by `celonis_name` are looked up once per DAG run by the task
    `celonis_names` (runner.airflow.names), or while parsing with `resolve_at_parse=True`.
    """
    plan = load_plan(
        manifest,
        select=select,
        exclude=exclude,
        max_parallel=max_parallel,
        environ=environ,
        environment=environment,
        resolve_at_parse=resolve_at_parse,
        conn_id=conn_id,
    )
    if max_parallel is not None:
        dag_kwargs.setdefault("max_active_tasks", max_parallel)
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault("description", f"Celonis data jobs of {os.fspath(manifest)}")
    with DAG(dag_id, schedule=schedule, **dag_kwargs) as dag:
        add_jobs(
            plan,
            conn_id=conn_id,
            deferrable=deferrable,
            use_pools=use_pools,
            operator_kwargs=operator_kwargs,
        )
    return dag


def CelonisTaskGroup(
    *,
    manifest: str | os.PathLike[str],
    group_id: str,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    conn_id: str | None = DEFAULT_CONN_ID,
    deferrable: bool = True,
    use_pools: bool = True,
    environ: Mapping[str, str] | None = None,
    operator_kwargs: Mapping[str, Any] | None = None,
    environment: str | None = None,
    resolve_at_parse: bool = False,
    **group_kwargs: Any,
) -> TaskGroup:
    """A task group of the manifest's jobs, for use inside your own DAG (`a >> group >> b`);
    `environment` and `resolve_at_parse` as for `dag_from_manifest`."""
    plan = load_plan(
        manifest,
        select=select,
        exclude=exclude,
        environ=environ,
        environment=environment,
        resolve_at_parse=resolve_at_parse,
        conn_id=conn_id,
    )
    group_kwargs.setdefault("tooltip", f"Celonis data jobs of {os.fspath(manifest)}")
    with TaskGroup(group_id=group_id, **group_kwargs) as group:
        add_jobs(
            plan,
            conn_id=conn_id,
            deferrable=deferrable,
            use_pools=use_pools,
            operator_kwargs=operator_kwargs,
        )
    return group
