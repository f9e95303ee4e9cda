"""The run's state file: every job's state, written atomically on every change, read back to resume.

Default place: `.celonis-runner/runs/<run id>.json` (`--state-dir` or
`$CELONIS_RUNNER_STATE_DIR` move it). It records each job, with the
execution markers of a running one so that `run --resume` takes it up
instead of triggering it again, and a fingerprint of what matters in the
manifest so that a resume after such a change is refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.api.client import ExecutionHandle, JobStatus
from runner.clock import Clock
from runner.errors import UsageError
from runner.execution.runstate import ResumeFrom, RunState
from runner.execution.stateread import SavedRun, load_saved
from runner.files import write_json_atomic
from runner.plan.build import Plan

__all__ = ["SavedRun", "StateStore", "find_state", "load_saved", "manifest_changes", "resume_from"]

STATE_VERSION = 1
DEFAULT_STATE_DIR = ".celonis-runner/runs"
STATE_DIR_ENV = "CELONIS_RUNNER_STATE_DIR"
MIN_WRITE_INTERVAL = 0.25
"""Clock seconds between two unforced writes (a forced write, before an execute, is never delayed)."""


def state_dir(option: str | None, environ: Mapping[str, str]) -> Path:
    return Path(option or environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def fingerprint(plan: Plan) -> dict[str, dict[str, Any]]:
    """What a resume must not change: each job's Celonis ids, mode and dependencies."""
    return {
        name: {
            "pool_id": job.pool_id,
            "job_id": job.job_id,
            "mode": job.mode,
            "depends_on": sorted(job.depends_on),
        }
        for name, job in plan.manifest.jobs.items()
    }


def _handle_to_dict(handle: ExecutionHandle) -> dict[str, Any]:
    before = handle.before
    return {
        "mode": handle.mode,
        "attempts": handle.attempts,
        "compared": sorted(handle.compared),
        "before": {
            "status": before.status,
            "current_execution_id": before.current_execution_id,
            "latest_execution_item_id": before.latest_execution_item_id,
            "last_execution_start": before.last_execution_start,
        },
    }


def state_to_dict(
    state: RunState, *, select: Sequence[str], exclude: Sequence[str]
) -> dict[str, Any]:
    return {
        "state_version": STATE_VERSION,
        "run_id": state.run_id,
        "status": state.status or "running",
        "started_at": state.started_at,
        "updated_at": time.time(),
        "manifest": {"path": state.plan.manifest.path, "sha256": state.plan.manifest.sha256},
        "selection": {"select": list(select), "exclude": list(exclude)},
        "fingerprint": fingerprint(state.plan),
        "jobs": {
            name: {
                "state": job.state,
                "pool_id": job.planned.job.pool_id,
                "job_id": job.planned.job.job_id,
                "attempts": job.attempts,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
                "intent_at": job.intent_at,
                "error": job.error,
                "handle": _handle_to_dict(job.handle)
                if job.handle and job.state == "running"
                else None,
            }
            for name, job in state.jobs.items()
        },
    }


class StateStore:
    """The executor's checkpoint: writes the state file, at most every MIN_WRITE_INTERVAL unless forced.

    A deferred write is not lost: the store says when to call again, and the
    executor does so before it sleeps, so the file is at most MIN_WRITE_INTERVAL
    behind the run, and always up to date before an execute request goes out.
    """

    def __init__(
        self, path: Path, *, select: Sequence[str], exclude: Sequence[str], clock: Clock
    ) -> None:
        self.path = path
        self.select = list(select)
        self.exclude = list(exclude)
        self.clock = clock
        self._last: float | None = None
        self.writes = 0

    def __call__(self, state: RunState, force: bool) -> float | None:
        now = self.clock.monotonic()
        if not force and self._last is not None and now - self._last < MIN_WRITE_INTERVAL:
            return self._last + MIN_WRITE_INTERVAL - now
        write_json_atomic(self.path, state_to_dict(state, select=self.select, exclude=self.exclude))
        self._last = now
        self.writes += 1
        return None


def find_state(directory: Path, run_id: str) -> Path:
    if run_id == "latest":
        files = (
            sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
            if directory.is_dir()
            else []
        )
        if not files:
            raise UsageError(
                f"no earlier run to resume in {directory} (runs are saved there by `run`)"
            )
        return files[-1]
    if not run_id.replace("-", "").replace("T", "").replace("Z", "").isalnum():
        raise UsageError(f"not a run id: {run_id!r}")
    path = directory / f"{run_id}.json"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
        hint = f"; saved runs: {', '.join(known[-5:])}" if known else ""
        raise UsageError(f"no saved run {run_id!r} in {directory}{hint}")
    return path


def manifest_changes(saved: SavedRun, plan: Plan) -> list[str]:
    """What changed, in the manifest, that a resume depends on."""
    before: dict[str, Any] = saved.data["fingerprint"]
    now = fingerprint(plan)
    changes = []
    for name in sorted(set(before) | set(now)):
        if name not in now:
            changes.append(f"job '{name}' was removed")
        elif name not in before:
            changes.append(f"job '{name}' was added")
        else:
            for key in ("pool_id", "job_id", "mode", "depends_on"):
                if before[name].get(key) != now[name][key]:
                    changes.append(
                        f"job '{name}': {key} changed from {before[name].get(key)!r} to {now[name][key]!r}"
                    )
    return changes


def resume_from(saved: SavedRun, plan: Plan) -> ResumeFrom:
    jobs: dict[str, Any] = saved.data["jobs"]
    succeeded = frozenset(
        n for n, j in jobs.items() if j["state"] == "succeeded" and n in plan.jobs
    )
    running: dict[str, ExecutionHandle] = {}
    uncertain: dict[str, float] = {}
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    for name, job in jobs.items():
        if name not in plan.jobs:
            continue
        spec = plan.jobs[name].job
        if isinstance(job.get("started_at"), int | float):
            started[name] = float(job["started_at"])
        if job["state"] == "succeeded" and isinstance(job.get("finished_at"), int | float):
            finished[name] = float(job["finished_at"])
        if job["state"] == "running":
            handle = job["handle"]
            before = handle["before"]
            running[name] = ExecutionHandle(
                pool_id=spec.pool_id,
                job_id=spec.job_id,
                mode=spec.mode,
                before=JobStatus(
                    job_id=spec.job_id,
                    status=before.get("status"),
                    current_execution_id=before.get("current_execution_id"),
                    latest_execution_item_id=before.get("latest_execution_item_id"),
                    last_execution_start=before.get("last_execution_start"),
                ),
                triggered_at=0.0,
                attempts=int(handle.get("attempts", 1)),
                compared=frozenset(handle.get("compared", [])),
            )
        elif job["state"] == "starting":
            uncertain[name] = float(job["intent_at"])
    return ResumeFrom(
        succeeded=succeeded,
        running=running,
        uncertain=uncertain,
        started_at=started,
        finished_at=finished,
    )
