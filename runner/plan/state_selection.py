"""The `state:` selectors, as dbt's: `state:modified` (the jobs added or changed against a
BASE manifest, `--base`), `state:modified+` with everything downstream, `+state:modified`
with everything they depend on. Pure: the manifest and its ManifestDiff in, job names out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from runner.errors import PlanError
from runner.problems import did_you_mean

if TYPE_CHECKING:
    from runner.manifest.diff import ManifestDiff
    from runner.manifest.model import Manifest

STATE_PREFIX = "state:"
METHODS = ("modified",)


def is_state(spec: str) -> bool:
    return spec.strip("+").startswith(STATE_PREFIX)


def state_jobs(
    manifest: Manifest,
    spec: str,
    changes: ManifestDiff | None,
    children: Callable[[str], Iterable[str]],
) -> list[str]:
    """The jobs `spec` selects, in the manifest's order; PlanError without `--base`."""
    method = spec.strip("+")[len(STATE_PREFIX) :]
    if method not in METHODS:
        raise PlanError(
            f"unknown selector '{spec}': the state selector is state:modified (the jobs added"
            " or changed against --base), with + before or after it as for a job name"
        )
    if changes is None:
        raise PlanError(
            f"'{spec}' needs --base BASE: the manifest to compare with, a file or a git"
            " revision's file such as origin/main:jobs.yaml"
        )
    starts = [n for n in manifest.jobs if n in changes.modified_jobs]
    chosen = set(starts)
    if spec.startswith("+"):
        chosen.update(_reachable(starts, lambda n: manifest.jobs[n].depends_on))
    if spec.endswith("+"):
        chosen.update(_reachable(starts, children))
    return [n for n in manifest.jobs if n in chosen]


def unknown_job(manifest: Manifest, name: str, spec: str, changes: ManifestDiff | None) -> str:
    """Why `name` cannot be selected: removed since BASE, or not a job at all."""
    if changes is not None and name in changes.removed_jobs:
        return (
            f"job '{name}' in '{spec}' was removed: it is in {changes.base.path} but not in"
            f" {manifest.path}, so it cannot be selected (its former dependents are among"
            " state:modified)"
        )
    return f"unknown job '{name}' in '{spec}'{did_you_mean(name, manifest.jobs)}"


def _reachable(starts: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    """Every node reachable from any of `starts` along `edges`, in one walk."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        for nxt in edges(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
