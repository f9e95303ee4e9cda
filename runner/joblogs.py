"""A job's executions as Celonis logs them: the history, each task's outcome, the failed tasks' log lines.

For `celonis-runner logs`. Every request goes through one `GetJson` callable
(`reads_of(client)` builds it from the client), so the client's shape can
change without touching the rest. Dates are epoch milliseconds as the API
gives them; `find_run_execution` says which execution of the history a run
of ours started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from runner.api.errors import ProtocolError

if TYPE_CHECKING:
    from runner.api.client import CelonisClient

HISTORY_PAGE = 50
HISTORY_MAX_PAGES = 20
"""At most this many history pages are read looking for a run's execution (newest first)."""
LOG_PAGE = 200
LOG_MAX_PAGES = 5
RUN_MATCH_SKEW = 300.0
"""Seconds between the time a run sent a job's execute (its own clock) and the start date
Celonis recorded (its clock) that still count as the same execution."""

LEVEL_ORDER = {"ERROR": 0, "WARNING": 1, "WARN": 1, "INFO": 2, "DEBUG": 3}


class GetJson(Protocol):
    def __call__(self, path: str, params: Mapping[str, str | int]) -> object: ...


def reads_of(client: CelonisClient, pool_id: str, job_id: str) -> GetJson:
    """The one place that touches the client: its transport's `get_json` (retries, auth,
    errors), bound to the job so the client's log events and errors name it."""
    transport = client.transport

    def get(path: str, params: Mapping[str, str | int]) -> object:
        return transport.get_json(path, params, pool_id=pool_id, job_id=job_id)

    return get


@dataclass(frozen=True)
class Item:
    """An ExecutionItem: the job's execution (type JOB) or one of its tasks (type TASK)."""

    id: str | None
    execution_id: str | None
    name: str | None
    status: str | None
    start_ms: int | None
    end_ms: int | None
    type: str | None = None


@dataclass(frozen=True)
class LogLine:
    level: str
    date_ms: int | None
    message: str


@dataclass(frozen=True)
class Task:
    item: Item
    lines: tuple[LogLine, ...] = ()
    """Its log lines, ERROR first, only for a task that failed."""


@dataclass(frozen=True)
class ExecutionLog:
    execution: Item
    tasks: tuple[Task, ...] = ()
    job_lines: tuple[LogLine, ...] = field(default=())
    """The job item's log lines, ERROR first, when the execution failed and no task says why."""


def _unexpected(path: str, what: str) -> ProtocolError:
    return ProtocolError(f"GET {path}: unexpected answer: {what}", method="GET", path=path)


def _objects(answer: object, path: str) -> list[Mapping[str, object]]:
    if not isinstance(answer, list) or not all(isinstance(i, dict) for i in answer):
        raise _unexpected(path, "expected a list of JSON objects")
    return list(answer)


def _text(item: Mapping[str, object], key: str) -> str | None:
    value = item.get(key)
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, str | int) else None


def epoch_ms(value: object) -> int | None:
    """Epoch milliseconds from a number, digits or an ISO-8601 date; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def _item(data: Mapping[str, object]) -> Item:
    return Item(
        id=_text(data, "id"),
        execution_id=_text(data, "executionId"),
        name=_text(data, "name"),
        status=_text(data, "status"),
        start_ms=epoch_ms(data.get("startDate")),
        end_ms=epoch_ms(data.get("endDate")),
        type=_text(data, "type"),
    )


class JobLogs:
    """The reads for one job of one pool."""

    def __init__(self, get_json: GetJson, pool_id: str, job_id: str) -> None:
        self.get_json = get_json
        self.pool = f"/integration/api/pools/{pool_id}"
        self.job_id = job_id

    def history(self, page: int, limit: int = HISTORY_PAGE) -> tuple[list[Item], int]:
        """One page of the execution history (newest first) and the number of pages."""
        path = f"{self.pool}/logs/{self.job_id}/executions"
        answer = self.get_json(path, {"limit": limit, "page": page})
        if not isinstance(answer, dict):
            raise _unexpected(path, "expected a JSON object")
        items = [_item(i) for i in _objects(answer.get("executionItems") or [], path)]
        pages = answer.get("numOfPages")
        return items, pages if isinstance(pages, int) else 1

    def latest(self) -> Item | None:
        items, _ = self.history(0, 1)
        return items[0] if items else None

    def started_near(
        self, when: float, until: float | None = None, skew: float = RUN_MATCH_SKEW
    ) -> Item | None:
        """The execution a run started: see `closest_start`. Reads history pages (newest
        first) until they are older than `when - skew`."""
        found: list[Item] = []
        for page in range(HISTORY_MAX_PAGES):
            items, pages = self.history(page)
            found += items
            starts = [i.start_ms for i in items if i.start_ms is not None]
            if page + 1 >= pages or not items or (starts and min(starts) < (when - skew) * 1000):
                break
        return closest_start(found, when, until, skew)

    def tasks(self, execution_id: str) -> list[Item]:
        path = f"{self.pool}/logs/executions"
        answer = self.get_json(path, {"executionId": execution_id, "type": "TASK"})
        return [_item(i) for i in _objects(answer, path)]

    def lines(self, execution_id: str, item_id: str, item_type: str) -> list[LogLine]:
        """The item's log lines, ERROR first (then by level, each level in the API's order)."""
        path = f"{self.pool}/logs/executions/detail"
        lines: list[LogLine] = []
        for page in range(LOG_MAX_PAGES):
            params: dict[str, str | int] = {
                "executionId": execution_id,
                "id": item_id,
                "type": item_type,
                "limit": LOG_PAGE,
                "page": page,
            }
            answer = self.get_json(path, params)
            if not isinstance(answer, dict):
                raise _unexpected(path, "expected a JSON object")
            for entry in _objects(answer.get("logMessages") or [], path):
                text = entry.get("logMessage")
                if isinstance(text, str) and text.strip():
                    level = str(entry.get("level") or "INFO").upper()
                    lines.append(LogLine(level, epoch_ms(entry.get("date")), text.rstrip()))
            pages = answer.get("numOfPages")
            if not isinstance(pages, int) or page + 1 >= pages:
                break
        return sorted(lines, key=lambda line: LEVEL_ORDER.get(line.level, 2))

    def read(self, execution: Item) -> ExecutionLog:
        """The execution with each task's outcome, and the log lines of what failed."""
        if execution.execution_id is None:
            return ExecutionLog(execution)
        tasks = []
        for item in self.tasks(execution.execution_id):
            failed = item.status == "FAIL" and item.id is not None
            lines = self.lines(execution.execution_id, item.id or "", "TASK") if failed else []
            tasks.append(Task(item, tuple(lines)))
        job_lines: list[LogLine] = []
        if execution.status == "FAIL" and not any(t.lines for t in tasks) and execution.id:
            job_lines = self.lines(execution.execution_id, execution.id, "JOB")
        return ExecutionLog(execution, tuple(tasks), tuple(job_lines))


def closest_start(
    items: list[Item], when: float, until: float | None = None, skew: float = RUN_MATCH_SKEW
) -> Item | None:
    """Of `items`, the one whose start is nearest `when` (epoch s), among those that started
    no earlier than `when - skew` and no later than `until + skew` (`until`: when the run saw
    the job end; without it, `when`). The window allows for the two clocks' difference, and
    for an execution Celonis queued before it started."""
    latest = max(when, until if until is not None else when) + skew
    near = [
        (abs(i.start_ms / 1000 - when), n, i)
        for n, i in enumerate(items)
        if i.start_ms is not None and when - skew <= i.start_ms / 1000 <= latest
    ]
    return min(near)[2] if near else None


def run_reference_time(entry: Mapping[str, object]) -> tuple[float, str] | None:
    """When a run sent the job's execute, from its state file entry, and which field said so:
    `sent_at` (the first POST), else `started_at`, else `intent_at` (just before the POST)."""
    for key in ("sent_at", "started_at", "intent_at"):
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), key
    return None
