"""A fake Celonis jobs API on a fake clock, for driving the executor without threads or sleeps.

Each execute starts a run that lasts `durations[job]` seconds of the fake
clock and ends with `outcomes[job]` (SUCCESS by default). Every call is
recorded in `calls` as (time, method, job_id), so tests assert what the
executor decided and when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from runner.api.errors import ApiError, AuthError, JobBusyError, ServerError, UnclearExecuteError
from runner.api.types import ExecutionHandle, ExecutionInfo, JobStatus
from runner.manifest.model import Job, Manifest, Pool
from runner.plan.build import Plan, build_plan
from runner.shared_types import Connection as ManifestConnection
from runner.shared_types import Mode
from tests.emulator_fixtures import FakeClock


@dataclass
class Run:
    start: float
    duration: float
    outcome: str
    number: int
    cancel_at: float | None = None


@dataclass
class FakeCelonis:
    clock: FakeClock
    durations: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    default_duration: float = 60.0
    cancel_delay: float = 3.0
    cancel_fails: set[str] = field(default_factory=set)
    """Cancels of these jobs answer 503."""
    cancel_ignored: set[str] = field(default_factory=set)
    """Cancels of these jobs are accepted but never take effect."""
    refuse_credential: bool = False
    busy_until: dict[str, float] = field(default_factory=dict)
    external_outcome: dict[str, str] = field(default_factory=dict)
    """How an execution someone else started (see busy_until) ends, once it ends."""
    """Someone else's run of the job, active until this time."""
    execute_errors: dict[str, list[ApiError]] = field(default_factory=dict)
    """Raised by the next executes of a job (the run still starts when `takes_effect`)."""
    takes_effect: set[str] = field(default_factory=set)
    history_hidden: set[str] = field(default_factory=set)
    """Jobs whose execution history (and pool entry) shows none of their runs (lagging)."""
    hidden_until: dict[str, float] = field(default_factory=dict)
    """Like history_hidden, until this fake monotonic time."""
    stale_for: float = 0.0
    """Every status and history answer shows a job as it was this many seconds ago."""
    status_error_after: float | None = None
    answers_pool_entries: bool = False
    """`pool_entries` answers with every job's status (else None: the pool has no such list)."""
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def _record(self, method: str, job_id: str = "") -> None:
        self.calls.append((self.clock.monotonic(), method, job_id))
        if self.refuse_credential:
            raise AuthError("HTTP 401: the API key was refused", status=401)

    def ms(self, t: float) -> int:
        """Celonis' clock (epoch ms) at fake monotonic time `t` (the clocks agree here)."""
        return round((self.clock.wall_start + t) * 1000)

    def status(self, job_id: str, now: float | None = None, *, truth: bool = False) -> JobStatus:
        now = self.clock.monotonic() - self.stale_for if now is None else now
        if self.busy_until.get(job_id, -1.0) > now:
            return JobStatus(job_id, "RUNNING", "ext", last_execution_start=self.ms(0.0))
        runs = [r for r in self.runs.get(job_id, []) if r.start <= now]
        if self._hidden(job_id) and not truth:
            runs = []
        if not runs and job_id in self.external_outcome:
            return JobStatus(
                job_id, self.external_outcome[job_id], "ext", last_execution_start=self.ms(0.0)
            )
        if not runs:
            return JobStatus(job_id, None)
        run = runs[-1]
        return JobStatus(
            job_id,
            self._run_status(run, now),
            current_execution_id=f"{job_id}-{run.number}",
            last_execution_start=self.ms(run.start),
        )

    def _hidden(self, job_id: str) -> bool:
        until = self.hidden_until.get(job_id)
        return job_id in self.history_hidden or (
            until is not None and self.clock.monotonic() < until
        )

    @staticmethod
    def _run_status(run: Run, now: float) -> str:
        if run.cancel_at is not None and now >= run.cancel_at and now < run.start + run.duration:
            return "CANCEL"
        if now < run.start + run.duration:
            return "RUNNING"
        return run.outcome

    def _end(self, job_id: str, run: Run, now: float) -> float | None:
        if run.cancel_at is not None and run.cancel_at <= now < run.start + run.duration:
            return run.cancel_at
        end = run.start + run.duration
        return end if end <= now else None

    def start_run(self, job_id: str) -> None:
        """A run of the job begins now (as if an execute took effect)."""
        runs = self.runs.setdefault(job_id, [])
        duration = self.durations.get(job_id, self.default_duration)
        outcome = self.outcomes.get(job_id, "SUCCESS")
        runs.append(Run(self.clock.monotonic(), duration, outcome, len(runs) + 1))

    def execute(
        self,
        pool_id: str,
        job_id: str,
        mode: Mode,
        *,
        pool_entries: Mapping[str, JobStatus] | None = None,
        subset: Mapping[str, object] | None = None,
        resend_of: ExecutionHandle | None = None,
    ) -> ExecutionHandle:
        self._record("execute", job_id)
        before = self.status(job_id)
        truth = self.status(job_id, self.clock.monotonic(), truth=True)
        if before.in_progress or truth.in_progress:
            if resend_of is not None:
                return resend_of  # a 409 after our own unclear execute: that one is ours
            at = before.last_execution_start if before.in_progress else self.celonis_floor_ms()
            raise JobBusyError(
                before, pool_id=pool_id, refused=not before.in_progress, running_at_ms=at
            )
        now = self.clock.monotonic()
        since = resend_of.since_ms if resend_of is not None else self.celonis_floor_ms()
        until = resend_of.until_ms if resend_of is not None else self.celonis_ceiling_ms()
        handle = ExecutionHandle(
            pool_id,
            job_id,
            mode,
            before,
            now,
            1,
            sent_at=self.clock.time(),
            since_ms=since,
            until_ms=until,
        )
        errors = self.execute_errors.get(job_id)
        if errors:
            if job_id in self.takes_effect:
                self.start_run(job_id)
            error = errors.pop(0)
            if isinstance(error, UnclearExecuteError):
                raise UnclearExecuteError(handle, error)
            raise error
        self.start_run(job_id)
        return handle

    def celonis_floor_ms(self, local: float | None = None) -> int:
        return round(((self.clock.time() if local is None else local) - 2.0) * 1000)

    def celonis_ceiling_ms(self, local: float | None = None) -> int:
        return round(((self.clock.time() if local is None else local) + 2.0) * 1000)

    def execution_history(self, pool_id: str, job_id: str, limit: int) -> list[ExecutionInfo]:
        self._record("history", job_id)
        now = self.clock.monotonic() - self.stale_for
        if self._hidden(job_id):
            return []
        runs = [r for r in self.runs.get(job_id, []) if r.start <= now]
        items = []
        for run in reversed(runs):
            end = self._end(job_id, run, now)
            items.append(
                ExecutionInfo(
                    f"{job_id}-{run.number}",
                    self._run_status(run, now),
                    self.ms(run.start),
                    self.ms(end) if end is not None else None,
                )
            )
        items += self._external(job_id, now)
        return items[:limit]

    def _external(self, job_id: str, now: float) -> list[ExecutionInfo]:
        """Someone else's run (busy_until / external_outcome), begun at time 0."""
        if job_id not in self.busy_until and job_id not in self.external_outcome:
            return []
        until = self.busy_until.get(job_id, 0.0)
        if until > now:
            return [ExecutionInfo("ext", "RUNNING", self.ms(0.0), None)]
        outcome = self.external_outcome.get(job_id, "SUCCESS")
        return [ExecutionInfo("ext", outcome, self.ms(0.0), self.ms(until))]

    def pool_entries(self, pool_id: str) -> dict[str, JobStatus] | None:
        self._record("pool_entries")
        if not self.answers_pool_entries:
            return None
        return {job_id.lower(): self.status(job_id) for job_id in self.runs}

    def pool_statuses(self, pool_id: str, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        ids = list(job_ids)
        for job_id in ids:
            self._record("status", job_id)
        after = self.status_error_after
        if after is not None and self.clock.monotonic() >= after:
            raise ServerError("HTTP 503: service unavailable", status=503)
        return {job_id: self.status(job_id) for job_id in ids}

    def cancel(self, pool_id: str, job_id: str) -> None:
        self._record("cancel", job_id)
        if job_id in self.cancel_fails:
            raise ServerError("HTTP 503: service unavailable", status=503)
        if job_id not in self.cancel_ignored and self.runs.get(job_id):
            self.runs[job_id][-1].cancel_at = self.clock.monotonic() + self.cancel_delay

    def failure_reason(
        self, pool_id: str, job_id: str, *, execution_id: str | None = None
    ) -> str | None:
        self._record("failure_reason", job_id)
        return "table T missing"

    # -- what tests read --------------------------------------------------------

    def times(self, method: str, job_id: str = "") -> list[float]:
        return [t for t, m, j in self.calls if m == method and (not job_id or j == job_id)]

    def max_concurrent(self, job_ids: Iterable[str]) -> int:
        """Most runs of these jobs active at one moment (cancelled runs end at their cancel)."""
        edges: list[tuple[float, int]] = []
        for job_id in job_ids:
            for run in self.runs.get(job_id, []):
                end = run.start + run.duration
                if run.cancel_at is not None:
                    end = min(end, run.cancel_at)
                edges += [(run.start, 1), (end, -1)]
        best = current = 0
        for _, step in sorted(edges):
            current += step
            best = max(best, current)
        return best


def job(name: str, *depends_on: str, pool: str = "sap", **fields: object) -> Job:
    settings: dict[str, object] = {"poll_interval": 10.0, "max_poll_interval": 60.0, **fields}
    return Job(
        name=name,
        pool=pool,
        pool_id=f"pool-{pool}",
        job_id=name,
        depends_on=depends_on,
        **settings,  # type: ignore[arg-type]
    )


def plan_of(
    *jobs: Job,
    limits: Mapping[str, int | None] | None = None,
    max_parallel: int | None = None,
    select: tuple[str, ...] = (),
) -> Plan:
    pools = {j.pool: Pool(j.pool, f"pool-{j.pool}", (limits or {}).get(j.pool)) for j in jobs}
    manifest = Manifest(
        path="jobs.yaml",
        sha256="0" * 64,
        version=1,
        connection=ManifestConnection(team="acme", realm="eu-1"),
        pools=pools,
        jobs={j.name: j for j in jobs},
    )
    return build_plan(manifest, select=select, max_parallel=max_parallel)
