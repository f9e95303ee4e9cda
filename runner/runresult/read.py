"""The one reader of a saved run: the snapshot and its journal, checked against
schema/state.schema.json (`load_saved`), or fast and unchecked (`read_unchecked`).

Everything that is not a state file this runner wrote (truncated, tampered,
another format) is a `DamagedStateError` (exit 2) for `load_saved` that names
the file and the place in it, never an internal error. The checks are a JSON
Schema, not `assert`s, so they also hold under `python -O`. `read_unchecked`
is for learned durations, which read twenty runs for one plan: it skips the
schema (seconds at 10,000 jobs) and gives None for anything unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.runresult.records import SavedRun
from runner.schema import schema_issues

DEFAULT_STATE_DIR = ".celonis-runner/runs"
STATE_DIR_ENV = "CELONIS_RUNNER_STATE_DIR"
STATE_SCHEMA = "state.schema.json"
JOURNAL_SUFFIX = ".jsonl"
MAX_MESSAGE = 200
"""Characters of a schema message shown: it quotes the offending value, which may be huge."""


RESUME = "resume from"
"""What `run --resume` does with a state file (`load_saved`'s default `doing`)."""


class DamagedStateError(UsageError):
    """The state file (or its journal) cannot be a run this runner saved."""

    def __init__(self, path: Path, why: str, doing: str = RESUME) -> None:
        advice = "; start a new run (without --resume)" if doing == RESUME else ""
        super().__init__(f"cannot {doing} {path}: the state file is damaged: {why}{advice}")
        self.path = path
        self.why = why


def state_dir(option: str | None, environ: Mapping[str, str]) -> Path:
    """Where run state is saved: `--state-dir`, else $CELONIS_RUNNER_STATE_DIR, else the default."""
    return Path(option or environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def journal_path(snapshot: Path) -> Path:
    return snapshot.with_suffix(JOURNAL_SUFFIX)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(text: str) -> Any:
    """JSON, strictly: no NaN/Infinity. ValueError or RecursionError when it is not."""
    return json.loads(text, parse_constant=_no_constant)


def _where(path: Any) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"at {parts.lstrip('.') or 'the top level'}"


def _shown(path: Any, value: object) -> str:
    text = repr(value)  # the offending value may be huge: show its start
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def check(data: Any, definition: str | None, path: Path, place: str = "") -> None:
    """DamagedStateError naming the JSON path of the first problem, if `data` breaks the schema
    (the state file's schema, or one of its `$defs` for a journal line)."""
    try:
        issues = schema_issues(data, STATE_SCHEMA, shown=_shown, definition=definition)
    except RecursionError:
        raise DamagedStateError(path, f"{place}nested too deeply") from None
    if issues:
        first = issues[0]
        raise DamagedStateError(path, f"{place}{_where(first.path)}: {first.message}")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedStateError(path, f"cannot read it ({type(exc).__name__})") from None
    try:
        return _parse(text)
    except json.JSONDecodeError as exc:
        raise DamagedStateError(
            path, f"not valid JSON at line {exc.lineno} column {exc.colno} (truncated?)"
        ) from None
    except ValueError as exc:
        raise DamagedStateError(path, str(exc)) from None
    except RecursionError:
        raise DamagedStateError(path, "nested too deeply") from None


def _journal_lines(path: Path) -> list[tuple[int, Any]]:
    """The journal's records with their line numbers. A torn last line (a write cut short by a
    crash) is left out: it was never synced, so no execute went out after it."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedStateError(path, f"cannot read it ({type(exc).__name__})") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            records.append((number, _parse(line)))
        except (ValueError, RecursionError):
            if number == len(lines):  # no newline after it: torn
                continue
            raise DamagedStateError(path, f"line {number} is not a journal record") from None
    return records


def load_saved(path: Path, doing: str = RESUME) -> SavedRun:
    """The saved run (snapshot plus the journal written since); DamagedStateError (exit 2)
    for a file that is corrupt, truncated or of another format, or whose times no calendar
    shows. Its message says what the command could not do: `cannot {doing} {path}`."""
    try:
        return _load_saved(path)
    except DamagedStateError as exc:
        if doing == RESUME:
            raise
        raise DamagedStateError(exc.path, exc.why, doing) from None


def _load_saved(path: Path) -> SavedRun:
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("state_version") not in (1, 2):
        raise DamagedStateError(path, "not a celonis-runner state file of version 1 or 2")
    check(data, None, path)
    generation = data.get("generation")
    if generation is None:
        return SavedRun(path, data)
    journal = journal_path(path)
    for number, record in _journal_lines(journal):
        check(record, "journal_line", journal, f"line {number} ")
        if record["g"] == generation:  # other generations were compacted into the snapshot
            data["jobs"][record["job"]] = record["data"]
    return SavedRun(path, data)


def read_unchecked(path: Path) -> SavedRun | None:
    """The saved run without the schema check, or None when it is not one (not JSON, no jobs,
    no manifest path). Its records are read as tolerantly as `SavedJob.from_record` does; a
    journal line that is not a record is passed over."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        return None
    recorded = data.get("manifest")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("path"), str):
        return None
    if data.get("generation") is not None:
        _apply_journal_unchecked(journal_path(path), data["generation"], data["jobs"])
    return SavedRun(path, data)


def _apply_journal_unchecked(journal: Path, generation: object, jobs: dict[str, Any]) -> None:
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and record.get("g") == generation:
            name, job = record.get("job"), record.get("data")
            if isinstance(name, str) and isinstance(job, dict):
                jobs[name] = job
