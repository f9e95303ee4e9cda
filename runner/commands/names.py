"""Looking up the `celonis_name`s of a manifest before a command uses its ids
(runner.preflight.names), the same way for `run`, `plan --check-remote`, `status` and `logs`."""

from __future__ import annotations

from typing import TextIO

import structlog

from runner import problems as out
from runner.errors import UsageError
from runner.manifest.model import Manifest
from runner.preflight.names import Resolution, resolve_names
from runner.preflight.remote import ReadApi

log = structlog.get_logger(__name__)


def looked_up(api: ReadApi, manifest: Manifest) -> Resolution:
    """The names looked up, logged (the environment, each name's id, the requests it took)."""
    resolution = resolve_names(api, manifest)
    if manifest.by_name:
        log.info(
            "names_resolved",
            environment=manifest.environment,
            resolved=dict(resolution.manifest.resolved),
            unresolved=resolution.unresolved,
            requests=resolution.requests,
        )
    return resolution


def resolved_or_refused(
    api: ReadApi, manifest: Manifest, stderr: TextIO, *, github: bool = False, doing: str
) -> Manifest:
    """The manifest with its names' ids; UsageError (exit 2) naming every name that did not
    give one id, before `doing` anything (a run sends no execute)."""
    resolution = looked_up(api, manifest)
    if not resolution.problems:
        return resolution.manifest
    if github:
        out.write_github(resolution.problems, stderr)
    out.write_text(resolution.problems, stderr)
    if not resolution.errors:
        return resolution.manifest
    count = len(resolution.errors)
    where = f" in environment {manifest.environment!r}" if manifest.environment else ""
    raise UsageError(
        f"{count} Celonis name{'' if count == 1 else 's'} did not resolve to one id{where};"
        f" nothing was {doing}: fix the names (or add ids) in the manifest"
    )
