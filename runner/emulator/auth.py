"""Who may call the emulator: API keys and OAuth tokens (Bearer), app keys (AppKey), OAuth clients.

OAuth access tokens expire after the scenario's `token_lifetime` in real
seconds, whatever the time scale: a client that refreshes by `expires_in`
must keep working when jobs run 300x faster. Nothing here is ever logged or
journaled.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import unquote_plus

AuthKind = Literal["bearer", "appkey", "basic", "none"]

DEFAULT_SCOPE = "integration.data-pools"


def auth_kind(authorization: str | None) -> AuthKind:
    """The scheme of an Authorization header, for the journal (never its value)."""
    scheme = (authorization or "").strip().partition(" ")[0].lower()
    if scheme == "bearer":
        return "bearer"
    if scheme == "appkey":
        return "appkey"
    if scheme == "basic":
        return "basic"
    return "none"


def _contains(candidates: Iterable[str], value: str) -> bool:
    found = False
    for candidate in candidates:
        # compare every candidate so timing says nothing about which one matched
        found |= hmac.compare_digest(candidate.encode(), value.encode())
    return found


class Credentials:
    def __init__(
        self,
        api_keys: Iterable[str] | None,
        app_keys: Iterable[str] | None,
        oauth_clients: Mapping[str, str] | None,
        token_lifetime: float,
        time_scale: float = 1.0,
    ) -> None:
        keys = [k for k in (api_keys or []) if k]
        self.api_keys = keys or [secrets.token_urlsafe(24)]
        self.app_keys = [k for k in (app_keys or []) if k]
        self.oauth_clients = dict(oauth_clients or {})
        self.token_lifetime = token_lifetime
        self._scale = time_scale
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    def allows(self, authorization: str | None, now: float) -> bool:
        """True when the header holds a valid API key, unexpired token or app key."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if not value:
            return False
        if scheme.lower() == "appkey":
            return _contains(self.app_keys, value)
        if scheme.lower() != "bearer":
            return False
        if _contains(self.api_keys, value):
            return True
        with self._lock:
            expires = self._tokens.get(value)
        return expires is not None and now / self._scale < expires

    def token(
        self, authorization: str | None, form: Mapping[str, str], now: float
    ) -> tuple[int, dict[str, Any]]:
        """The answer to `POST /oauth2/token`: status and JSON body."""
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if not self._client_ok(authorization, form):
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(32)
        with self._lock:
            # expired tokens stay known: tests check that none of them leaked anywhere
            self._tokens[token] = now / self._scale + self.token_lifetime
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "scope": form.get("scope") or DEFAULT_SCOPE,
        }

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def _client_ok(self, authorization: str | None, form: Mapping[str, str]) -> bool:
        scheme, _, value = (authorization or "").strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                return False
            # RFC 6749 form-encodes both before base64; many clients don't: accept either
            return self._secret_ok(client_id, secret) or self._secret_ok(
                unquote_plus(client_id), unquote_plus(secret)
            )
        return self._secret_ok(form.get("client_id", ""), form.get("client_secret", ""))

    def _secret_ok(self, client_id: str, secret: str) -> bool:
        expected = self.oauth_clients.get(client_id)
        return expected is not None and bool(secret) and _contains([expected], secret)
