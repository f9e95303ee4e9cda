"""Looking up the `celonis_name`s of a manifest before a command uses its ids
(runner.preflight.names), the same way for `run`, `plan --check-remote`, `status` and `logs`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import structlog

from runner import problems as out
from runner.api.client import CelonisClient
from runner.api.first_contact import first_contact
from runner.api.types import PoolInfo
from runner.errors import UsageError
from runner.manifest.model import Manifest
from runner.preflight.names import Resolution, resolve_names
from runner.preflight.remote import ReadApi

log = structlog.get_logger(__name__)


def first_read(client: CelonisClient, *, embedded: bool) -> list[PoolInfo] | None:
    """A command's first request: the base URL checked to answer like Celonis before anything
    is looked up, started or saved (NotCelonisError, exit 3, when it does not); the pool list
    it read (None: the key may not list pools). Not asked of the embedded emulator."""
    return None if embedded else first_contact(client)


def looked_up(
    api: ReadApi, manifest: Manifest, pools: Sequence[PoolInfo] | None = None
) -> Resolution:
    """The names looked up, logged (the environment, each name's id, the requests it took);
    `pools`: the pool list when the command read it already (`first_read`)."""
    resolution = resolve_names(api, manifest, pools)
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
    api: ReadApi,
    manifest: Manifest,
    stderr: TextIO,
    *,
    github: bool = False,
    doing: str,
    pools: Sequence[PoolInfo] | None = None,
) -> Manifest:
    """The manifest with its names' ids; UsageError (exit 2) naming every name that did not
    give one id, before `doing` anything (a run sends no execute)."""
    resolution = looked_up(api, manifest, pools)
    if not resolution.problems:
        return resolution.manifest
    if github:
        out.write_github(resolution.problems, stderr)
    out.write_text(resolution.problems, stderr)
    if not resolution.errors:
        return resolution.manifest
    raise UsageError(
        f"{resolution.summary()}; nothing was {doing}: fix the names (or add ids) in the manifest"
    )
