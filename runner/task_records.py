"""A data job's tasks as records: what Celonis lists (`TaskInfo`, `LoadInfo`), which ids one
execute runs (`TaskIds`) and how each task of an execution went (`TaskResult`, `JobTasks`).
No I/O: the API reads them (runner.api.task_reader), the plan, the engine, the state file and
the reports carry them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.shared_types import Tables

EXTRACTION = "EXTRACTION"
TRANSFORMATION = "TRANSFORMATION"
DATA_MODEL_LOAD = "DATA_MODEL_LOAD"


@dataclass(frozen=True)
class TaskInfo:
    """A task instance of a job (`id` is what the execute's subset names)."""

    id: str
    name: str
    type: str
    disabled: bool = False
    order: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type, "disabled": self.disabled}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInfo:
        return cls(
            str(data["id"]), str(data["name"]), str(data["type"]), data.get("disabled") is True
        )


@dataclass(frozen=True)
class LoadInfo:
    """A data model load of a job: `id` is its dataModelExecutionId."""

    id: str
    name: str
    disabled: bool = False


@dataclass(frozen=True)
class TaskResult:
    """How one task of an execution went: Celonis' status, its dates (epoch s) and, for a
    failure, Celonis' ERROR lines."""

    id: str
    name: str
    status: str
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    type: str | None = None
    """EXTRACTION, TRANSFORMATION or DATA_MODEL_LOAD (from the job's task list)."""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration,
            "error": self.error,
            "type": self.type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        """From a saved record; lenient, since saved files may come from older versions."""
        error, kind = data.get("error"), data.get("type")
        return cls(
            id=str(data.get("id") or data.get("name") or ""),
            name=str(data.get("name") or data.get("id") or ""),
            status=str(data.get("status") or ""),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            error=None if error is None else str(error),
            type=None if kind is None else str(kind),
        )


def _time(value: object) -> float | None:
    """A number of seconds, or None for anything else (a bool is no time)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def failure_text(results: Sequence[TaskResult]) -> str | None:
    """The ERROR lines of the failed tasks as one text (each line with its task's name when
    several tasks failed), like `CelonisClient.failure_reason`; None when there are none."""
    failed = [r for r in results if r.error]
    if not failed:
        return None
    if len(failed) == 1:
        return failed[0].error
    return "\n".join(f"{r.name}: {line}" for r in failed for line in (r.error or "").splitlines())


@dataclass(frozen=True)
class JobTasks:
    """What a job's end tells about its tasks: the results of its execution, and its task
    list at that moment (a resume of only the failed tasks checks it did not change)."""

    results: tuple[TaskResult, ...]
    task_list: tuple[TaskInfo, ...]


@dataclass(frozen=True)
class TaskIds:
    """A subset resolved to ids. Each kind: None = all its tasks, else the chosen ids (with the
    tables of an extraction, None = all its tables)."""

    extractions: tuple[tuple[str, Tables], ...] | None = None
    transformations: tuple[str, ...] | None = None
    data_models: tuple[str, ...] | None = None
    names: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Task id -> its name in Celonis, for messages and reports."""

    def body(self) -> dict[str, Any]:
        """The subset keys of the internal execute's body (PyCelonis' shape)."""
        extractions = self.extractions or ()
        return {
            "executeOnlySubsetOfExtractions": self.extractions is not None,
            "extractions": [
                {
                    "extractionId": task_id,
                    "loadOnlySubsetOfTables": tables is not None,
                    "tables": list(tables or ()),
                }
                for task_id, tables in extractions
            ],
            "executeOnlySubsetOfTransformations": self.transformations is not None,
            "transformations": list(self.transformations or ()),
            "loadOnlySubsetOfDataModels": self.data_models is not None,
            "dataModels": [
                {"dataModelExecutionId": load_id, "tables": []}
                for load_id in self.data_models or ()
            ],
        }

    def task_ids(self) -> list[str]:
        """Every task id this subset names (for the state file and messages)."""
        ids = [task_id for task_id, _ in self.extractions or ()]
        return ids + list(self.transformations or ()) + list(self.data_models or ())
