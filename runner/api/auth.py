"""Credentials for the Celonis API: a key from the environment, or an OAuth client.

`auth_from_config` reads the variables `AuthConfig` names. Secrets live in a
`Secret` wrapper so no repr, str, log event or error message shows them;
messages name the environment variable instead.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Literal, Protocol

import structlog

from runner.api.errors import ProtocolError
from runner.errors import UsageError
from runner.shared_types import AuthConfig

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth2/token"
DEFAULT_EXPIRES_IN = 300.0
"""Assumed token lifetime (s) when the token answer has no usable `expires_in`."""
MAX_EXPIRES_IN = 24 * 3600.0
"""Longer lifetimes are not believed: the token is refreshed at least daily."""
REFRESH_MARGIN = 60.0
"""Refresh a token this long before it expires (at most half its lifetime)."""


class Secret:
    """A string that never shows itself: repr and str print `<secret>`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class TokenEndpoint(Protocol):
    """What OAuth needs from the transport: one token request, and the time."""

    def request_token(self, form: Mapping[str, str], basic_auth: tuple[str, str]) -> object:
        """POST the form to the token endpoint; the parsed JSON answer (raises ApiError)."""

    def monotonic(self) -> float:
        """Now, on the client's clock."""


class Auth(ABC):
    """Produces the `Authorization` header value for each request."""

    @abstractmethod
    def authorization(self, endpoint: TokenEndpoint) -> str:
        """The header value to send now (may fetch or refresh a token)."""

    def invalidate(self, used: str) -> bool:
        """After a 401 for a request sent with `used`: True if trying once more may help."""
        return False

    @property
    @abstractmethod
    def unauthorized_hint(self) -> str:
        """How to fix a 401, naming the environment variables (never their values)."""

    @property
    def token_request_hint(self) -> str:
        return self.unauthorized_hint

    @property
    @abstractmethod
    def credential(self) -> str:
        """What authenticates, and where it came from: the auth type and the variables."""

    def forbidden_hint(self, pool_id: str | None) -> str:
        """How to fix a 403, naming the auth type and the variables (never their values)."""
        if pool_id is None:
            return f"{self.credential} lacks permission for this request"
        return f"{self.credential} needs 'view' and 'manage' permission on pool {pool_id}"


class KeyAuth(Auth):
    """A fixed key: `Bearer <api key>` or `AppKey <application key>`."""

    def __init__(self, scheme: Literal["Bearer", "AppKey"], key: Secret, key_env: str) -> None:
        self.scheme = scheme
        self._key = key
        self.key_env = key_env

    def authorization(self, endpoint: TokenEndpoint) -> str:
        return f"{self.scheme} {self._key.reveal()}"

    @property
    def credential(self) -> str:
        what, auth_type = (
            ("API key", "api_key") if self.scheme == "Bearer" else ("application key", "app_key")
        )
        return f"the {what} in ${self.key_env} (connection.auth.type {auth_type})"

    @property
    def unauthorized_hint(self) -> str:
        return f"{self.credential} was refused: check the key in ${self.key_env}"

    def __repr__(self) -> str:
        return f"KeyAuth(scheme={self.scheme!r}, key_env={self.key_env!r})"

    __str__ = __repr__


class OAuthClientAuth(Auth):
    """OAuth client credentials: fetches a token, caches it, refreshes it before it expires.

    Thread-safe: requests from several threads share one token.
    """

    def __init__(
        self,
        client_id: Secret,
        client_secret: Secret,
        scope: str,
        *,
        client_id_env: str,
        client_secret_env: str,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.client_id_env = client_id_env
        self.client_secret_env = client_secret_env
        self.refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self.tokens_fetched = 0

    def authorization(self, endpoint: TokenEndpoint) -> str:
        with self._lock:
            if self._token is None or endpoint.monotonic() >= self._refresh_at:
                self._fetch(endpoint)
            assert self._token is not None
            return f"Bearer {self._token.reveal()}"

    def invalidate(self, used: str) -> bool:
        with self._lock:
            # Another thread may have refreshed already; only drop the token that failed.
            if self._token is not None and used == f"Bearer {self._token.reveal()}":
                self._token = None
        return True

    def _fetch(self, endpoint: TokenEndpoint) -> None:
        asked_at = endpoint.monotonic()  # the lifetime runs from about when it was asked for
        answer = endpoint.request_token(
            {"grant_type": "client_credentials", "scope": self.scope},
            (self._client_id.reveal(), self._client_secret.reveal()),
        )
        token, expires_in = _parse_token(answer)
        margin = min(self.refresh_margin, expires_in / 2)
        self._token = token
        self._refresh_at = asked_at + expires_in - margin
        self.tokens_fetched += 1
        log.info("api.token_fetched", expires_in=expires_in, refresh_in=expires_in - margin)

    @property
    def credential(self) -> str:
        return (
            f"the OAuth client in ${self.client_id_env} and ${self.client_secret_env}"
            " (connection.auth.type oauth)"
        )

    @property
    def unauthorized_hint(self) -> str:
        return (
            "the OAuth token (connection.auth.type oauth) was refused: check the client in"
            f" ${self.client_id_env} and ${self.client_secret_env}"
            f" and that it has the scope '{self.scope}'"
        )

    @property
    def token_request_hint(self) -> str:
        return (
            "the OAuth token request (connection.auth.type oauth) was refused:"
            " check the client id and secret in"
            f" ${self.client_id_env} and ${self.client_secret_env}"
            f" and that the client has the scope '{self.scope}'"
        )

    def __repr__(self) -> str:
        return (
            f"OAuthClientAuth(client_id_env={self.client_id_env!r},"
            f" client_secret_env={self.client_secret_env!r}, scope={self.scope!r})"
        )

    __str__ = __repr__


def _parse_token(answer: object) -> tuple[Secret, float]:
    where = f"POST {TOKEN_PATH}"
    if not isinstance(answer, dict):
        raise ProtocolError(f"{where}: the token answer is not a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(f"{where}: the token answer has no access_token")
    seconds = _seconds(answer.get("expires_in"))
    if not 0 < seconds < float("inf"):
        log.warning("api.token_without_expiry", assumed_expires_in=DEFAULT_EXPIRES_IN)
        seconds = DEFAULT_EXPIRES_IN
    return Secret(token), min(seconds, MAX_EXPIRES_IN)


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def auth_from_config(cfg: AuthConfig, environ: Mapping[str, str]) -> Auth:
    """The Auth that `cfg` describes; UsageError naming any variable that is not set."""
    if cfg.type == "api_key":
        return KeyAuth(
            "Bearer", _required(environ, cfg.key_env, "a Celonis API key", cfg), cfg.key_env
        )
    if cfg.type == "app_key":
        return KeyAuth(
            "AppKey", _required(environ, cfg.key_env, "a Celonis application key", cfg), cfg.key_env
        )
    if cfg.type == "oauth":
        variables = (cfg.client_id_env, cfg.client_secret_env)
        missing = [name for name in variables if not environ.get(name, "").strip()]
        if missing:
            listed = " and ".join(f"${name}" for name in missing)
            verb = "is" if len(missing) == 1 else "are"
            raise UsageError(
                f"{listed} {verb} not set: connection.auth.type is oauth, so"
                f" ${cfg.client_id_env} must hold the OAuth client id and"
                f" ${cfg.client_secret_env} its secret"
            )
        return OAuthClientAuth(
            _checked(cfg.client_id_env, environ[cfg.client_id_env].strip()),
            _checked(cfg.client_secret_env, environ[cfg.client_secret_env].strip()),
            cfg.scope,
            client_id_env=cfg.client_id_env,
            client_secret_env=cfg.client_secret_env,
        )
    raise UsageError(f"unknown connection.auth.type {cfg.type!r} (api_key, app_key or oauth)")


def _required(environ: Mapping[str, str], name: str, what: str, cfg: AuthConfig) -> Secret:
    value = environ.get(name, "").strip()
    if not value:
        raise UsageError(
            f"${name} is not set: connection.auth.type is {cfg.type}, so it must hold {what}"
        )
    return _checked(name, value)


def _checked(name: str, value: str) -> Secret:
    # requests would refuse such a header and quote its value in the error; say it here instead.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(f"${name} contains a line break or control character: check how it is set")
    if not value.isascii():
        # HTTP headers are Latin-1 at best; Celonis keys and ids are plain ASCII.
        raise UsageError(
            f"${name} contains a character that is not plain ASCII: check how it is set"
            " (a pasted key may carry a typographic quote or a non-breaking space)"
        )
    return Secret(value)
