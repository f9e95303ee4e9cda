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
from collections.abc import Iterable, Mapping
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


def resolve_names(api: ReadApi, manifest: Manifest) -> Resolution:
    """Every `celonis_name` of `manifest` looked up through `api`; the manifest returned has the
    ids (and `resolved`: what each name gave) when there are no problems."""
    if not manifest.by_name:
        return Resolution(manifest)
    locate = Locator(manifest)
    result = Resolution(manifest, requests=1)
    remote_pools = api.list_pools()
    pool_ids: dict[str, str] = {}
    for pool in manifest.pools.values():
        found = _pool_id(pool, remote_pools, locate, result.problems)
        if found:
            pool_ids[pool.name] = found
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


def _pools_to_list(manifest: Manifest, pool_ids: Mapping[str, str]) -> set[str]:
    """The pools whose job list is needed: those with a job given by name."""
    named = [j for j in manifest.jobs.values() if j.celonis_name]
    return {pool_ids.get(j.pool, j.pool_id) for j in named} - {""}


def _pool_id(
    pool: Pool, remote: list[PoolInfo], locate: Locator, problems: list[Problem]
) -> str | None:
    """The pool's id: its own, or the one pool of its `celonis_name`."""
    if pool.celonis_name is None:
        return pool.pool_id or None
    name = pool.celonis_name
    path = ("pools", pool.name, "celonis_name")
    matches = [p for p in remote if p.name == name]
    if pool.pool_id:
        by_id = next((p for p in remote if p.id.lower() == pool.pool_id), None)
        if by_id is not None and by_id.name == name:
            return pool.pool_id
        shown = f"named {by_id.name!r}" if by_id is not None else "not in this team"
        problems.append(
            locate.at(
                path,
                pool.line,
                f"pool {pool.pool_id} is {shown}, not {name!r}: fix the id or the name",
            )
        )
        return None
    if len(matches) == 1:
        return matches[0].id.lower()
    problems.append(
        locate.at(path, pool.line, _not_one("data pool", name, matches, remote, "this team"))
    )
    return None


def _job_id(
    job: Job, listed: list[JobInfo] | None, locate: Locator, problems: list[Problem]
) -> str | None:
    """The job's id: its own, or the one job of its pool with its `celonis_name`."""
    if job.celonis_name is None or listed is None:
        return job.job_id or None
    name = job.celonis_name
    path = ("jobs", job.name, "celonis_name")
    if job.job_id:
        by_id = next((j for j in listed if j.id.lower() == job.job_id), None)
        if by_id is not None and by_id.name == name:
            return job.job_id
        shown = f"named {by_id.name!r}" if by_id is not None else f"not in pool '{job.pool}'"
        problems.append(
            locate.at(
                path, job.line, f"job {job.job_id} is {shown}, not {name!r}: fix the id or the name"
            )
        )
        return None
    matches = [j for j in listed if j.name == name]
    if len(matches) == 1:
        return matches[0].id.lower()
    problems.append(
        locate.at(path, job.line, _not_one("data job", name, matches, listed, f"pool '{job.pool}'"))
    )
    return None


def _not_one(
    kind: str,
    name: str,
    matches: list[PoolInfo] | list[JobInfo],
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
