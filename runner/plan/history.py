"""Learned durations: how long each job took in earlier runs, from their state files.

`plan` uses the median of a job's earlier durations for the critical path
where the manifest gives the job no `expected_duration`. Only runs of the
same manifest count, only executions that succeeded (a failure's duration
says little about a normal run), and only while the job still points at the
same Celonis job. The cost is bounded: at most HISTORY_LIMIT state files,
the newest first, each read once without the schema check; a file that cannot
be read is passed over.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.execution.stateread import JOURNAL_SUFFIX
from runner.manifest.model import Manifest

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


def _saved_runs(directory: Path, manifest_path: str, limit: int) -> list[dict[str, Any]]:
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


def _read_run(path: Path, manifest: Path) -> dict[str, Any] | None:
    """The jobs of a saved run of `manifest` (snapshot plus its journal), or None.

    Not `load_saved`: its schema check costs seconds for a run of 10,000 jobs, twenty times
    over for a plan. History reads only numbers and strings and checks each where it reads
    it; a file that is not a run of this manifest, or not JSON, is passed over.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        return None
    recorded = data.get("manifest")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("path"), str):
        return None
    if _resolved(recorded["path"]) != manifest:
        return None
    if data.get("generation") is not None:
        _apply_journal(path.with_suffix(JOURNAL_SUFFIX), data["generation"], data["jobs"])
    return data


def _apply_journal(journal: Path, generation: object, jobs: dict[str, Any]) -> None:
    """The journal's lines of the snapshot's generation, over the snapshot's jobs (as
    runner.execution.stateread.load_saved does); a line that is not a record is skipped."""
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


def _durations(data: Mapping[str, Any], wanted: Mapping[str, str]) -> list[tuple[str, float]]:
    found = []
    for name, record in data["jobs"].items():
        if name not in wanted or not isinstance(record, dict):
            continue
        if record.get("state") != "succeeded":
            continue
        if str(record.get("job_id", "")).lower() != wanted[name]:
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
