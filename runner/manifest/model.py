"""The typed, frozen model of a manifest, built only from a manifest that validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.manifest.task_subset import TaskSubset
from runner.shared_types import Connection, IfRunning, Mode

DEFAULT_MODE: Mode = "DELTA"
DEFAULT_TIMEOUT = 4 * 3600.0
DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_MAX_POLL_INTERVAL = 60.0
DEFAULT_SETTLE_WINDOW = 300.0
"""How long an execute whose answer was lost is looked for in the history before it is `unclear`."""


@dataclass(frozen=True)
class Pool:
    name: str
    pool_id: str
    max_parallel: int | None = None
    line: int = 0
    celonis_name: str | None = None
    """The data pool's name in Celonis: its id is looked up by it (runner.preflight.names);
    `pool_id` is "" until then when the manifest gives no id."""


@dataclass(frozen=True)
class Job:
    name: str
    pool: str
    pool_id: str
    job_id: str
    mode: Mode = DEFAULT_MODE
    depends_on: tuple[str, ...] = ()
    allow_failure: bool = False
    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    settle_window: float = DEFAULT_SETTLE_WINDOW
    expected_duration: float | None = None
    line: int = 0
    if_running: IfRunning = "wait"
    tasks: TaskSubset | None = None
    """The part of the data job to run (its `extractions`/`transformations`/`data_models`);
    None: the whole job."""
    tasks_option: str | None = None
    """The `--tasks` value `tasks` came from (None: the manifest's keys): problems with those
    names point at the command line, not at a line of the manifest."""
    celonis_name: str | None = None
    """The data job's name in its pool in Celonis: its id is looked up by it;
    `job_id` is "" until then when the manifest gives no id."""


@dataclass(frozen=True)
class Manifest:
    path: str
    sha256: str
    version: int
    connection: Connection
    pools: Mapping[str, Pool]
    jobs: Mapping[str, Job]
    environments: Mapping[str, Environment] = field(default_factory=dict)
    environment: str | None = None
    """The environment chosen (`--env`, $CELONIS_RUNNER_ENV): its connection and defaults are
    in this model; None: the top-level connection."""
    resolved: Mapping[str, str] = field(default_factory=dict)
    """The ids looked up by `celonis_name` (`pools.NAME` / `jobs.NAME` -> id); empty until
    runner.preflight.names resolved them."""

    @property
    def by_name(self) -> bool:
        """True when a pool or job is addressed by its Celonis name (ids to look up)."""
        return any(p.celonis_name for p in self.pools.values()) or any(
            j.celonis_name for j in self.jobs.values()
        )


@dataclass(frozen=True)
class Environment:
    """One entry of `environments:`: a team (or realm) with its own connection and defaults."""

    name: str
    connection: Connection
    line: int = 0
