"""Where an Airflow task finds the Celonis API: an Airflow connection, or the manifest's variables.

`ApiSettings` only names where the credentials are (a connection id, environment
variable names): it is serialised into trigger kwargs and shown among a task's
attributes, so it never holds a secret. `make_client` is the one place that
builds a `CelonisClient` for Airflow. Nothing here imports Airflow: the
connection is looked up through a function the caller passes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, cast

import requests

from runner.api import (
    Auth,
    CelonisClient,
    KeyAuth,
    OAuthClientAuth,
    Secret,
    auth_from_config,
    resolve_base_url,
)
from runner.api.baseurl import check_base_url
from runner.api.tls import ca_bundle
from runner.clock import Clock, ScaledClock, SystemClock, time_origin
from runner.errors import UsageError
from runner.manifest.model import Manifest
from runner.shared_types import (
    DEFAULT_CLIENT_ID_ENV,
    DEFAULT_CLIENT_SECRET_ENV,
    DEFAULT_KEY_ENV,
    DEFAULT_SCOPE,
    AuthConfig,
    AuthType,
    Connection,
)
from runner.target import http_timeouts

DEFAULT_CONN_ID = "celonis_default"
CONN_TYPE = "celonis"
TIME_SCALE_ENV = "CELONIS_RUNNER_TIME_SCALE"
"""Virtual seconds per real second, as for the CLI: lets tests run against a scaled emulator."""

_AUTH_TYPES: tuple[AuthType, ...] = ("api_key", "app_key", "oauth")


class AirflowConnection(Protocol):
    """What is read of an Airflow `Connection`."""

    conn_id: str
    host: str | None
    schema: str | None
    port: int | None
    login: str | None
    password: str | None
    extra: str | None


@dataclass(frozen=True)
class ApiSettings:
    """Where the API and its credentials are. Never a secret: safe in logs, XCom and trigger kwargs.

    `conn_id`: the Airflow connection to use; when it is not defined (or None),
    the base URL comes from `$CELONIS_BASE_URL` or `base_url` (the manifest's)
    and the credentials from the environment variables the manifest names.
    """

    conn_id: str | None = DEFAULT_CONN_ID
    base_url: str | None = None
    auth_type: AuthType = "api_key"
    key_env: str = DEFAULT_KEY_ENV
    client_id_env: str = DEFAULT_CLIENT_ID_ENV
    client_secret_env: str = DEFAULT_CLIENT_SECRET_ENV
    scope: str = DEFAULT_SCOPE
    environment: str | None = None
    """The manifest's environment whose connection this is: its Airflow connection is
    `celonis_<environment>` unless another conn_id was given."""

    @classmethod
    def from_manifest(cls, manifest: Manifest, conn_id: str | None) -> ApiSettings:
        """The manifest's connection (its chosen environment's); `conn_id` DEFAULT_CONN_ID with an
        environment chosen stands for `celonis_<environment>`."""
        auth = manifest.connection.auth
        environment = manifest.environment
        return cls(
            conn_id=environment_conn_id(conn_id, environment),
            environment=environment,
            base_url=manifest.connection.url,
            auth_type=auth.type,
            key_env=auth.key_env,
            client_id_env=auth.client_id_env,
            client_secret_env=auth.client_secret_env,
            scope=auth.scope,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApiSettings:
        return cls(**data)

    def auth_config(self) -> AuthConfig:
        return AuthConfig(
            type=self.auth_type,
            key_env=self.key_env,
            client_id_env=self.client_id_env,
            client_secret_env=self.client_secret_env,
            scope=self.scope,
        )


@dataclass(frozen=True)
class Endpoint:
    """A resolved base URL and credentials, and where they came from (for messages)."""

    base_url: str
    auth: Auth
    source: str
    secrets: tuple[str, ...]
    """The secret values, so the caller can mask them in Airflow's logs."""


def environment_conn_id(conn_id: str | None, environment: str | None) -> str | None:
    """The Airflow connection of an environment: `celonis_<environment>` when `conn_id` is left
    at its default (DEFAULT_CONN_ID), else `conn_id` as given."""
    if environment and conn_id == DEFAULT_CONN_ID:
        return f"celonis_{environment}"
    return conn_id


def time_scale(environ: Mapping[str, str]) -> float:
    """$CELONIS_RUNNER_TIME_SCALE (1 when unset): only tests and demos against the emulator set it."""
    text = environ.get(TIME_SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not scale > 0:
        raise UsageError(
            f"${TIME_SCALE_ENV} must be a positive number (virtual seconds per real second)"
        )
    return scale


def make_clock(environ: Mapping[str, str]) -> Clock:
    """The real clock, or with $CELONIS_RUNNER_TIME_SCALE a scaled one from
    $CELONIS_RUNNER_TIME_ORIGIN (when set) that agrees with the emulator on dates."""
    scale = time_scale(environ)
    origin = time_origin(environ)
    return SystemClock() if scale == 1.0 else ScaledClock(scale, origin)


def resolve_endpoint(
    settings: ApiSettings,
    connection: AirflowConnection | None,
    environ: Mapping[str, str],
) -> Endpoint:
    """`connection` (the one `settings.conn_id` names, None when it is not defined) when there is
    one, else the manifest's variables."""
    if connection is not None:
        return endpoint_from_connection(connection)
    fallback_ok = (DEFAULT_CONN_ID, environment_conn_id(DEFAULT_CONN_ID, settings.environment))
    if settings.conn_id and settings.conn_id not in fallback_ok:
        raise UsageError(
            f"the Airflow connection {settings.conn_id!r} is not defined: add it"
            f" (type {CONN_TYPE}: host = base URL, password = API key) or pass conn_id=None"
            " to use the manifest's environment variables"
        )
    manifest_connection = Connection(base_url=settings.base_url, auth=settings.auth_config())
    try:
        base_url = resolve_base_url(manifest_connection, None, environ, settings.environment)
    except UsageError as error:
        conn = settings.conn_id or DEFAULT_CONN_ID
        raise UsageError(f"{error}, or define the Airflow connection {conn!r}") from None
    config = settings.auth_config()
    auth = auth_from_config(config, environ)
    names = [config.client_id_env, config.client_secret_env]
    names = names if config.type == "oauth" else [config.key_env]
    secrets = tuple(environ[n].strip() for n in names if environ.get(n, "").strip())
    return Endpoint(base_url, auth, "the manifest's environment variables", secrets)


def endpoint_from_connection(connection: AirflowConnection) -> Endpoint:
    """host = base URL, password = API key (or OAuth client secret), extra = auth type and OAuth."""
    where = f"Airflow connection {connection.conn_id!r}"
    base_url = check_base_url(_connection_url(connection, where), where)
    extra = _extra(connection, where)
    auth_type = str(extra.get("auth_type") or "api_key")  # the form stores null when unset
    if auth_type not in _AUTH_TYPES:
        raise UsageError(
            f"{where}: extra.auth_type is {auth_type[:30]!r}; use api_key, app_key or oauth"
        )
    password = (connection.password or "").strip()
    if not password:
        what = "the OAuth client secret" if auth_type == "oauth" else "the key"
        raise UsageError(f"{where} has no password: put {what} there")
    if auth_type != "oauth":
        key = _checked_secret(password, where)
        scheme: Literal["Bearer", "AppKey"] = "Bearer" if auth_type == "api_key" else "AppKey"
        label = f"{where} (its password)"
        return Endpoint(base_url, KeyAuth(scheme, key, label), where, (password,))
    return _oauth_endpoint(connection, extra, base_url, password, where)


def _oauth_endpoint(
    connection: AirflowConnection,
    extra: Mapping[str, object],
    base_url: str,
    password: str,
    where: str,
) -> Endpoint:
    """An oauth connection: login (or extra.client_id) = client id, password = client secret."""
    client_id = (connection.login or str(extra.get("client_id") or "")).strip()
    if not client_id:
        raise UsageError(f"{where}: auth_type is oauth, so its login must hold the OAuth client id")
    auth = OAuthClientAuth(
        _checked_secret(client_id, where),
        _checked_secret(password, where),
        str(extra.get("scope") or DEFAULT_SCOPE),
        client_id_env=f"{where} (its login)",
        client_secret_env=f"{where} (its password)",
    )
    return Endpoint(base_url, auth, where, (client_id, password))


def make_client(endpoint: Endpoint, clock: Clock, environ: Mapping[str, str]) -> CelonisClient:
    """The one place Airflow code builds a CelonisClient: the CLI's timeouts and CA bundle."""
    return CelonisClient.connect(
        endpoint.base_url,
        endpoint.auth,
        requests.Session(),
        clock,
        timeouts=http_timeouts(environ),
        ca_bundle=ca_bundle(environ),
    )


def _connection_url(connection: AirflowConnection, where: str) -> str:
    host = (connection.host or "").strip()
    if not host:
        raise UsageError(
            f"{where} has no host: put the base URL there (https://TEAM.REALM.celonis.cloud)"
        )
    if "://" in host:
        return host
    scheme = (connection.schema or "https").strip() or "https"
    port = f":{connection.port}" if connection.port else ""
    return f"{scheme}://{host}{port}"


def _extra(connection: AirflowConnection, where: str) -> dict[str, Any]:
    if not connection.extra:
        return {}
    try:
        data = json.loads(connection.extra)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(
            f'{where}: extra must be a JSON object like {{"auth_type": "oauth", "scope": "..."}}'
        )
    # older forms stored their fields as extra__<conn type>__<field>
    prefix = f"extra__{CONN_TYPE}__"
    return {key.removeprefix(prefix): value for key, value in cast(dict[str, Any], data).items()}


def _checked_secret(value: str, where: str) -> Secret:
    # requests would refuse such a header and quote its value in the error: say it here instead.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(f"{where}: a credential contains a line break or control character")
    return Secret(value)
