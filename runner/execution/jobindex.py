"""The executor's indexes of its jobs, kept up to date on every state change.

So that a pass of the scheduling loop costs what changed, not the number of
jobs: jobs by state, active jobs per pool, the jobs each pool poll reads and
when it is next due, a heap of deadlines, and a ready queue per pool fed
when a job's last dependency finishes (each dependency edge is looked at
once per run, counted in `dependency_checks`).
"""

from __future__ import annotations

import collections
import heapq
import itertools

from runner.execution.runstate import JobRun, JobState
from runner.plan.build import Plan

POLLED = frozenset({JobState.RUNNING, JobState.WAITING})


def satisfies_dependents(job: JobRun) -> bool:
    """Its dependents may start: it succeeded, or failed with allow_failure."""
    if job.state == JobState.SUCCEEDED:
        return True
    return job.state.is_unsuccessful and job.planned.job.allow_failure


class JobIndex:
    def __init__(self, plan: Plan, jobs: dict[str, JobRun]) -> None:
        self.plan = plan
        self.jobs = jobs
        self.by_state: dict[JobState, dict[str, JobRun]] = {s: {} for s in JobState}
        self.by_state[JobState.PENDING].update(jobs)
        self.active_per_pool: collections.Counter[str] = collections.Counter()
        self.active_total = 0
        self.polled: dict[str, dict[str, JobRun]] = {}
        self.pool_due: dict[str, float] = {}
        self.deadlines: list[tuple[float, int, str]] = []
        self.changed = False
        self.dependency_checks = 0
        self._sequence = itertools.count()
        # ready jobs start longest chain to the end first, then in plan order
        remaining = plan.remaining
        self._order = {name: (-remaining.get(name, 0.0), i) for i, name in enumerate(jobs)}
        self._unmet = {name: len(job.planned.depends_on) for name, job in jobs.items()}
        self._queues: dict[str, list[tuple[tuple[float, int], str]]] = {}
        self._queued: set[str] = set()
        self.fresh: list[str] = []
        """Jobs that became ready since the last pass (each announced once if it must wait)."""
        for name, unmet in self._unmet.items():
            if unmet == 0:
                self._enqueue(name)

    def move(self, job: JobRun, state: JobState) -> None:
        """Put `job` in `state` and update every index (the only place that changes a state)."""
        old, name, pool = job.state, job.name, job.planned.job.pool
        del self.by_state[old][name]
        self.by_state[state][name] = job
        if old.is_active != state.is_active:
            step = 1 if state.is_active else -1
            self.active_per_pool[pool] += step
            self.active_total += step
        job.state = state
        self._index_polled(job, old)
        if state == JobState.PENDING and old != state and self._unmet[name] == 0:
            self._enqueue(name)
        if satisfies_dependents(job) and old != state:
            self._release_dependents(job)
        self.changed = True

    def push_deadline(self, at: float, name: str) -> None:
        heapq.heappush(self.deadlines, (at, next(self._sequence), name))

    def pop_deadline(self) -> str:
        return heapq.heappop(self.deadlines)[2]

    def poll_by(self, pool: str, at: float) -> None:
        """Make the pool's next poll happen no later than `at`."""
        self.pool_due[pool] = min(self.pool_due.get(pool, at), at)

    def take_startable(self, max_parallel: int | None) -> list[JobRun]:
        """Ready jobs that fit in their pool's and the global limit: longest chain to the end
        first (`Plan.remaining`), then in plan order."""
        heads = [(queue[0][0], pool) for pool, queue in self._queues.items() if self._free(pool)]
        heapq.heapify(heads)
        per_pool: collections.Counter[str] = collections.Counter()
        taken: list[JobRun] = []
        while heads and (max_parallel is None or self.active_total + len(taken) < max_parallel):
            _, pool = heapq.heappop(heads)
            queue = self._queues[pool]
            name = heapq.heappop(queue)[1]
            self._queued.discard(name)
            job = self.jobs[name]
            if job.state == JobState.PENDING:  # a stale entry (skipped since) is dropped
                taken.append(job)
                per_pool[pool] += 1
            if not queue:
                del self._queues[pool]
            elif self._free(pool, per_pool[pool]):
                heapq.heappush(heads, (queue[0][0], pool))
        return taken

    def waiting_for_slot(self, max_parallel: int | None) -> list[tuple[JobRun, str]]:
        """Jobs that just became ready but found no free slot, each with why (once per wait)."""
        waiting: list[tuple[JobRun, str]] = []
        for name in self.fresh:
            job = self.jobs[name]
            if name not in self._queued or job.state != JobState.PENDING:
                continue
            pool = job.planned.job.pool
            limit = self.plan.pool_limits.get(pool)
            if limit is not None and self.active_per_pool[pool] >= limit:
                waiting.append((job, f"{self.active_per_pool[pool]}/{limit} running in {pool}"))
            elif max_parallel is not None and self.active_total >= max_parallel:
                waiting.append((job, f"{self.active_total}/{max_parallel} running (max_parallel)"))
        self.fresh.clear()
        return waiting

    def _free(self, pool: str, taken: int = 0) -> bool:
        limit = self.plan.pool_limits.get(pool)
        return limit is None or self.active_per_pool[pool] + taken < limit

    def _enqueue(self, name: str) -> None:
        if name in self._queued:
            return
        self._queued.add(name)
        pool = self.jobs[name].planned.job.pool
        heapq.heappush(self._queues.setdefault(pool, []), (self._order[name], name))
        self.fresh.append(name)

    def _release_dependents(self, job: JobRun) -> None:
        for child in job.planned.dependents:
            self.dependency_checks += 1
            self._unmet[child] -= 1
            if self._unmet[child] == 0 and self.jobs[child].state == JobState.PENDING:
                self._enqueue(child)

    def _index_polled(self, job: JobRun, old: JobState) -> None:
        state, name, pool = job.state, job.name, job.planned.job.pool
        polled = self.polled.setdefault(pool, {})
        if state not in POLLED:
            polled.pop(name, None)
            return
        polled[name] = job
        if len(polled) == 1:
            self.pool_due[pool] = job.next_poll
        else:
            self.poll_by(pool, job.next_poll)
        since = job.started_mono if state == JobState.RUNNING else job.waiting_since
        if since is not None and old != state:
            self.push_deadline(since + job.planned.job.timeout, name)
