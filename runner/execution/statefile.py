"""The run's state file: every job's state, kept up to date during the run, read back to resume.

Default place: `.celonis-runner/runs/<run id>.json`, the snapshot, and
`<run id>.jsonl` beside it, the journal of changes since (`--state-dir` or
`$CELONIS_RUNNER_STATE_DIR` move them). It records each job, with the
execution markers of a running one so that `run --resume` takes it up
instead of triggering it again, and a fingerprint of what matters in the
manifest so that a resume after such a change is refused.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.api.types import ExecutionHandle, JobStatus
from runner.clock import Clock
from runner.errors import UsageError
from runner.execution.runstate import JobRun, JobState, ResumeFrom, RunState
from runner.execution.statejournal import JournalFile
from runner.files import write_text_atomic
from runner.logs import Redactor
from runner.plan.build import Plan
from runner.runresult.read import (  # state_dir lives there: `plan` reads no HTTP stack
    DEFAULT_STATE_DIR,
    STATE_DIR_ENV,
    journal_path,
    load_saved,
    state_dir,
)
from runner.runresult.records import SavedJob, SavedRun
from runner.shared_types import Mode

__all__ = [
    "DEFAULT_STATE_DIR",
    "STATE_DIR_ENV",
    "SavedRun",
    "StateStore",
    "find_state",
    "load_saved",
    "manifest_changes",
    "resume_from",
    "state_dir",
]

STATE_VERSION = 2
"""2: a snapshot plus a journal (version 1 files, a snapshot only, are still read)."""
MIN_WRITE_INTERVAL = 0.25
"""Real seconds between two unforced writes (a forced write, before an execute, is never delayed).
Real, not the run's clock: a scaled clock would turn cheaper writes into more writes."""
COMPACT_MIN_BYTES = 256 * 1024
"""The journal is compacted into the snapshot once it is this long and longer than the snapshot,
so that compactions cost at most as much as the journal lines did: linear in what changed."""


def plan_record(plan: Plan) -> dict[str, Any]:
    """What reports show of the plan (pool names, waves, dependencies, allow_failure, the
    manifest line, the subset), so that `report` of the saved run shows what the run did
    (runner.runresult.records reads it)."""
    return {
        "pools": plan.pools(),
        "jobs": {
            name: {
                "pool": planned.job.pool,
                "wave": planned.wave,
                "depends_on": list(planned.depends_on),
                "allow_failure": planned.job.allow_failure,
                "line": planned.job.line or None,
                "subset": planned.job.tasks.to_dict() if planned.job.tasks is not None else None,
            }
            for name, planned in plan.jobs.items()
        },
    }


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


_OURS = frozenset({JobState.RUNNING, JobState.STARTING, JobState.UNCLEAR})
"""States in which the job's handle is this run's claim (a waiting job's is someone else's)."""


def job_record(job: JobRun) -> dict[str, Any]:
    """One job as the state file keeps it."""
    handle = job.handle
    return {
        "state": job.state,
        "pool_id": job.planned.job.pool_id,
        "job_id": job.planned.job.job_id,
        "attempts": job.attempts,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "intent_at": job.intent_at,
        "sent_at": handle.sent_at if handle is not None else None,
        "error": job.error,
        "handle": handle.to_dict() if handle is not None and job.state in _OURS else None,
        **({"cancel_requested": True} if job.cancel_reason and job.state in _OURS else {}),
        **task_record(job),
    }


def task_record(job: JobRun) -> dict[str, Any]:
    """The subset the job ran with and its tasks' results: only when there are any,
    so that a state file of whole jobs stays as it was."""
    out: dict[str, Any] = {}
    if job.planned.task_ids is not None:
        out["task_ids"] = job.planned.task_ids.task_ids()
    if job.tasks is not None:
        out["tasks"] = [task.to_dict() for task in job.tasks]
    # a resume's subset keeps the task list it was taken from until the job ends (issue 20 #7)
    task_list = job.task_list if job.task_list is not None else job.planned.resumed_task_list
    if task_list is not None:
        out["task_list"] = [task.to_dict() for task in task_list]
    return out


def _written_key(job: JobRun) -> tuple[Any, ...]:
    """What job_record depends on, cheap to compare: a job is written again when this changes."""
    return (
        job.state,
        job.attempts,
        job.error,
        job.handle,
        job.intent_at,
        job.cancel_reason,
        job.started_at,
        job.finished_at,
        job.tasks,
    )


class StateStore:
    """The executor's checkpoint: a snapshot (`<run id>.json`) and a journal (`<run id>.jsonl`).

    Each write appends one JSON line per job that changed since the last
    write, so it costs what changed; a forced write (before an execute goes
    out) is fsync'd. Now and then, and at the end of the run, the journal is
    compacted: the whole state is written atomically as a new snapshot with a
    new generation, then the journal starts again. Journal lines count only
    with the snapshot of their generation, so a SIGKILL at any moment (during
    a compaction, or tearing the last line) leaves the last snapshot plus the
    lines written since, which `load_saved` reads.

    Unforced writes come at most every MIN_WRITE_INTERVAL real seconds
    (`timer`); a deferred write is not lost: the store says in how many clock
    seconds (`clock_rate` clock seconds per real second) to call again, and
    the executor does so before it sleeps. Every text is scrubbed with the
    redactor before it is written.
    """

    def __init__(
        self,
        path: Path,
        *,
        select: Sequence[str],
        exclude: Sequence[str],
        clock: Clock,
        redactor: Redactor | None = None,
        target: str | None = None,
        timer: Callable[[], float] = time.monotonic,
        clock_rate: float = 1.0,
        tasks: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.select = list(select)
        self.exclude = list(exclude)
        self.tasks = list(tasks)
        """The run's --tasks options: a resume runs the same subsets."""
        self.clock = clock
        self.redactor = redactor or Redactor()
        self.target = target
        self.timer = timer
        self.clock_rate = clock_rate
        self.journal = JournalFile(journal_path(path))
        self._last: float | None = None
        self._generation: str | None = None
        self._written: dict[str, tuple[Any, ...]] = {}
        self._noted: set[str] | None = None
        self._fingerprint: dict[str, dict[str, Any]] | None = None
        self._plan: dict[str, Any] | None = None
        self._snapshot_size = 0
        self.writes = 0
        self.compactions = 0
        self.snapshot_bytes = 0

    @property
    def bytes_written(self) -> int:
        """Bytes written to the snapshot and the journal so far."""
        return self.snapshot_bytes + self.journal.bytes_written

    def note(self, state: RunState, job: JobRun) -> None:
        """A run listener: once the executor tells the store which jobs changed, a write looks
        at those only (else at every job), so that it costs what changed, not the run's size.
        A change made without an event still reaches the file at the next compaction."""
        if self._noted is None:
            self._noted = set()
        self._noted.add(job.name)

    def __call__(self, state: RunState, force: bool) -> float | None:
        now = self.timer()
        if not force and self._last is not None and now - self._last < MIN_WRITE_INTERVAL:
            return (self._last + MIN_WRITE_INTERVAL - now) * self.clock_rate
        if self._due_for_compaction(state):
            self._compact(state)
        else:
            self._append_changes(state, sync=force)
        self._last = now
        self.writes += 1
        return None

    def _due_for_compaction(self, state: RunState) -> bool:
        if self._generation is None or state.status is not None:  # the first write, the last
            return True
        return self.journal.size >= max(COMPACT_MIN_BYTES, self._snapshot_size)

    def _append_changes(self, state: RunState, *, sync: bool) -> None:
        lines = []
        names = list(state.jobs) if self._noted is None else sorted(self._noted)
        if self._noted is not None:
            self._noted.clear()
        for name in names:
            job = state.jobs[name]
            key = _written_key(job)
            if self._written.get(name) != key:
                self._written[name] = key
                record = {"g": self._generation, "job": name, "data": job_record(job)}
                lines.append(self._line(record))
        if lines:
            self.journal.append("".join(lines).encode("utf-8"))
        if sync:
            self.journal.sync()

    def _compact(self, state: RunState) -> None:
        generation = secrets.token_hex(8)
        text = self._line(self._snapshot(state, generation))
        write_text_atomic(self.path, text)
        # Only now do the journal's lines belong to an older generation, and are ignored.
        self._generation = generation
        self._snapshot_size = len(text)
        self.snapshot_bytes += len(text.encode("utf-8"))
        self.compactions += 1
        self._written = {name: _written_key(job) for name, job in state.jobs.items()}
        if self._noted is not None:
            self._noted.clear()
        if state.status is None:
            self.journal.reset()
        else:
            self.journal.remove()

    def _snapshot(self, state: RunState, generation: str) -> dict[str, Any]:
        if self._fingerprint is None or self._plan is None:  # the plan does not change in a run
            self._fingerprint = fingerprint(state.plan)
            self._plan = plan_record(state.plan)
        manifest = state.plan.manifest
        return {
            "state_version": STATE_VERSION,
            "generation": generation,
            "run_id": state.run_id,
            "status": state.status or "running",
            "started_at": state.started_at,
            "updated_at": self.clock.time(),
            "finished_at": state.finished_at,
            "error": state.error,
            "target": self.target,
            **_names_record(state.plan),
            "manifest": {
                "path": manifest.path,
                "sha256": manifest.sha256,
                "resolved": str(Path(manifest.path).resolve()),
            },
            "selection": {
                "select": self.select,
                "exclude": self.exclude,
                **({"tasks": self.tasks} if self.tasks else {}),
            },
            "fingerprint": self._fingerprint,
            "plan": self._plan,
            "jobs": {name: job_record(job) for name, job in state.jobs.items()},
        }

    def _line(self, data: dict[str, Any]) -> str:
        """`data` as one JSON line, without any secret's value. Written as is when no secret
        shows in the text (a substring search in C); else scrubbed field by field first. At
        10,000 jobs scrubbing every record field by field was 4% of the runner's CPU."""
        text = _dumps(data)
        if self.redactor.secrets and self.redactor.appears_in(text):
            text = _dumps(self.redactor.scrub(data))
        return text


def _names_record(plan: Plan) -> dict[str, Any]:
    """The environment and the ids looked up by name, when the run has them."""
    manifest = plan.manifest
    record: dict[str, Any] = {}
    if manifest.environment is not None:
        record["environment"] = manifest.environment
    if manifest.by_name:
        record["resolved"] = dict(manifest.resolved)
    return record


def _dumps(data: dict[str, Any]) -> str:
    """One line of compact JSON (the C encoder; indenting would take the pure-Python one)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"


def _last_written(snapshot: Path) -> float:
    """When the run last wrote its state: its journal is newer than its snapshot while it runs."""
    journal = journal_path(snapshot)
    times = [snapshot.stat().st_mtime]
    if journal.exists():
        times.append(journal.stat().st_mtime)
    return max(times)


MAX_RUN_ID = 100
"""Longer is no run id (`run` makes them 23 characters long), and may be too long a file name."""
RUN_ID_EXAMPLE = "20260101T120000Z-1a2b3c"


def find_state(directory: Path, run_id: str) -> Path:
    if run_id == "latest":
        return _latest(directory)
    if (
        len(run_id) > MAX_RUN_ID
        or not run_id.replace("-", "").replace("T", "").replace("Z", "").isalnum()
    ):
        shown = run_id if len(run_id) <= 40 else f"{run_id[:40]}... ({len(run_id)} characters)"
        raise UsageError(f"not a run id: {shown!r} (a run id looks like {RUN_ID_EXAMPLE})")
    path = directory / f"{run_id}.json"
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name the file system refuses
        raise UsageError(f"cannot look for run {run_id!r} in {directory}: {exc.strerror}") from None
    if not found:
        raise UsageError(f"no saved run {run_id!r} in {directory}{_saved_runs_hint(directory)}")
    return path


def _latest(directory: Path) -> Path:
    """The state file of the run that wrote last."""
    files = sorted(directory.glob("*.json"), key=_last_written) if directory.is_dir() else []
    if not files:
        raise UsageError(f"no earlier run to resume in {directory} (runs are saved there by `run`)")
    return files[-1]


def _saved_runs_hint(directory: Path) -> str:
    known = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
    return f"; saved runs: {', '.join(known[-5:])}" if known else ""


EMULATOR_TARGET = "emulator"
"""The target recorded for a run against the embedded emulator (`run --emulator`)."""


def check_resume_target(saved: SavedRun | None, target: str, *, force: bool) -> None:
    """UsageError when a resume would talk to another Celonis than the run it takes up."""
    if saved is None or force:
        return
    if target == EMULATOR_TARGET:
        raise UsageError(
            "run --resume cannot use --emulator: the embedded emulator forgets everything when "
            "the runner exits, so the jobs the earlier run left running cannot be taken up. "
            "Serve an emulator that outlives the runner (`celonis-runner emulator --manifest "
            "jobs.yaml --port 8491`), run against it with --base-url http://127.0.0.1:8491, "
            "and resume with the same --base-url (or resume anyway with --force)"
        )
    if saved.target is not None and saved.target != target:
        went = "the embedded emulator" if saved.target == EMULATOR_TARGET else saved.target
        raise UsageError(
            f"run {saved.run_id} went to {went}, not {target}: a resume must talk to the same "
            "Celonis to take up the jobs it left running. Resume against "
            f"{saved.target if saved.target != EMULATOR_TARGET else 'the same API'} with "
            "--base-url, or anyway with --force"
        )


def check_resume_names(saved: SavedRun | None, plan: Plan, *, force: bool) -> None:
    """UsageError when a resume would run in another environment than the run it takes up, or
    its Celonis names now stand for other ids (a job renamed or moved in Celonis)."""
    if saved is None or force:
        return
    manifest = plan.manifest
    if saved.environment != manifest.environment:
        raise UsageError(
            f"run {saved.run_id} ran in {_env(saved.environment)}, not {_env(manifest.environment)}:"
            f" a resume must run where the run did (--env {saved.environment or '<none>'}),"
            " or anyway with --force"
        )
    shown = _resolution_changes(saved.resolved, dict(manifest.resolved))
    if shown:
        raise UsageError(
            f"the Celonis names of run {saved.run_id} now stand for other ids ({shown}):"
            " start a new run without --resume, or resume anyway with --force"
        )


def _resolution_changes(before: Mapping[str, str], now: Mapping[str, str]) -> str:
    """Which names now stand for other ids (the first five), or ''."""
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return "; ".join(
        f"{k}: {before.get(k) or 'none'} -> {now.get(k) or 'none'}" for k in changed[:5]
    )


def _env(name: str | None) -> str:
    return f"environment {name!r}" if name else "the top-level connection (no --env)"


def manifest_changes(saved: SavedRun, plan: Plan) -> list[str]:
    """What changed, in the manifest, that a resume depends on."""
    before = saved.fingerprint
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
    jobs = {name: job for name, job in saved.jobs.items() if name in plan.jobs}
    running, uncertain, intent_at = _in_flight(jobs, plan)
    succeeded = {n: j for n, j in jobs.items() if j.state == "succeeded"}
    return ResumeFrom(
        succeeded=frozenset(succeeded),
        running=running,
        uncertain=uncertain,
        intent_at=intent_at,
        cancel_requested=frozenset(n for n in running if jobs[n].cancel_requested),
        started_at=_known({n: j.started_at for n, j in jobs.items()}),
        finished_at=_known({n: j.finished_at for n, j in succeeded.items()}),
    )


def _in_flight(
    jobs: Mapping[str, SavedJob], plan: Plan
) -> tuple[dict[str, ExecutionHandle], dict[str, ExecutionHandle], dict[str, float]]:
    """(the running jobs, the jobs that may have started, when those meant to start)."""
    running: dict[str, ExecutionHandle] = {}
    uncertain: dict[str, ExecutionHandle] = {}
    intent_at: dict[str, float] = {}
    for name, job in jobs.items():
        spec = plan.jobs[name].job
        if job.state == "running":
            running[name] = saved_handle(job, spec.pool_id, spec.job_id, spec.mode)
        elif job.state in ("starting", "unclear"):  # the schema makes sure of a time
            uncertain[name] = saved_handle(job, spec.pool_id, spec.job_id, spec.mode)
            if job.intent_at is not None:
                intent_at[name] = job.intent_at
    return running, uncertain, intent_at


def _known(times: Mapping[str, float | None]) -> dict[str, float]:
    return {name: t for name, t in times.items() if t is not None}


def saved_handle(job: SavedJob, pool_id: str, job_id: str, mode: Mode) -> ExecutionHandle:
    """The claim a saved job had on its execution. Without one (killed while the POST was out,
    or a handle from an older version) it has `sent_at` = the local time of the intent (or send)
    and no Celonis times: the executor bounds them from this run's measured offset before it
    judges anything (`Executor._bound`)."""
    if job.handle is not None:
        handle = ExecutionHandle.from_dict({"mode": mode, **job.handle}, pool_id, job_id)
    else:
        before = JobStatus(job_id, None)
        handle = ExecutionHandle(pool_id, job_id, mode, before, 0.0, 1, sent_at=job.sent_at)
    if handle.since_ms is not None or handle.running_at_ms is not None:
        return handle
    local = handle.sent_at or job.sent_at or job.intent_at or 0.0
    return dataclasses.replace(handle, sent_at=local)
