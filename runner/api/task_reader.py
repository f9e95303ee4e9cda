"""A data job's tasks through the API: reading them, and turning the names a manifest gives
(`extractions`, `transformations`, `data_models`) into the ids the internal execute takes.

Reads `GET .../jobs/{job}/tasks/`, `.../extractions/{id}/expanded` (only for an extraction
whose tables are named) and `.../loads` (only when data models are named). A name matches a
task's name exactly, or its task instance id (any case). See docs/celonis-api.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from runner.api.errors import ProtocolError
from runner.api.transport import Transport, shown_path
from runner.api.types import ExecutionInfo
from runner.manifest.subset import TaskSubset, Where
from runner.problems import Suggestions
from runner.shared_types import Tables
from runner.task_records import (
    DATA_MODEL_LOAD,
    EXTRACTION,
    TRANSFORMATION,
    JobTasks,
    LoadInfo,
    TaskIds,
    TaskInfo,
    TaskResult,
)
from runner.text import printable


class ExecutionReads(Protocol):
    """What the task reads need of `runner.api.CelonisClient`, which builds on this module."""

    transport: Transport

    def latest_execution(self, pool_id: str, job_id: str) -> ExecutionInfo | None: ...

    def task_error_lines(
        self, pool_id: str, job_id: str, execution_id: str, item_id: str
    ) -> list[str]: ...


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


class TaskReader:
    """Read-only task requests over the client's Transport (retries and deadlines included)."""

    def __init__(self, client: ExecutionReads) -> None:
        self.client = client
        self.transport: Transport = client.transport

    def results(self, pool_id: str, job_id: str) -> JobTasks:
        """The job's tasks now, and the task items of its newest execution (the one this run
        watched end) in their order, with the ERROR lines of each failed one."""
        task_list = self.tasks(pool_id, job_id)
        kinds = {t.id.lower(): t.type for t in task_list}
        results = [
            dataclasses.replace(r, type=kinds.get(r.id.lower()))
            for r in self._results(pool_id, job_id)
        ]
        return JobTasks(tuple(results), tuple(task_list))

    def _results(self, pool_id: str, job_id: str) -> list[TaskResult]:
        latest = self.client.latest_execution(pool_id, job_id)
        if latest is None or latest.execution_id is None:
            return []
        path = f"/integration/api/pools/{pool_id}/logs/executions"
        params: dict[str, str | int] = {
            "executionId": latest.execution_id,
            "type": "TASK",
            "id": job_id,
        }
        answer = self.transport.get_json(path, params, pool_id=pool_id, job_id=job_id)
        items = _objects(answer, shown_path(path, params))
        items = sorted(items, key=lambda i: _int(i.get("executionOrder")))
        return [self._result(pool_id, job_id, latest.execution_id, item) for item in items]

    def _result(
        self, pool_id: str, job_id: str, execution_id: str, item: Mapping[str, object]
    ) -> TaskResult:
        item_id = str(item.get("id") or "")
        status = str(item.get("status") or "UNKNOWN")
        error = None
        if status == "FAIL" and item_id:
            lines = self.client.task_error_lines(pool_id, job_id, execution_id, item_id)
            error = "\n".join(lines) or None
        return TaskResult(
            id=str(item.get("taskId") or item_id),
            name=str(item.get("name") or item.get("taskId") or item_id),
            status=status,
            started_at=_seconds(item.get("startDate")),
            finished_at=_seconds(item.get("endDate")),
            error=error,
        )

    def _get(self, pool_id: str, job_id: str, tail: str) -> tuple[object, str]:
        path = f"/integration/api/pools/{pool_id}/jobs/{job_id}/{tail}"
        answer = self.transport.get_json(path, None, pool_id=pool_id, job_id=job_id)
        return answer, shown_path(path, None)

    def tasks(self, pool_id: str, job_id: str) -> list[TaskInfo]:
        answer, shown = self._get(pool_id, job_id, "tasks/")
        found: list[TaskInfo] = []
        for item in _objects(answer, shown):
            task_id, name = item.get("id"), item.get("name")
            if not isinstance(task_id, str) or not isinstance(name, str):
                raise ProtocolError(f"GET {shown}: a task without an id or a name")
            order = item.get("executionOrder")
            found.append(
                TaskInfo(
                    task_id,
                    name,
                    str(item.get("taskType")),
                    item.get("disabled") is True,
                    order if isinstance(order, int) else len(found),
                )
            )
        return sorted(found, key=lambda t: t.order)

    def tables(self, pool_id: str, job_id: str, extraction_id: str) -> list[str]:
        answer, shown = self._get(pool_id, job_id, f"extractions/{extraction_id}/expanded")
        if not isinstance(answer, dict):
            raise ProtocolError(f"GET {shown}: expected a JSON object")
        tables = _objects(answer.get("tables", []), shown)
        return [str(t["tableName"]) for t in tables if isinstance(t.get("tableName"), str)]

    def loads(self, pool_id: str, job_id: str) -> list[LoadInfo]:
        answer, shown = self._get(pool_id, job_id, "loads")
        found: list[LoadInfo] = []
        for item in _objects(answer, shown):
            load_id, name = item.get("id"), item.get("dataModelName")
            if isinstance(load_id, str):
                name = name if isinstance(name, str) else load_id
                found.append(LoadInfo(load_id, name, item.get("disabled") is True))
        return found


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _seconds(value: object) -> float | None:
    """Epoch seconds from Celonis' epoch milliseconds (None for anything else)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value / 1000.0 if 0 < value < 1e15 else None  # NaN fails the comparison too


def _objects(answer: object, shown: str) -> list[Mapping[str, object]]:
    if not isinstance(answer, list) or not all(isinstance(i, dict) for i in answer):
        raise ProtocolError(f"GET {shown}: expected a list of JSON objects")
    return answer


def resolve(
    reader: TaskReader, pool_id: str, job_id: str, subset: TaskSubset, tasks: Sequence[TaskInfo]
) -> Resolution:
    """The ids of `subset` among the job's `tasks`; unknown names are errors with the closest
    names Celonis has, disabled tasks warnings."""
    found = Resolution()
    names: dict[str, str] = {t.id: t.name for t in tasks}
    matcher = _Matcher(tasks, found)
    extractions: list[tuple[str, Tables]] | None = None
    if subset.extractions is not None:
        extractions = []
        for name, tables in subset.extractions:
            task = matcher.find(EXTRACTION, ("extractions", name), name)
            if task is not None:
                extractions.append((task.id, tables))
                if tables is not None:
                    _check_tables(reader, (pool_id, job_id), task, (name, tables), found)
    transformations = matcher.find_all(TRANSFORMATION, "transformations", subset.transformations)
    data_models = None
    if subset.data_models is not None:
        loads = reader.loads(pool_id, job_id) if subset.data_models else []
        data_models = _match_loads(loads, subset.data_models, tasks, found)
        names.update({load.id: load.name for load in loads})
    if not found.errors:
        found.ids = TaskIds(
            None if extractions is None else tuple(extractions),
            transformations,
            data_models,
            names,
        )
    return found


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
        if len(named) > 1:
            ids = ", ".join(t.id for t in named)
            self.found.errors.append(
                (key, f"the job has {len(named)} {word}s named {_q(wanted)} ({ids}): give the id")
            )
            return None
        if not named:
            hint = Suggestions(t.name for t in of_kind).hint(wanted)
            have = "" if hint or of_kind else f" (the job has no {word})"
            self.found.errors.append((key, f"the data job has no {word} {_q(wanted)}{hint}{have}"))
            return None
        if named[0].disabled:
            self.found.warnings.append(
                (key, f"{word} {_q(named[0].name)} is disabled in Celonis, which may not run it")
            )
        return named[0]


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
