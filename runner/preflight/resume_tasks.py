"""`run --resume` of a job that failed in one of its tasks: run again only what did
not succeed, the failed task and the tasks after it that were skipped or not run, as a subset
execute. Succeeded tasks are not run again.

That is safe only while the job's tasks in Celonis are the ones the failed run saw: the task
list saved with the failure is compared with the one Celonis has now. A change is refused
(UsageError, exit 2), or with --force the whole job runs. `--whole-jobs` runs whole jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import structlog

from runner.api.task_reader import TaskReader
from runner.errors import UsageError
from runner.manifest.task_subset import TaskSubset
from runner.plan.build import Plan, PlannedJob
from runner.runresult.records import SavedJob
from runner.shared_types import Tables
from runner.task_records import (
    DATA_MODEL_LOAD,
    EXTRACTION,
    TRANSFORMATION,
    TaskIds,
    TaskInfo,
)

log = structlog.get_logger(__name__)


def resume_failed_tasks(
    plan: Plan, saved_jobs: Mapping[str, SavedJob], reader: TaskReader, *, run_id: str, force: bool
) -> Plan:
    """The plan with each job that failed in a task, or whose last attempt of such a subset
    did not succeed, limited to the tasks it still needs."""
    jobs = dict(plan.jobs)
    for name, planned in plan.jobs.items():
        found = _still_needed(saved_jobs.get(name), planned)
        if found is None:
            continue
        before, again = found
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
        jobs[name] = _only_unfinished(planned, again, before)
        log.info("resume_only_unfinished_tasks", job=name, tasks=[t.name for t in again])
    return dataclasses.replace(plan, jobs=jobs)


def _still_needed(
    saved: SavedJob | None, planned: PlannedJob
) -> tuple[list[TaskInfo], list[TaskInfo]] | None:
    """(the task list saved with the job, the tasks it still needs), or None: as planned.

    A job that failed in a task needs the tasks that did not succeed. A job whose last attempt
    ran a subset and did not succeed (cancelled, timed out, unclear, interrupted, skipped, ...)
    needs that subset less the tasks its results show succeeded (issue 20 #7): a resume of a
    resume runs only what the job still needs, until the job succeeds."""
    if saved is None or saved.state == "succeeded" or not saved.task_list:
        return None
    before = [TaskInfo.from_dict(t) for t in saved.task_list]
    if _failed_in_a_task(saved):
        return before, _not_succeeded(saved)
    again = _subset_again(saved, before, planned)
    return None if again is None else (before, again)


def _subset_again(
    saved: SavedJob, before: Sequence[TaskInfo], planned: PlannedJob
) -> list[TaskInfo] | None:
    """The tasks of the subset the job last ran that it still needs, or None: as planned."""
    ran = saved.task_ids
    if not ran:
        return None
    known = {t.id.lower(): t for t in before}
    left = _left_of(ran, saved)
    if any(i not in known for i in left):
        return None  # a task the saved list does not know: the job as planned
    if _planned_anyway(planned, left):
        return None  # what the plan runs anyway (the manifest's own subset)
    return [known[i] for i in left]


def _not_succeeded(saved: SavedJob) -> list[TaskInfo]:
    return [TaskInfo(r.id, r.name, r.type or "") for r in saved.tasks or () if not r.succeeded]


def _left_of(ran: Sequence[str], saved: SavedJob) -> list[str]:
    """The ids (lower case) of the subset `ran` that did not succeed."""
    done = {r.id.lower() for r in saved.tasks or () if r.succeeded}
    # every task of the subset succeeded, yet the job did not: the whole subset again
    return [i.lower() for i in ran if i.lower() not in done] or [i.lower() for i in ran]


def _planned_anyway(planned: PlannedJob, left: Sequence[str]) -> bool:
    """Whether the tasks `left` are the subset the plan runs anyway."""
    if planned.task_ids is None:
        return False
    return set(left) == {i.lower() for i in planned.task_ids.task_ids()}


def _failed_in_a_task(saved: SavedJob) -> bool:
    if saved.state != "failed":
        return False
    return bool(saved.task_list) and any(t.status == "FAIL" for t in saved.tasks or ())


def _changes(before: Sequence[TaskInfo], now: Sequence[TaskInfo]) -> list[str]:
    """What differs between two task lists (ids, names, kinds, order, enabled)."""
    old = {t.id.lower(): t for t in before}
    new = {t.id.lower(): t for t in now}
    changes = [f"task '{old[i].name}' was removed" for i in old.keys() - new.keys()]
    changes += [f"task '{new[i].name}' was added" for i in new.keys() - old.keys()]
    changes += [c for key in old.keys() & new.keys() if (c := _changed(old[key], new[key]))]
    if not changes and _ids(before) != _ids(now):
        changes.append("the tasks run in another order")
    return sorted(changes)


def _ids(tasks: Sequence[TaskInfo]) -> list[str]:
    return [t.id.lower() for t in tasks]


def _changed(a: TaskInfo, b: TaskInfo) -> str | None:
    """How task `a` changed into `b` (same id), or None."""
    if (a.name, a.type) != (b.name, b.type):
        return f"task '{a.name}' is now {b.type.lower()} '{b.name}'"
    if a.disabled != b.disabled:
        return f"task '{a.name}' was {'disabled' if b.disabled else 'enabled'}"
    return None


def _only_unfinished(
    planned: PlannedJob, again: Sequence[TaskInfo], task_list: Sequence[TaskInfo]
) -> PlannedJob:
    """The planned job limited to the tasks `again` (taken from `task_list`, which the state
    file keeps with it); an extraction keeps the tables the failed run was limited to."""
    limited = dict(planned.task_ids.extractions or ()) if planned.task_ids is not None else {}
    by_kind = {kind: [t for t in again if t.type == kind] for kind in _KINDS}
    ids = _ids_of(by_kind, limited, again)
    names = _names_of(by_kind, limited)
    job = dataclasses.replace(planned.job, tasks=names)
    return dataclasses.replace(planned, job=job, task_ids=ids, resumed_task_list=tuple(task_list))


def _ids_of(
    by_kind: Mapping[str, list[TaskInfo]],
    limited: Mapping[str, Tables],
    again: Sequence[TaskInfo],
) -> TaskIds:
    return TaskIds(
        extractions=tuple((t.id, limited.get(t.id)) for t in by_kind[EXTRACTION]),
        transformations=tuple(t.id for t in by_kind[TRANSFORMATION]),
        data_models=tuple(t.id for t in by_kind[DATA_MODEL_LOAD]),
        names={t.id: t.name for t in again},
    )


def _names_of(by_kind: Mapping[str, list[TaskInfo]], limited: Mapping[str, Tables]) -> TaskSubset:
    return TaskSubset(
        extractions=tuple((t.name, limited.get(t.id)) for t in by_kind[EXTRACTION]),
        transformations=tuple(t.name for t in by_kind[TRANSFORMATION]),
        data_models=tuple(t.name for t in by_kind[DATA_MODEL_LOAD]),
    )


_KINDS = (EXTRACTION, TRANSFORMATION, DATA_MODEL_LOAD)
