"""A plan's task names resolved to ids through the API, at the start of `run` and in
`plan --check-remote`. Each job that names tasks gets its ids; a name matches a task's name
exactly, or its task instance id (any case). An unknown name is an error placed at its key in
the manifest (with the closest names Celonis has), a disabled task a warning. The API is read
only for what is named: an extraction's tables when they are named, the loads when data models
are."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runner.api.task_reader import TaskReader
from runner.manifest.model import Job
from runner.manifest.task_subset import TaskSubset, Where
from runner.plan.build import Plan, PlannedJob
from runner.preflight.remote import Locator
from runner.problems import COMMAND_LINE, Problem, Severity, Suggestions, sort_problems
from runner.shared_types import Tables
from runner.task_records import (
    DATA_MODEL_LOAD,
    EXTRACTION,
    TRANSFORMATION,
    LoadInfo,
    TaskIds,
    TaskInfo,
)
from runner.text import printable


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
        problems += [_placed(locate, job, w, scrub(m), "error") for w, m in found.errors]
        problems += [_placed(locate, job, w, scrub(m), "warning") for w, m in found.warnings]
        jobs[name] = dataclasses.replace(planned, task_ids=found.ids)
    return ResolvedPlan(dataclasses.replace(plan, jobs=jobs), sort_problems(problems))


def _placed(locate: Locator, job: Job, where: Where, message: str, severity: Severity) -> Problem:
    """At the key in the manifest, or for a subset chosen with `--tasks`, at that option."""
    if job.tasks_option is None:
        return locate.at(("jobs", job.name, *where), job.line, message, severity=severity)
    return Problem(COMMAND_LINE, 0, 0, f"--tasks {job.tasks_option!r}", message, severity)


_KIND_WORD = {
    EXTRACTION: "extraction",
    TRANSFORMATION: "transformation",
    DATA_MODEL_LOAD: "data model load",
}


@dataclass
class Resolution:
    """What resolving one job's subset found: the ids, or errors; warnings either way."""

    ids: TaskIds | None = None
    errors: list[tuple[Where, str]] = field(default_factory=list)
    """(where in the job's manifest entry, message)."""
    warnings: list[tuple[Where, str]] = field(default_factory=list)


def resolve(
    reader: TaskReader, pool_id: str, job_id: str, subset: TaskSubset, tasks: Sequence[TaskInfo]
) -> Resolution:
    """The ids of `subset` among the job's `tasks`; unknown names are errors with the closest
    names Celonis has, disabled tasks warnings."""
    found = Resolution()
    names: dict[str, str] = {t.id: t.name for t in tasks}
    matcher = _Matcher(tasks, found)
    extractions = _extractions(reader, (pool_id, job_id), subset, matcher)
    transformations = matcher.find_all(TRANSFORMATION, "transformations", subset.transformations)
    data_models = None
    if subset.data_models is not None:
        loads = reader.loads(pool_id, job_id) if subset.data_models else []
        data_models = _match_loads(loads, subset.data_models, tasks, found)
        names.update({load.id: load.name for load in loads})
    if not found.errors:
        found.ids = TaskIds(extractions, transformations, data_models, names)
    return found


def _extractions(
    reader: TaskReader, job: tuple[str, str], subset: TaskSubset, matcher: _Matcher
) -> tuple[tuple[str, Tables], ...] | None:
    """The ids of the subset's extractions, each with its tables (checked against Celonis')."""
    if subset.extractions is None:
        return None
    extractions: list[tuple[str, Tables]] = []
    for name, tables in subset.extractions:
        task = matcher.find(EXTRACTION, ("extractions", name), name)
        if task is not None:
            extractions.append((task.id, tables))
            if tables is not None:
                _check_tables(reader, job, task, (name, tables), matcher.found)
    return _merged(extractions)


def _merged(extractions: Sequence[tuple[str, Tables]]) -> tuple[tuple[str, Tables], ...]:
    """An extraction named and also given by id is sent once, with the tables of both (all of
    them when either asks for all)."""
    merged: dict[str, Tables] = {}
    for task_id, tables in extractions:
        if task_id not in merged:
            merged[task_id] = tables
            continue
        before = merged[task_id]
        both = None if before is None or tables is None else (*before, *tables)
        merged[task_id] = None if both is None else tuple(dict.fromkeys(both))
    return tuple(merged.items())


class _Matcher:
    def __init__(self, tasks: Sequence[TaskInfo], found: Resolution) -> None:
        self.tasks = tasks
        self.found = found

    def find_all(
        self, kind: str, key: str, wanted: tuple[str, ...] | None
    ) -> tuple[str, ...] | None:
        if wanted is None:
            return None
        tasks = [self.find(kind, (key, i), name) for i, name in enumerate(wanted)]
        # a task named and given by id is one task: sent once
        return tuple(dict.fromkeys(t.id for t in tasks if t is not None))

    def find(self, kind: str, key: Where, wanted: str) -> TaskInfo | None:
        of_kind = [t for t in self.tasks if t.type == kind]
        named = [t for t in of_kind if t.name == wanted] or [
            t for t in of_kind if t.id.lower() == wanted.lower()
        ]
        word = _KIND_WORD[kind]
        if len(named) != 1:
            self.found.errors.append((key, _not_one(word, wanted, named, of_kind)))
            return None
        if named[0].disabled:
            self.found.warnings.append(
                (key, f"{word} {_q(named[0].name)} is disabled in Celonis, which may not run it")
            )
        return named[0]


def _not_one(word: str, wanted: str, named: Sequence[TaskInfo], of_kind: Sequence[TaskInfo]) -> str:
    """The error for a name that matches several tasks of its kind (`named`), or none."""
    if named:
        ids = ", ".join(t.id for t in named)
        return f"the job has {len(named)} {word}s named {_q(wanted)} ({ids}): give the id"
    hint = Suggestions(t.name for t in of_kind).hint(wanted)
    have = "" if hint or of_kind else f" (the job has no {word})"
    return f"the data job has no {word} {_q(wanted)}{hint}{have}"


def _match_loads(
    loads: Sequence[LoadInfo], wanted: tuple[str, ...], tasks: Sequence[TaskInfo], found: Resolution
) -> tuple[str, ...]:
    """Data model loads by data model name, load id, or the name of the load's task."""
    task_names = {t.id: t.name for t in tasks if t.type == DATA_MODEL_LOAD}
    chosen = []
    for index, name in enumerate(wanted):
        match = [
            load
            for load in loads
            if name in (load.name, task_names.get(load.id)) or load.id.lower() == name.lower()
        ]
        if not match:
            hint = Suggestions(load.name for load in loads).hint(name)
            found.errors.append(
                (("data_models", index), f"the data job loads no data model {_q(name)}{hint}")
            )
            continue
        if match[0].disabled:
            found.warnings.append(
                (
                    ("data_models", index),
                    f"data model load {_q(match[0].name)} is disabled in Celonis",
                )
            )
        chosen.append(match[0].id)
    return tuple(dict.fromkeys(chosen))  # a load named and given by id is sent once


def _check_tables(
    reader: TaskReader,
    ids: tuple[str, str],
    task: TaskInfo,
    wanted: tuple[str, tuple[str, ...]],
    found: Resolution,
) -> None:
    """Every named table is one the extraction has (`wanted`: the name as written, tables)."""
    task_key, tables = wanted
    known = reader.tables(ids[0], ids[1], task.id)
    hints = Suggestions(known)
    for index, table in enumerate(tables):
        if table not in known:
            found.errors.append(
                (
                    ("extractions", task_key, index),
                    f"extraction {_q(task.name)} has no table {_q(table)}{hints.hint(table)}",
                )
            )


def _q(text: str) -> str:
    """A name from the manifest or from Celonis, quoted and on one line."""
    return f"'{printable(text)[:120]}'"
