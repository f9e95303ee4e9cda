"""A data job's tasks through the API: its task list, an extraction's tables, its data model
loads, and how each task of one of its executions went.

Reads `GET .../jobs/{job}/tasks/`, `.../extractions/{id}/expanded`, `.../loads` and the task
items of an execution's log. Turning a manifest's task names into ids is
runner.preflight.task_names. See docs/celonis-api.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from runner.api.errors import ProtocolError
from runner.api.transport import Transport, shown_path
from runner.task_records import JobTasks, LoadInfo, TaskInfo, TaskResult


class ExecutionReads(Protocol):
    """What the task reads need of `runner.api.CelonisClient`, which builds on this module."""

    transport: Transport

    def task_error_lines(
        self, pool_id: str, job_id: str, execution_id: str, item_id: str
    ) -> list[str]: ...


class TaskReader:
    """Read-only task requests over the client's Transport (retries and deadlines included)."""

    def __init__(self, client: ExecutionReads) -> None:
        self.client = client
        self.transport: Transport = client.transport

    def results(self, pool_id: str, job_id: str, execution_id: str) -> JobTasks:
        """The job's tasks now, and the task items of execution `execution_id` (the one this
        run watched end) in their order, with the ERROR lines of each failed one."""
        task_list = self.tasks(pool_id, job_id)
        kinds = {t.id.lower(): t.type for t in task_list}
        results = [
            dataclasses.replace(r, type=kinds.get(r.id.lower()))
            for r in self._results(pool_id, job_id, execution_id)
        ]
        return JobTasks(tuple(results), tuple(task_list))

    def _results(self, pool_id: str, job_id: str, execution_id: str) -> list[TaskResult]:
        path = f"/integration/api/pools/{pool_id}/logs/executions"
        params: dict[str, str | int] = {"executionId": execution_id, "type": "TASK", "id": job_id}
        answer = self.transport.get_json(path, params, pool_id=pool_id, job_id=job_id)
        items = _objects(answer, shown_path(path, params))
        items = sorted(items, key=lambda i: _int(i.get("executionOrder")))
        return [self._result(pool_id, job_id, execution_id, item) for item in items]

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
