"""The frozen model of a run: what every report renders, built once from a live run
(`runner.execution.runstate.run_result`) or a saved one (`runner.runresult.records`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from runner.logs import Redactor
from runner.task_records import TaskResult
from runner.text import encodable


class JobState(StrEnum):
    """Where one job of this run is. Members know whether they are final and how they ended."""

    PENDING = "pending"
    """Waiting for its dependencies or a free slot."""
    STARTING = "starting"
    """Its execute request is in flight."""
    WAITING = "waiting"
    """Someone else's execution is running; ours starts after it."""
    RUNNING = "running"
    """Our execution is running in Celonis."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    NOT_STARTED = "not_started"
    UNCLEAR = "unclear"
    """Its execute may have taken effect, and no status read settled whether it did."""

    @property
    def is_active(self) -> bool:
        """Holds a slot of its pool: an execute in flight, or an execution being watched."""
        return self in _ACTIVE

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_unsuccessful(self) -> bool:
        """Ended badly in Celonis: failed, timed out or cancelled (its dependents are skipped)."""
        return self in _UNSUCCESSFUL

    @property
    def not_run(self) -> bool:
        """Final without running in this run: skipped or not started."""
        return self in _NOT_RUN

    @property
    def verb(self) -> str:
        """How a message says it happened: 'a timed out', 'b was cancelled'."""
        return _VERBS.get(self, str(self).replace("_", " "))

    @property
    def report_status(self) -> str:
        """The status reports show: a job whose execute was in flight may be running."""
        return _REPORT_STATUS.get(self, str(self))


_ACTIVE = frozenset({JobState.STARTING, JobState.WAITING, JobState.RUNNING})
_UNSUCCESSFUL = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED})
_NOT_RUN = frozenset({JobState.SKIPPED, JobState.NOT_STARTED})
_FINAL = _UNSUCCESSFUL | _NOT_RUN | {JobState.SUCCEEDED, JobState.UNCLEAR}
_VERBS = {JobState.TIMED_OUT: "timed out", JobState.CANCELLED: "was cancelled"}
_REPORT_STATUS = {
    JobState.PENDING: "not_started",
    JobState.WAITING: "not_started",
    JobState.STARTING: "running",  # its execute was in flight: it may be running; a resume checks
}

RunStatus = Literal["succeeded", "failed", "api_error", "state_error", "interrupted"]


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


TaskOutcome = TaskResult
"""How one task of a job's execution went: the one record of it (runner.task_records)."""


@dataclass(frozen=True)
class JobResult:
    """One job of the run: what it is (from the plan) and how it went."""

    name: str
    pool: str
    pool_id: str
    job_id: str
    mode: str
    state: JobState
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    attempts: int = 0
    depends_on: tuple[str, ...] = ()
    wave: int = 1
    allow_failure: bool = False
    line: int | None = None
    """Where the job is in the manifest (GitHub annotations point there); None: not known."""
    subset: Mapping[str, Any] | None = None
    """The part of the data job it runs, as the manifest writes it; None: the whole job."""
    task_ids: tuple[str, ...] | None = None
    """The task ids its subset execute named; None: a whole job."""
    tasks: tuple[TaskOutcome, ...] | None = None
    """How each task of its execution went; None: not read (or not run)."""
    sent_at: float | None = None
    intent_at: float | None = None

    @property
    def duration(self) -> float | None:
        return _span(self.started_at, self.finished_at)

    @property
    def report_status(self) -> str:
        return self.state.report_status

    @property
    def allowed_failure(self) -> bool:
        """Ended badly, and the manifest lets it: the run does not fail for it."""
        return self.allow_failure and self.state.is_unsuccessful

    @property
    def partial(self) -> bool:
        """Ran only part of its data job."""
        return self.subset is not None or self.task_ids is not None


@dataclass(frozen=True)
class RunResult:
    """A run as every report sees it; `finished_at` None: still going when it was saved."""

    run_id: str
    status: str
    manifest: str
    """The manifest's path as the run was given it."""
    manifest_sha256: str | None
    started_at: float
    finished_at: float | None
    error: str | None
    jobs: tuple[JobResult, ...]
    pools: tuple[str, ...] = ()
    environment: str | None = None
    """The manifest's environment the run ran in (`--env`); None: the top-level connection."""
    resolved: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The ids the manifest's Celonis names stood for (`pools.NAME` / `jobs.NAME` -> id)."""

    def by_pool(self) -> dict[str, list[JobResult]]:
        """The jobs grouped by pool, pools in their order (one pass over the jobs)."""
        groups: dict[str, list[JobResult]] = {pool: [] for pool in self.pools}
        for job in self.jobs:
            groups.setdefault(job.pool, []).append(job)
        return groups

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def end(self) -> float:
        """Where the timeline ends: the run's end, else the last time anything happened."""
        times = [self.started_at, self.finished_at or self.started_at]
        times += [t for j in self.jobs for t in (j.started_at, j.finished_at) if t is not None]
        return max(times)

    def counts(self) -> dict[str, int]:
        """How many jobs have each report status, in the order the statuses first appear."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.report_status] = counts.get(job.report_status, 0) + 1
        return counts

    def redacted(self, redactor: Redactor) -> RunResult:
        """The run with every text scrubbed of the run's secrets (before any output escapes or
        cuts it) and of lone surrogates, which no output could encode."""

        def scrub(text: str) -> str:
            return encodable(str(redactor.scrub(text)))

        return dataclasses.replace(
            self,
            run_id=scrub(self.run_id),
            manifest=scrub(self.manifest),
            error=_maybe(scrub, self.error),
            jobs=tuple(_redacted_job(job, scrub) for job in self.jobs),
            pools=tuple(scrub(p) for p in self.pools),
        )


def _maybe(scrub: Callable[[str], str], text: str | None) -> str | None:
    return scrub(text) if text else text


def _redacted_job(job: JobResult, scrub: Callable[[str], str]) -> JobResult:
    tasks = None
    if job.tasks is not None:  # Celonis' ERROR lines may echo anything
        tasks = tuple(
            dataclasses.replace(t, name=scrub(t.name), error=_maybe(scrub, t.error))
            for t in job.tasks
        )
    return dataclasses.replace(
        job,
        name=scrub(job.name),
        pool=scrub(job.pool),
        error=_maybe(scrub, job.error),
        depends_on=tuple(scrub(d) for d in job.depends_on),
        tasks=tasks,
    )
