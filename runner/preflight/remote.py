"""What the API says about a plan's pools and jobs, without running anything (`plan --check-remote`).

Each pool's jobs are listed (`GET /integration/api/pools/{pool}/jobs`, one
request per pool): a pool that answers 404, or a job id missing from its
list, is a problem in the manifest, reported at the line of its id; a pool
that answers 403 means the key lacks permission; a job that is QUEUED or
RUNNING now (or in a status we do not know) gets a warning, since `run`
would wait for that execution first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runner.api.client import JobInfo, PoolInfo
from runner.api.errors import ApiError, AuthError, NotFoundError
from runner.manifest import yamlio
from runner.manifest.model import Job, Manifest, Pool
from runner.plan.build import Plan
from runner.problems import Problem, Severity, format_path, sort_problems


class ReadApi(Protocol):
    """What the check needs of `runner.api.CelonisClient`."""

    def list_pools(self) -> list[PoolInfo]: ...

    def list_jobs(self, pool_id: str) -> list[JobInfo]: ...


@dataclass(frozen=True)
class PoolLookup:
    """A pool's jobs by lower-case id, or the error its job list answered with (404 or 403)."""

    pool_id: str
    jobs: Mapping[str, JobInfo] | None
    error: ApiError | None = None


def look_up_pools(api: ReadApi, pool_ids: Iterable[str]) -> dict[str, PoolLookup]:
    """Each pool's job list; 404 and 403 are kept per pool, any other ApiError is raised."""
    found: dict[str, PoolLookup] = {}
    for pool_id in dict.fromkeys(pool_ids):
        try:
            jobs = api.list_jobs(pool_id)
        except (NotFoundError, AuthError) as error:
            if error.status not in (403, 404):
                raise  # 401: the key itself was refused, nothing else will work
            found[pool_id] = PoolLookup(pool_id, None, error)
        else:
            found[pool_id] = PoolLookup(pool_id, {job.id.lower(): job for job in jobs})
    return found


@dataclass
class RemoteCheck:
    problems: list[Problem] = field(default_factory=list)
    access_denied: list[str] = field(default_factory=list)
    """Names of the pools the key may not read (403)."""
    missing: list[str] = field(default_factory=list)
    """Pools (`pools.NAME`) and jobs (`jobs.NAME`) that the API does not have."""
    pools_found: int = 0
    jobs_found: int = 0
    pools_checked: int = 0
    jobs_checked: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def check_plan(api: ReadApi, plan: Plan, *, listed: bool = False) -> RemoteCheck:
    """Check the plan's pools and jobs; raises ApiError when the API cannot be used at all.
    `listed`: the command read the pool list already (runner.api.first_contact), which proved
    the credentials."""
    result = RemoteCheck()
    try:
        if not listed:
            api.list_pools()  # proves the credentials work (401 raises) before anything else
    except AuthError as error:
        if error.status != 403:
            raise  # 403: the key may not list pools, but may still read its own: go on
    locate = Locator(plan.manifest)
    jobs = [planned.job for planned in plan.jobs.values()]
    lookups = look_up_pools(api, [job.pool_id for job in jobs])
    result.pools_checked, result.jobs_checked = len(lookups), len(jobs)
    _check_pools(result, plan.manifest, jobs, lookups, locate)
    for job in jobs:
        _check_job(result, job, lookups[job.pool_id], locate)
    result.problems = sort_problems(result.problems)
    return result


def _check_pools(
    result: RemoteCheck,
    manifest: Manifest,
    jobs: list[Job],
    lookups: dict[str, PoolLookup],
    locate: Locator,
) -> None:
    """Each pool the plan uses exists and the key may read it."""
    pools = _pools_of(manifest, jobs)
    for pool_id, lookup in lookups.items():
        if lookup.jobs is not None:
            result.pools_found += 1
            continue
        pool = next((p for p in pools.values() if p.pool_id == pool_id), None)
        name = pool.name if pool is not None else pool_id
        message = _unreadable_pool(result, lookup, name, pool_id)
        if pool is not None:
            result.problems.append(locate.pool(pool, message))
        else:  # a job given by URL whose pool is not under `pools`: point at the jobs
            result.problems += [locate.job(j, message) for j in jobs if j.pool_id == pool_id]


def _pools_of(manifest: Manifest, jobs: list[Job]) -> dict[str, Pool]:
    """The manifest's pools the jobs run in, by name."""
    return {job.pool: manifest.pools[job.pool] for job in jobs if job.pool in manifest.pools}


def _unreadable_pool(result: RemoteCheck, lookup: PoolLookup, name: str, pool_id: str) -> str:
    """Count the pool as one the key may not read or as missing; the problem to report."""
    if isinstance(lookup.error, AuthError):
        result.access_denied.append(name)
        return (
            f"the key may not read pool '{name}' ({pool_id}): HTTP 403;"
            " give it 'view' and 'manage' permission on the pool"
        )
    result.missing.append(f"pools.{name}")
    return (
        f"pool '{name}' ({pool_id}) does not exist in this team, or the key cannot see it:"
        " check the id (copy it from the data pool's URL) and the base URL"
    )


def _check_job(result: RemoteCheck, job: Job, lookup: PoolLookup, locate: Locator) -> None:
    """The job exists in its (readable) pool; a warning when it is running now."""
    if lookup.jobs is None:
        return
    info = lookup.jobs.get(job.job_id.lower())
    if info is None:
        result.missing.append(f"jobs.{job.name}")
        result.problems.append(locate.job(job, _missing(job, lookup.jobs.values())))
        return
    result.jobs_found += 1
    status = info.status
    if not status.in_progress:
        return
    what = (
        f"the job is {status.status} in Celonis now"
        if status.is_active
        else f"the job has the status {status.status!r}, which counts as still running"
    )
    result.problems.append(
        locate.job(
            job,
            f"{what} (an execution this runner did not start);"
            " `run` would wait for it to end, then start its own",
            severity="warning",
        )
    )


def _missing(job: Job, remote: Iterable[JobInfo]) -> str:
    message = (
        f"job {job.job_id} does not exist in pool '{job.pool}' ({job.pool_id}),"
        " or the key cannot see it"
    )
    same_name = [r for r in remote if r.name and r.name.lower() == job.name.lower()]
    if same_name:
        message += f" (the pool has a job named '{same_name[0].name}' with id {same_name[0].id})"
    return message + ": copy the id from the data job's URL"


class Locator:
    """Problems placed at the line and column of the id in the manifest (of the entry if need be)."""

    def __init__(self, manifest: Manifest) -> None:
        self.file = manifest.path
        self.doc: yamlio.Document | None
        try:
            self.doc = yamlio.load(Path(manifest.path), display=manifest.path)
        except (OSError, yamlio.YamlError):
            self.doc = None  # moved or changed since it was read: fall back to the entry's line

    def job(self, job: Job, message: str, *, severity: Severity = "error") -> Problem:
        key = self._present(("jobs", job.name), ("id", "url"))
        path = ("jobs", job.name, key) if key else ("jobs", job.name)
        line, column = self._position(path, job.line)
        return Problem(self.file, line, column, ".".join(path), message, severity)

    def at(
        self,
        path: tuple[str | int, ...],
        fallback_line: int,
        message: str,
        *,
        severity: Severity = "error",
    ) -> Problem:
        """A problem at `path` (at its key when it ends in one; at the nearest entry above it
        that the file has, e.g. for a subset given by --tasks)."""
        if self.doc is None:
            line, column = (fallback_line, 1 if fallback_line else 0)
        else:
            line, column = self.doc.position(path, key=isinstance(path[-1], str))
        return Problem(self.file, line, column, format_path(path), message, severity)

    def pool(self, pool: Pool, message: str) -> Problem:
        path = ("pools", pool.name, "id")
        line, column = self._position(path, pool.line)
        return Problem(self.file, line, column, ".".join(path), message)

    def _present(self, path: tuple[str, ...], keys: tuple[str, ...]) -> str | None:
        node = self.doc.data if self.doc is not None else None
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            return next((k for k in keys if k in node), None)
        return None

    def _position(self, path: tuple[str, ...], fallback_line: int) -> tuple[int, int]:
        if self.doc is None:
            return (fallback_line, 1 if fallback_line else 0)
        return self.doc.position(path)
