"""`run --resume` of a job that failed in one of its tasks (issue 12): run again only what did
not succeed, the failed task and the tasks after it that were skipped or not run, as a subset
execute. Succeeded tasks are not run again.

That is safe only while the job's tasks in Celonis are the ones the failed run saw: the task
list saved with the failure is compared with the one Celonis has now. A change is refused
(UsageError, exit 2), or with --force the whole job runs. `--whole-jobs` runs whole jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from runner.api.tasks import (
    DATA_MODEL_LOAD,
    EXTRACTION,
    TRANSFORMATION,
    TaskIds,
    TaskInfo,
    TaskReader,
    TaskResult,
)
from runner.errors import UsageError
from runner.manifest.subset import TaskSubset
from runner.plan.build import Plan, PlannedJob

log = structlog.get_logger(__name__)


def resume_failed_tasks(
    plan: Plan, saved_jobs: Mapping[str, Any], reader: TaskReader, *, run_id: str, force: bool
) -> Plan:
    """The plan with each failed job limited to the tasks that did not succeed."""
    jobs = dict(plan.jobs)
    for name, planned in plan.jobs.items():
        saved = saved_jobs.get(name)
        if saved is None or not _failed_in_a_task(saved):
            continue
        before = [TaskInfo.from_dict(t) for t in saved["task_list"]]
        now = reader.tasks(planned.job.pool_id, planned.job.job_id)
        changes = _changes(before, now)
        if changes and not force:
            raise UsageError(
                f"the tasks of job '{name}' changed in Celonis since run {run_id}: "
                + "; ".join(changes)
                + ". Resume with --whole-jobs to run whole jobs, or with --force (the job then "
                "runs whole)"
            )
        if changes:
            log.warning("resume_whole_job_tasks_changed", job=name, changes=changes)
            continue
        results = [TaskResult.from_dict(t) for t in saved["tasks"]]
        jobs[name] = _only_unfinished(planned, results)
        log.info(
            "resume_only_unfinished_tasks",
            job=name,
            tasks=[r.name for r in results if not r.succeeded],
        )
    return dataclasses.replace(plan, jobs=jobs)


def _failed_in_a_task(saved: Any) -> bool:
    if not isinstance(saved, dict) or saved.get("state") != "failed":
        return False
    tasks = saved.get("tasks") or []
    return bool(saved.get("task_list")) and any(t.get("status") == "FAIL" for t in tasks)


def _changes(before: Sequence[TaskInfo], now: Sequence[TaskInfo]) -> list[str]:
    """What differs between two task lists (ids, names, kinds, order, enabled)."""
    old = {t.id.lower(): t for t in before}
    new = {t.id.lower(): t for t in now}
    changes = [f"task '{old[i].name}' was removed" for i in old if i not in new]
    changes += [f"task '{new[i].name}' was added" for i in new if i not in old]
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        if (a.name, a.type) != (b.name, b.type):
            changes.append(f"task '{a.name}' is now {b.type.lower()} '{b.name}'")
        elif a.disabled != b.disabled:
            changes.append(f"task '{a.name}' was {'disabled' if b.disabled else 'enabled'}")
    if not changes and [t.id.lower() for t in before] != [t.id.lower() for t in now]:
        changes.append("the tasks run in another order")
    return sorted(changes)


def _only_unfinished(planned: PlannedJob, results: Sequence[TaskResult]) -> PlannedJob:
    """The planned job limited to the tasks of `results` that did not succeed; an extraction
    keeps the tables the failed run was limited to."""
    again = [r for r in results if not r.succeeded]
    limited = dict(planned.task_ids.extractions or ()) if planned.task_ids is not None else {}
    by_kind = {kind: [r for r in again if r.type == kind] for kind in _KINDS}
    ids = TaskIds(
        extractions=tuple((r.id, limited.get(r.id)) for r in by_kind[EXTRACTION]),
        transformations=tuple(r.id for r in by_kind[TRANSFORMATION]),
        data_models=tuple(r.id for r in by_kind[DATA_MODEL_LOAD]),
        names={r.id: r.name for r in again},
    )
    names = TaskSubset(
        extractions=tuple((r.name, limited.get(r.id)) for r in by_kind[EXTRACTION]),
        transformations=tuple(r.name for r in by_kind[TRANSFORMATION]),
        data_models=tuple(r.name for r in by_kind[DATA_MODEL_LOAD]),
    )
    job = dataclasses.replace(planned.job, tasks=names)
    return dataclasses.replace(planned, job=job, task_ids=ids)


_KINDS = (EXTRACTION, TRANSFORMATION, DATA_MODEL_LOAD)
