"""Pools and jobs given by `celonis_name`, looked up in the team a command talks to.

One `GET /integration/api/pools` for every pool, then one
`GET /integration/api/pools/{pool}/jobs` per pool that holds a job given by
name: never a request per job. A name that matches nothing, or more than one
pool (or job of its pool), is a problem at the name's line and column with
did-you-mean; nothing is guessed. With `id` (or `url`) beside the name, the
name must be that id's: a mismatch is a problem too. Commands that run
anything run nothing while any problem stands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from runner.api.client import JobInfo, PoolInfo
from runner.manifest.model import Job, Manifest, Pool
from runner.preflight.remote import Locator, ReadApi
from runner.problems import Problem, did_you_mean, sort_problems


@dataclass
class Resolution:
    """The manifest with the ids its names stand for, or the problems that kept them unknown."""

    manifest: Manifest
    problems: list[Problem] = field(default_factory=list)
    requests: int = 0
    """How many requests the lookup made (one pool list, one job list per pool)."""
    job_lists: dict[str, list[JobInfo]] = field(default_factory=dict)
    """The job lists read, by pool id."""
    found: dict[str, tuple[str, str]] = field(default_factory=dict)
    """(pool id, job id) of every job whose pool and name gave one id, even when others did not."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def unresolved(self) -> list[str]:
        """`pools.NAME` / `jobs.NAME` paths of the names that found no single id."""
        return [p.path.rsplit(".", 1)[0] for p in self.errors]

    def summary(self) -> str:
        """What a refusal says first: `N Celonis names did not resolve to one id` (and in which
        environment)."""
        count = len(self.errors)
        environment = self.manifest.environment
        where = f" in environment {environment!r}" if environment else ""
        return f"{count} Celonis name{'' if count == 1 else 's'} did not resolve to one id{where}"


def resolve_names(
    api: ReadApi, manifest: Manifest, pools: Sequence[PoolInfo] | None = None
) -> Resolution:
    """Every `celonis_name` of `manifest` looked up through `api`; the manifest returned has the
    ids (and `resolved`: what each name gave) when there are no problems. `pools`: the pool
    list when the command has read it already (runner.api.first_contact), else it is read."""
    if not manifest.by_name:
        return Resolution(manifest)
    locate = Locator(manifest)
    result = Resolution(manifest, requests=0 if pools is not None else 1)
    remote_pools = list(pools) if pools is not None else api.list_pools()
    pool_ids = _pool_ids(manifest, remote_pools, locate, result.problems)
    for pool_id in sorted(_pools_to_list(manifest, pool_ids)):
        result.job_lists[pool_id] = api.list_jobs(pool_id)
        result.requests += 1
    jobs: dict[str, tuple[str, str]] = {}
    for job in manifest.jobs.values():
        pool_id = pool_ids.get(job.pool, job.pool_id)
        if not pool_id:
            continue  # its pool's name is the problem, reported already
        job_id = _job_id(job, result.job_lists.get(pool_id), locate, result.problems)
        if job_id:
            jobs[job.name] = (pool_id, job_id)
    result.problems = sort_problems(result.problems)
    result.found = jobs
    if not result.errors:
        result.manifest = _with_ids(manifest, pool_ids, jobs)
    return result


def _pool_ids(
    manifest: Manifest, remote: Sequence[PoolInfo], locate: Locator, problems: list[Problem]
) -> dict[str, str]:
    """The id of each pool of the manifest that one has (a problem for each that has none)."""
    pool_ids: dict[str, str] = {}
    for pool in manifest.pools.values():
        found = _pool_id(pool, remote, locate, problems)
        if found:
            pool_ids[pool.name] = found
    return pool_ids


def _pools_to_list(manifest: Manifest, pool_ids: Mapping[str, str]) -> set[str]:
    """The pools whose job list is needed: those with a job given by name."""
    named = [j for j in manifest.jobs.values() if j.celonis_name]
    return {pool_ids.get(j.pool, j.pool_id) for j in named} - {""}


def _pool_id(
    pool: Pool, remote: Sequence[PoolInfo], locate: Locator, problems: list[Problem]
) -> str | None:
    """The pool's id: its own, or the one pool of its `celonis_name`."""
    name = pool.celonis_name
    if name is None:
        return pool.pool_id or None
    if pool.pool_id:
        found, problem = _pinned(pool.pool_id, name, remote, "pool", "not in this team")
    else:
        found, problem = _by_name(name, remote, "data pool", "this team")
    if problem is not None:
        problems.append(locate.at(("pools", pool.name, "celonis_name"), pool.line, problem))
    return found


def _job_id(
    job: Job, listed: list[JobInfo] | None, locate: Locator, problems: list[Problem]
) -> str | None:
    """The job's id: its own, or the one job of its pool with its `celonis_name`."""
    name = job.celonis_name
    if name is None or listed is None:
        return job.job_id or None
    where = f"pool '{job.pool}'"
    if job.job_id:
        found, problem = _pinned(job.job_id, name, listed, "job", f"not in {where}")
    else:
        found, problem = _by_name(name, listed, "data job", where)
    if problem is not None:
        problems.append(locate.at(("jobs", job.name, "celonis_name"), job.line, problem))
    return found


def _pinned(
    own_id: str, name: str, listed: Sequence[PoolInfo | JobInfo], what: str, missing: str
) -> tuple[str | None, str | None]:
    """An `id` given beside `celonis_name`: (the id, None) when Celonis names it so, else
    (None, the problem)."""
    by_id = next((x for x in listed if x.id.lower() == own_id), None)
    if by_id is not None and by_id.name == name:
        return own_id, None
    shown = f"named {by_id.name!r}" if by_id is not None else missing
    return None, f"{what} {own_id} is {shown}, not {name!r}: fix the id or the name"


def _by_name(
    name: str, listed: Sequence[PoolInfo | JobInfo], kind: str, where: str
) -> tuple[str | None, str | None]:
    """(the one id of that name, None), or (None, why not: none or several)."""
    matches = [x for x in listed if x.name == name]
    if len(matches) == 1:
        return matches[0].id.lower(), None
    return None, _not_one(kind, name, matches, listed, where)


def _not_one(
    kind: str,
    name: str,
    matches: Sequence[PoolInfo | JobInfo],
    remote: Iterable[PoolInfo | JobInfo],
    where: str,
) -> str:
    if matches:
        ids = ", ".join(sorted(m.id for m in matches))
        return (
            f"{len(matches)} {kind}s in {where} are named {name!r} ({ids}); a name must pick one:"
            " add 'id' beside it (or rename one in Celonis)"
        )
    names = [r.name for r in remote if r.name]
    return f"no {kind} named {name!r} in {where}{did_you_mean(name, names)}"


def _with_ids(
    manifest: Manifest, pool_ids: Mapping[str, str], jobs: Mapping[str, tuple[str, str]]
) -> Manifest:
    """The manifest with every looked-up id in place, and `resolved` saying which they are."""
    resolved: dict[str, str] = {}
    pools = dict(manifest.pools)
    for name, pool in manifest.pools.items():
        if pool.celonis_name and name in pool_ids:
            pools[name] = dataclasses.replace(pool, pool_id=pool_ids[name])
            resolved[f"pools.{name}"] = pool_ids[name]
    new_jobs = dict(manifest.jobs)
    for name, job in manifest.jobs.items():
        pool_id, job_id = jobs.get(name, (job.pool_id, job.job_id))
        if job.celonis_name:
            resolved[f"jobs.{name}"] = job_id
        if (pool_id, job_id) != (job.pool_id, job.job_id):
            new_jobs[name] = dataclasses.replace(job, pool_id=pool_id, job_id=job_id)
    return dataclasses.replace(manifest, pools=pools, jobs=new_jobs, resolved=resolved)
