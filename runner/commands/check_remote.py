"""`celonis-runner plan --check-remote`: the plan checked against the API, read-only.

Exit 0 (all found; warnings allowed), 2 (a pool or job in the manifest does
not exist there), 3 (the API could not be used: credentials refused, no
permission on a pool, network or server errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

from runner import problems as out
from runner.api import CelonisClient
from runner.api.task_reader import TaskReader
from runner.commands.names import first_read, looked_up
from runner.commands.shared import RemoteOptions, remote_client
from runner.errors import ExitCode
from runner.manifest.model import Manifest
from runner.plan.build import Plan
from runner.preflight.remote import RemoteCheck, check_plan
from runner.preflight.task_names import resolve_plan
from runner.problems import Problem, sort_problems


def run(
    plan: Plan,
    options: RemoteOptions,
    *,
    environ: Mapping[str, str],
    stderr: TextIO,
    github: bool = False,
    replan: Callable[[Manifest], Plan] | None = None,
) -> int:
    """`replan`: the plan of the manifest with its Celonis names' ids (when it has names)."""
    with remote_client(plan.manifest, options, environ, stderr) as (client, redactor):
        where = f" (environment {plan.manifest.environment})" if plan.manifest.environment else ""
        stderr.write(
            f"Checking {len(plan.jobs)} job{_s(len(plan.jobs))} against {client.base_url}"
            f"{where} (read-only)\n"
        )
        pools = first_read(client, embedded=options.emulator)
        resolution = looked_up(client, plan.manifest, pools)
        if resolution.errors:
            return _unresolved(resolution.problems, stderr, github)
        if replan is not None and plan.manifest.by_name:
            plan = replan(resolution.manifest)
        result = check_plan(client, plan, listed=not options.emulator)
        result.problems = sort_problems([*resolution.problems, *result.problems])
        if not result.missing and any(p.job.tasks is not None for p in plan.jobs.values()):
            check_subsets(client, plan, result, redactor.scrub)
    return _told(result, stderr, github)


def _told(result: RemoteCheck, stderr: TextIO, github: bool) -> int:
    """The check's problems and summary written; its exit code."""
    if github:
        out.write_github(result.problems, stderr)
    out.write_text(result.problems, stderr)
    stderr.write(summary(result) + "\n")
    if result.missing:
        return ExitCode.INVALID  # surely wrong in the manifest, whatever else is
    if result.access_denied:
        return ExitCode.API_UNUSABLE
    return ExitCode.OK


def _unresolved(problems: list[Problem], stderr: TextIO, github: bool) -> int:
    """Names that gave no single id: the manifest is wrong for this team (exit 2)."""
    if github:
        out.write_github(problems, stderr)
    out.write_text(problems, stderr)
    errors = len(out.errors_of(problems))
    stderr.write(f"Remote check found {errors} problem{_s(errors)}: names not found in Celonis\n")
    return ExitCode.INVALID


def check_subsets(
    client: CelonisClient, plan: Plan, result: RemoteCheck, scrub: Callable[[str], str]
) -> None:
    """The task names of the plan's jobs, resolved to ids as `run` resolves them."""
    resolved = resolve_plan(TaskReader(client), plan, scrub)
    result.problems = sort_problems([*result.problems, *resolved.problems])
    result.missing += [p.path for p in resolved.errors]


def summary(result: RemoteCheck) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    found = (
        f"{result.pools_found} of {result.pools_checked} pool{_s(result.pools_checked)} and "
        f"{result.jobs_found} of {result.jobs_checked} job{_s(result.jobs_checked)} found"
    )
    verdict = "ok" if not errors else f"found {errors} problem{_s(errors)}"
    if warnings:
        verdict += f", {warnings} warning{_s(warnings)}"
    return f"Remote check {verdict}: credentials accepted, {found}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
