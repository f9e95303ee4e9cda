"""Resolving the plan's subsets (issue 12) through the API: at the start of `run` and in
`plan --check-remote`. Each job that names tasks gets its ids; an unknown name is an error
placed at its key in the manifest, a disabled task a warning."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from runner.api.task_reader import TaskReader, resolve
from runner.plan.build import Plan, PlannedJob
from runner.preflight.remote import Locator
from runner.problems import Problem, sort_problems


@dataclass
class ResolvedPlan:
    plan: Plan
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def resolve_plan(reader: TaskReader, plan: Plan, scrub: Callable[[str], str] = str) -> ResolvedPlan:
    """The plan with every subset resolved to ids (when none of them had an error); `scrub`
    takes secrets out of the messages (a name in the manifest may come from the environment)."""
    locate: Locator | None = None
    problems: list[Problem] = []
    jobs: dict[str, PlannedJob] = {}
    for name, planned in plan.jobs.items():
        job = planned.job
        if job.tasks is None:
            jobs[name] = planned
            continue
        locate = locate or Locator(plan.manifest)
        tasks = reader.tasks(job.pool_id, job.job_id)
        found = resolve(reader, job.pool_id, job.job_id, job.tasks, tasks)
        for severity, listed in (("error", found.errors), ("warning", found.warnings)):
            problems += [
                locate.at(("jobs", name, *where), job.line, scrub(message), severity=severity)
                for where, message in listed
            ]
        jobs[name] = dataclasses.replace(planned, task_ids=found.ids)
    return ResolvedPlan(dataclasses.replace(plan, jobs=jobs), sort_problems(problems))
