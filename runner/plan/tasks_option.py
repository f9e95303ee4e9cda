"""`--tasks JOB:TASKS`: part of a job chosen on the command line, in the grammar of
the manifest's `extractions`/`transformations`/`data_models` (runner.manifest.task_subset). It
replaces what the manifest says for that job, and selects the job when --select is not given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from runner.errors import UsageError
from runner.manifest.model import Manifest
from runner.manifest.task_subset import (
    SelectionError,
    parse_tasks_option,
    shape_problems,
    subset_of,
)
from runner.problems import did_you_mean


def with_task_selection(manifest: Manifest, specs: Sequence[str]) -> Manifest:
    """The manifest with each `--tasks` subset in place of the job's own."""
    if not specs:
        return manifest
    jobs = dict(manifest.jobs)
    seen: set[str] = set()
    for spec in specs:
        try:
            name, keys = parse_tasks_option(spec)
        except SelectionError as exc:
            raise UsageError(str(exc)) from None
        if name not in jobs:
            raise UsageError(f"--tasks {spec!r}: unknown job '{name}'{did_you_mean(name, jobs)}")
        if name in seen:
            raise UsageError(f"--tasks names job '{name}' twice: give all its tasks in one")
        seen.add(name)
        problems = shape_problems(keys)
        if problems:
            raise UsageError(f"--tasks {spec!r}: {problems[0][1]}")
        subset = subset_of(keys)
        if subset is None or subset.is_empty:
            raise UsageError(f"--tasks {spec!r}: names no task to run")
        jobs[name] = dataclasses.replace(jobs[name], tasks=subset, tasks_option=spec)
    return dataclasses.replace(manifest, jobs=jobs)


def task_jobs(specs: Sequence[str]) -> list[str]:
    """The jobs `--tasks` names (what it selects when --select is not given)."""
    return [spec.partition(":")[0].strip() for spec in specs]
