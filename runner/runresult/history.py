"""Learned durations: how long each job took in earlier runs, from their state files.

`plan` uses the median of a job's earlier durations for the critical path
where the manifest gives the job no `expected_duration`. Only runs of the
same manifest count, only executions that succeeded (a failure's duration
says little about a normal run), and only while the job still points at the
same Celonis job. The cost is bounded: at most HISTORY_LIMIT state files,
the newest first, each read once without the schema check (`read_unchecked`); a file that cannot
be read is passed over.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.manifest.model import Manifest
from runner.runresult.read import read_unchecked
from runner.runresult.records import SavedRun

HISTORY_LIMIT = 20
"""State files read at most (the newest), whatever the number of runs saved."""


@dataclass(frozen=True)
class Learned:
    seconds: float
    """The median duration of the job's successful executions in earlier runs."""
    samples: int
    """How many executions it is the median of."""


def learned_durations(
    directory: Path, manifest: Manifest, *, limit: int = HISTORY_LIMIT
) -> dict[str, Learned]:
    """Job name -> Learned, for the jobs of `manifest` without an expected_duration that
    succeeded in one of the newest `limit` saved runs of the same manifest."""
    wanted = {n: j.job_id.lower() for n, j in manifest.jobs.items() if j.expected_duration is None}
    if not wanted:
        return {}
    samples: dict[str, list[float]] = {}
    for data in _saved_runs(directory, manifest.path, limit):
        for name, seconds in _durations(data, wanted):
            samples.setdefault(name, []).append(seconds)
    return {
        name: Learned(seconds=float(statistics.median(values)), samples=len(values))
        for name, values in samples.items()
    }


def _saved_runs(directory: Path, manifest_path: str, limit: int) -> list[SavedRun]:
    try:
        files = sorted(directory.glob("*.json"), key=_mtime, reverse=True)[:limit]
    except OSError:
        return []
    same = _resolved(manifest_path)
    runs = []
    for path in files:
        data = _read_run(path, same)
        if data is not None:
            runs.append(data)
    return runs


def _read_run(path: Path, manifest: Path) -> SavedRun | None:
    """A saved run of `manifest`, or None. Not `load_saved`: its schema check costs seconds
    for a run of 10,000 jobs, twenty times over for a plan (`read_unchecked` reads each field
    only where it has its type)."""
    saved = read_unchecked(path)
    if saved is None:
        return None
    recorded = saved.manifest_resolved or saved.manifest_path
    return saved if _resolved(recorded) == manifest else None


def _durations(saved: SavedRun, wanted: Mapping[str, str]) -> list[tuple[str, float]]:
    """The wanted jobs' durations, from the raw records (`read_unchecked` made `jobs` a dict):
    not `saved.jobs`, which types every record with its tasks and, at 10,000 jobs, costs more
    than parsing the file did; the few fields read here are checked where they are read."""
    found = []
    for name, record in saved.data["jobs"].items():
        if name not in wanted or not isinstance(record, dict):
            continue
        if record.get("state") != "succeeded":
            continue
        if str(record.get("job_id") or "").lower() != wanted[name]:
            continue  # the name now stands for another Celonis job
        start, end = _seconds(record.get("started_at")), _seconds(record.get("finished_at"))
        if start is not None and end is not None and end >= start:
            found.append((name, float(end - start)))
    return found


def _seconds(value: object) -> float | None:
    """A finite number of seconds, or None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _resolved(path: str) -> Path:
    return Path(path).resolve()
