"""Which tasks of a data job a run executes: the `extractions`, `transformations` and
`data_models` keys of a job, and the same grammar on the command line (`--tasks`).

A kind that is not named runs all of its tasks (`None` below); an empty list or `none`
runs none of them. Names are Celonis' task names or task instance ids, resolved through the
API when a run starts (runner/api/task_reader.py); here they are only text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.shared_types import Tables

SUBSET_KEYS = ("extractions", "transformations", "data_models")


@dataclass(frozen=True)
class TaskSubset:
    """Part of a data job. Each kind: None = all its tasks, () = none, else the named ones."""

    extractions: tuple[tuple[str, Tables], ...] | None = None
    transformations: tuple[str, ...] | None = None
    data_models: tuple[str, ...] | None = None

    @property
    def is_whole(self) -> bool:
        return (
            self.extractions is None and self.transformations is None and (self.data_models is None)
        )

    @property
    def is_empty(self) -> bool:
        return self.extractions == () and self.transformations == () and self.data_models == ()

    def describe(self) -> str:
        """One line for people: `extractions: SAP orders [VBAK, VBAP]; transformations: none`."""
        parts = []
        if self.extractions is not None:
            names = [n if t is None else f"{n} [{', '.join(t)}]" for n, t in self.extractions]
            parts.append(f"extractions: {', '.join(names) or 'none'}")
        for kind, names_of in (
            ("transformations", self.transformations),
            ("data_models", self.data_models),
        ):
            if names_of is not None:
                parts.append(f"{kind}: {', '.join(names_of) or 'none'}")
        return "; ".join(parts) or "whole job"

    def to_dict(self) -> dict[str, Any]:
        """The kinds that are limited, as the manifest writes them (for JSON outputs)."""
        out: dict[str, Any] = {}
        if self.extractions is not None:
            out["extractions"] = {n: "all" if t is None else list(t) for n, t in self.extractions}
        if self.transformations is not None:
            out["transformations"] = list(self.transformations)
        if self.data_models is not None:
            out["data_models"] = list(self.data_models)
        return out


def subset_of(job: Mapping[str, Any]) -> TaskSubset | None:
    """The subset a checked manifest job names; None when it names no subset key."""
    if not any(key in job for key in SUBSET_KEYS):
        return None
    return TaskSubset(
        extractions=_extractions(job.get("extractions", "all")),
        transformations=_names(job.get("transformations", "all")),
        data_models=_names(job.get("data_models", "all")),
    )


def _names(value: object) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if value is None or value == "none":
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _extractions(value: object) -> tuple[tuple[str, Tables], ...] | None:
    if isinstance(value, dict):
        return tuple((str(name), _names(tables)) for name, tables in value.items())
    names = _names(value)
    return None if names is None else tuple((n, None) for n in names)


class SelectionError(ValueError):
    """A `--tasks` value that does not follow the grammar."""


def parse_tasks_option(value: str) -> tuple[str, dict[str, Any]]:
    """`JOB:KIND=A,B;KIND=...` or `JOB:NAME` (an extraction) into (job, manifest-style keys).

    Grammar (the manifest's keys on one line):
      refresh_orders:SAP orders                     one extraction, all its tables
      refresh_orders:SAP orders[VBAK,VBAP]          one extraction, two tables
      refresh_orders:transformations=Create O2C     one transformation
      refresh_orders:extractions=A,B[T1];data_models=none
    A kind not named runs none of its tasks when another kind is named: the
    flag says what to run.
    """
    job, sep, rest = value.partition(":")
    job = job.strip()
    if not sep or not job or not rest.strip():
        raise SelectionError(
            f"--tasks {value!r}: write JOB:TASKS, e.g. 'refresh_orders:SAP orders'"
        )
    keys: dict[str, Any] = {}
    for clause in _split(rest, ";"):
        kind, eq, names = clause.partition("=")
        if not eq:
            kind, names = "extractions", clause
        kind = kind.strip()
        if kind not in SUBSET_KEYS:
            raise SelectionError(
                f"--tasks {value!r}: unknown kind {kind!r}; use extractions, transformations "
                "or data_models"
            )
        if kind in keys:
            raise SelectionError(f"--tasks {value!r}: {kind} named twice")
        keys[kind] = _clause(kind, names.strip(), value)
    return job, {k: keys.get(k, []) for k in SUBSET_KEYS}


def _clause(kind: str, names: str, value: str) -> Any:
    if names in ("all", "none"):
        return names
    items = _split(names, ",")
    if kind != "extractions":
        if any("[" in item for item in items):
            raise SelectionError(f"--tasks {value!r}: only extractions have tables")
        return items
    return _extraction_clause(items, value)


def _extraction_clause(items: list[str], value: str) -> dict[str, Any]:
    """Extraction name -> its tables, or "all" when it has no [...]."""
    out: dict[str, Any] = {}
    for item in items:
        name, bracket, tables = item.partition("[")
        if bracket and not tables.endswith("]"):
            raise SelectionError(f"--tasks {value!r}: close the table list of {name!r} with ']'")
        chosen = [t.strip() for t in tables[:-1].split(",") if t.strip()]
        out[name.strip()] = chosen if bracket else "all"
    return out


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets: a table list uses ',' inside [...] too."""
    parts: list[str] = []
    depth, current = 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == sep and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


Where = tuple[str | int, ...]


def shape_problems(job: Mapping[str, Any]) -> list[tuple[Where, str]]:
    """What a schema would only call 'wrong type', said precisely: tables named under a
    transformation or data model, a name given twice. Paths are relative to the job."""
    found: list[tuple[Where, str]] = []
    for kind in ("transformations", "data_models"):
        found.extend(_name_list_problems(kind, job.get(kind)))
    extractions = job.get("extractions")
    if isinstance(extractions, list):
        found.extend(_twice(extractions, ("extractions",)))
    elif isinstance(extractions, dict):
        for name, tables in extractions.items():
            found.extend(_tables_problems(("extractions", str(name)), tables))
    return found


def _name_list_problems(kind: str, value: Any) -> list[tuple[Where, str]]:
    """The transformations or data models: names only, each once."""
    if isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
    ):
        return [
            (
                (kind,),
                f"tables can be chosen only under 'extractions'; list the {kind} by name "
                f"(e.g. {kind}: [name]), 'all' or 'none'",
            )
        ]
    if isinstance(value, list):
        return _twice(value, (kind,))
    return []


def _tables_problems(where: Where, tables: Any) -> list[tuple[Where, str]]:
    """An extraction's tables: 'all' or at least one table name, each once."""
    if tables == []:
        return [
            (
                where,
                "name at least one table, or 'all'; to run none of this extraction, leave it out",
            )
        ]
    if isinstance(tables, list) and all(isinstance(t, str) and t for t in tables):
        return _twice(tables, where, what="table")
    if tables == "all":
        return []
    return [(where, f"must be a list of tables or 'all', got {_kind(tables)}")]


def _kind(value: object) -> str:
    """What a value is, without showing it (it may have come from the environment)."""
    if isinstance(value, list):
        return "a list with an entry that is not a table name"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "other text (to run none of this extraction, leave it out)"
    return f"a {type(value).__name__}"


def _twice(values: list[Any], where: Where, what: str = "name") -> list[tuple[Where, str]]:
    seen: dict[str, int] = {}
    found: list[tuple[Where, str]] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            continue
        if value in seen:
            # the value is not quoted: it may have come from an environment variable
            found.append(
                (
                    (*where, index),
                    f"the same {what} as item {seen[value] + 1}; name each {what} once",
                )
            )
        else:
            seen[value] = index
    return found
