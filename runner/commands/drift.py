"""`plan --check-remote --env A --env B ...`: one manifest checked in several environments.

Per job, whether it is found in each environment and under which id (names looked up as
`run` looks them up). Exit 1 when a job is missing in any of them: a check before promoting a
manifest from dev to QA to production. Exit 3 when an environment's API cannot be used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from runner import problems as out
from runner.commands.names import first_read, looked_up
from runner.commands.shared import RemoteOptions, load_checked, remote_client, write_columns
from runner.errors import ExitCode
from runner.manifest.model import Manifest
from runner.plan.build import build_plan
from runner.preflight.remote import check_plan
from runner.problems import Problem

MISSING = "missing"


@dataclass
class Found:
    """One environment: each job's id there, or MISSING; the problems that say why."""

    environment: str
    ids: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def run(
    file: str,
    environments: Sequence[str],
    remote: RemoteOptions,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    max_bytes: int,
    github: bool = False,
) -> int:
    found = []
    for env in dict.fromkeys(environments):
        manifest = load_checked(
            file, environ=environ, strict_env=True, stderr=stderr, max_bytes=max_bytes,
            environment=env,
        )  # fmt: skip
        stderr.write(f"Checking environment {env!r} (read-only)\n")
        found.append(_look(manifest, remote, environ, stderr))
    for each in found:
        if github:
            out.write_github(each.problems, stderr)
        out.write_text(each.problems, stderr)
    write_table(found, stdout)
    lacking = [f.environment for f in found if MISSING in f.ids.values()]
    compared = ", ".join(f.environment for f in found)
    verdict = f"jobs missing in {', '.join(lacking)}" if lacking else "every job found in each"
    stderr.write(f"Drift check of {compared}: {verdict}\n")
    return ExitCode.JOB_FAILED if lacking else ExitCode.OK


def _look(
    manifest: Manifest, remote: RemoteOptions, environ: Mapping[str, str], stderr: TextIO
) -> Found:
    """Where each job of `manifest` is in its environment's team."""
    env = manifest.environment or ""
    result = Found(env)
    with remote_client(manifest, remote, environ, stderr) as (client, _):
        pools = first_read(client, embedded=remote.emulator)
        resolution = looked_up(client, manifest, pools)
        result.problems += _labelled(resolution.problems, env)
        gone = set(resolution.unresolved)
        if not resolution.errors:
            check = check_plan(client, build_plan(resolution.manifest), listed=not remote.emulator)
            result.problems += _labelled(check.errors, env)
            gone |= set(check.missing)
    for job in resolution.manifest.jobs.values():
        job_id = resolution.found.get(job.name, ("", job.job_id))[1]
        lost = {f"jobs.{job.name}", f"pools.{job.pool}"} & gone
        result.ids[job.name] = MISSING if lost or not job_id else job_id
    return result


def _labelled(problems: Sequence[Problem], env: str) -> list[Problem]:
    return [
        dataclasses.replace(p, message=f"in environment {env!r}: {p.message}") for p in problems
    ]


def write_table(found: Sequence[Found], stream: TextIO) -> None:
    """One row per job, one column per environment: the job's id there, or `missing`."""
    if not found:
        return
    names = list(found[0].ids)
    header = ["JOB", *(f.environment for f in found)]
    rows = [[name, *(f.ids.get(name, MISSING) for f in found)] for name in names]
    write_columns([header, *rows], stream)
