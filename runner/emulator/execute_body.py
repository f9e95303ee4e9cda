"""The internal execute's JSON body: which tasks (and tables) of a job one execute runs.

The body is PyCelonis' `{poolId, jobId, mode, executeOnlySubsetOfExtractions,
extractions: [{extractionId, loadOnlySubsetOfTables, tables}],
executeOnlySubsetOfTransformations, transformations: [id],
loadOnlySubsetOfDataModels, dataModels: [{dataModelExecutionId, tables}]}`.
A flag that is false runs every enabled task of its kind. Ids the job does
not have are refused (400): Celonis' answer to them is not known, and a
client that sends them has a bug worth seeing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.emulator.scenario import ScenarioJob, ScenarioTask, TaskType
from runner.emulator.state import Subset, template_id

# (flag, list key, id key in a list entry or None for a bare id, task type)
_KINDS: tuple[tuple[str, str, str | None, TaskType], ...] = (
    ("executeOnlySubsetOfExtractions", "extractions", "extractionId", "EXTRACTION"),
    ("executeOnlySubsetOfTransformations", "transformations", None, "TRANSFORMATION"),
    ("loadOnlySubsetOfDataModels", "dataModels", "dataModelExecutionId", "DATA_MODEL_LOAD"),
)


class SubsetError(ValueError):
    """The body names something the job does not have, or is malformed."""


def parse_subset(body: Mapping[str, Any], job: ScenarioJob) -> Subset:
    """The tasks one execute runs, in the job's order; SubsetError for a bad body."""
    chosen: set[str] = set()
    tables: dict[str, tuple[str, ...]] = {}
    record: dict[str, Any] = {}
    for flag, key, id_key, kind in _KINDS:
        of_kind = {t.id: t for t in job.task_list if t.type == kind}
        if not body.get(flag):
            chosen |= _enabled(of_kind)
            continue
        entries = body.get(key)
        if not isinstance(entries, list):
            raise SubsetError(f"{flag} is true but {key} is not a list")
        picked = [_entry(entry, id_key, key, of_kind, tables) for entry in entries]
        chosen |= set(picked)
        record[key] = _recorded(picked, tables)
    tasks = tuple(t for t in job.task_list if t.id in chosen)
    return Subset(tasks, tables, record or None)


def _entry(
    entry: object,
    id_key: str | None,
    key: str,
    of_kind: Mapping[str, ScenarioTask],
    tables: dict[str, tuple[str, ...]],
) -> str:
    raw = entry.get(id_key) if id_key is not None and isinstance(entry, dict) else entry
    if not isinstance(raw, str) or raw.lower() not in of_kind:
        raise SubsetError(f"{key}: the data job has no such task {raw!r}")
    task = of_kind[raw.lower()]
    if isinstance(entry, dict) and (
        entry.get("loadOnlySubsetOfTables") or (key == "dataModels" and entry.get("tables"))
    ):
        tables[task.id] = _tables(entry.get("tables"), key, task)
    return task.id


def _tables(wanted: object, key: str, task: ScenarioTask) -> tuple[str, ...]:
    """The tables an entry limits its task to; SubsetError for names the task has not."""
    if not isinstance(wanted, list) or not all(isinstance(t, str) for t in wanted):
        raise SubsetError(f"{key}: tables of {task.id} must be a list of names or ids")
    known = set(task.tables) | {template_id(task, t) for t in task.tables}
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise SubsetError(f"{key}: task {task.name!r} has no table {unknown[0]!r}")
    return tuple(wanted)


def _enabled(of_kind: Mapping[str, ScenarioTask]) -> set[str]:
    return {t.id for t in of_kind.values() if not t.disabled}


def _recorded(picked: list[str], tables: Mapping[str, tuple[str, ...]]) -> list[Any]:
    """The entries as the journal keeps them: an id, or the id with its tables."""
    return [
        {"id": task_id, "tables": list(tables[task_id])} if task_id in tables else task_id
        for task_id in picked
    ]
