"""The typed, frozen model of a manifest, built only from a manifest that validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from runner.manifest.subset import TaskSubset

Mode = Literal["FULL", "DELTA"]
AuthType = Literal["api_key", "app_key", "oauth"]
IfRunning = Literal["wait", "adopt", "fail"]
"""What a run does with a job that Celonis already shows QUEUED or RUNNING (not its own run)."""

DEFAULT_KEY_ENV = "CELONIS_API_KEY"
DEFAULT_CLIENT_ID_ENV = "CELONIS_CLIENT_ID"
DEFAULT_CLIENT_SECRET_ENV = "CELONIS_CLIENT_SECRET"
DEFAULT_SCOPE = "integration.data-pools"

DEFAULT_MODE: Mode = "DELTA"
DEFAULT_TIMEOUT = 4 * 3600.0
DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_MAX_POLL_INTERVAL = 60.0
DEFAULT_SETTLE_WINDOW = 300.0
"""How long an execute whose answer was lost is looked for in the history before it is `unclear`."""


@dataclass(frozen=True)
class AuthConfig:
    type: AuthType = "api_key"
    key_env: str = DEFAULT_KEY_ENV
    client_id_env: str = DEFAULT_CLIENT_ID_ENV
    client_secret_env: str = DEFAULT_CLIENT_SECRET_ENV
    scope: str = DEFAULT_SCOPE


@dataclass(frozen=True)
class Connection:
    """Where the API is: `base_url`, or `team` + `realm` (https://{team}.{realm}.celonis.cloud)."""

    team: str | None = None
    realm: str | None = None
    base_url: str | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def url(self) -> str | None:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.team and self.realm:
            return f"https://{self.team}.{self.realm}.celonis.cloud"
        return None


@dataclass(frozen=True)
class Pool:
    name: str
    pool_id: str
    max_parallel: int | None = None
    line: int = 0


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
    """The part of the data job to run (issue 12); None: the whole job."""


@dataclass(frozen=True)
class Manifest:
    path: str
    sha256: str
    version: int
    connection: Connection
    pools: Mapping[str, Pool]
    jobs: Mapping[str, Job]
