"""The small types the manifest and the Celonis client share: the manifest's choices (modes,
auth types, `if_running`), its auth settings and where the API is. Defined once here, so that
runner/api/ needs no module of runner/manifest/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["FULL", "DELTA"]
MODES: tuple[Mode, ...] = ("FULL", "DELTA")
AuthType = Literal["api_key", "app_key", "oauth"]
IfRunning = Literal["wait", "adopt", "fail"]
"""What a run does with a job that Celonis already shows QUEUED or RUNNING (not its own run)."""

Tables = tuple[str, ...] | None
"""The tables of one extraction to load; None: all of them."""

DEFAULT_KEY_ENV = "CELONIS_API_KEY"
DEFAULT_CLIENT_ID_ENV = "CELONIS_CLIENT_ID"
DEFAULT_CLIENT_SECRET_ENV = "CELONIS_CLIENT_SECRET"
DEFAULT_SCOPE = "integration.data-pools"


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
