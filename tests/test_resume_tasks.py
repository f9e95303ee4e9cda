"""A task-level resume of a resume (issue 20 #7), without a server: the subset a resumed job
still needs goes into the state file, and the next resume takes exactly that subset back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.execution.runstate import JobRun, JobState
from runner.execution.statefile import job_record
from runner.manifest.loader import load_manifest
from runner.plan.build import Plan, build_plan
from runner.preflight.resume_tasks import resume_failed_tasks
from runner.runresult.records import SavedJob
from runner.task_records import TaskInfo, TaskResult
from tests.e2e import Pipeline

TASKS = (
    TaskInfo("e1", "E1", "EXTRACTION"),
    TaskInfo("e2", "E2", "EXTRACTION"),
    TaskInfo("t1", "T1", "TRANSFORMATION"),
)


class Reader:
    """Celonis' task list of the job, unchanged since the saved run; counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    def tasks(self, pool_id: str, job_id: str) -> list[TaskInfo]:
        self.reads += 1
        return list(TASKS)


def plan_of(tmp_path: Path) -> Plan:
    manifest, _ = Pipeline(tmp_path).pool("sap").job("refresh", "sap").write()
    return build_plan(load_manifest(manifest, {}))


def record(state: str, results: dict[str, str], **more: Any) -> dict[str, Any]:
    """A saved job: its state, its tasks' results (id -> status) and the job's task list."""
    return {
        "state": state,
        "tasks": [
            TaskResult(t.id, t.name, results[t.id], type=t.type).to_dict()
            for t in TASKS
            if t.id in results
        ],
        "task_list": [t.to_dict() for t in TASKS],
        **more,
    }


def resumed(plan: Plan, saved: dict[str, Any]) -> list[str] | None:
    """The task ids the resume runs (None: the whole job)."""
    jobs = {"refresh": SavedJob.from_record(saved)}
    again = resume_failed_tasks(plan, jobs, Reader(), run_id="r", force=False)  # type: ignore[arg-type]
    ids = again.jobs["refresh"].task_ids
    return None if ids is None else ids.task_ids()


def test_a_resume_that_never_got_to_run_its_subset_saves_it_for_the_next(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    failed = record("failed", {"e1": "SUCCESS", "e2": "FAIL", "t1": "SKIPPED"})
    jobs = {"refresh": SavedJob.from_record(failed)}
    first = resume_failed_tasks(plan, jobs, Reader(), run_id="r", force=False)  # type: ignore[arg-type]
    assert first.jobs["refresh"].task_ids is not None
    assert first.jobs["refresh"].task_ids.task_ids() == ["e2", "t1"]
    # resume 1 is stopped before the job ends: no results, no task list read at its end
    for state in (JobState.NOT_STARTED, JobState.RUNNING, JobState.UNCLEAR, JobState.SKIPPED):
        job = JobRun(first.jobs["refresh"], state=state)
        saved = job_record(job)
        assert saved["task_ids"] == ["e2", "t1"]
        assert resumed(plan, saved) == ["e2", "t1"], state


def test_a_cancelled_subset_runs_again_without_the_tasks_it_finished_a_whole_job_whole(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    saved = record("cancelled", {"e2": "SUCCESS", "t1": "CANCEL"}, task_ids=["e2", "t1"])
    assert resumed(plan, saved) == ["t1"]
    timed_out = record("timed_out", {"e2": "CANCEL"}, task_ids=["e2", "t1"])
    assert resumed(plan, timed_out) == ["e2", "t1"]
    # as before: a whole job that was cancelled runs whole; a succeeded one not at all
    assert resumed(plan, record("cancelled", {"e1": "SUCCESS", "e2": "CANCEL"})) is None
    assert resumed(plan, record("succeeded", {"e2": "SUCCESS"}, task_ids=["e2"])) is None
