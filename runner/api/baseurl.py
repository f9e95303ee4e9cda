"""Which Celonis base URL to talk to: `--base-url`, then `$CELONIS_BASE_URL`, then the manifest.

An environment chosen with `--env` that names its own base URL is not overridden by
`$CELONIS_BASE_URL` set for another purpose: when the two differ, the command stops
(jobs looked up by name would be found, and run, in the other team's Celonis).

Only `https://` is accepted, except on loopback hosts (127.0.0.0/8, ::1,
localhost) where `http://` is allowed so the runner can talk to the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from runner.errors import UsageError
from runner.shared_types import Connection
from runner.urls import is_loopback

BASE_URL_ENV = "CELONIS_BASE_URL"

_NONE_GIVEN = (
    "no Celonis base URL: set connection.base_url (or connection.team and connection.realm)"
    f" in the manifest, set ${BASE_URL_ENV}, or pass --base-url"
)


def resolve_base_url(
    connection: Connection,
    override: str | None,
    environ: Mapping[str, str],
    environment: str | None = None,
) -> str:
    """The base URL without a trailing slash; UsageError when there is none or it is unsafe.
    `environment`: the name of the manifest's environment that `connection` is (its URL is
    then not overridden by a $CELONIS_BASE_URL that names another)."""
    declared = connection.url
    if environment and declared and not (override and override.strip()):
        _refuse_ambient_override(environment, declared, environ.get(BASE_URL_ENV))
    candidates = (
        (override, "--base-url"),
        (environ.get(BASE_URL_ENV), f"${BASE_URL_ENV}"),
        (connection.url, "the manifest's connection"),
    )
    for value, source in candidates:
        if value and value.strip():
            return check_base_url(value.strip(), source)
    raise UsageError(_NONE_GIVEN)


def _refuse_ambient_override(name: str, declared: str, ambient: str | None) -> None:
    """UsageError when $CELONIS_BASE_URL names another Celonis than environment `name` does."""
    if not ambient or not ambient.strip():
        return
    if ambient.strip().rstrip("/") == declared.strip().rstrip("/"):
        return
    raise UsageError(
        f"${BASE_URL_ENV} ({_shown(ambient.strip())!r}) is not the base URL that environment"
        f" {name!r} declares ({_shown(declared.strip())!r}): the run would go to another"
        f" Celonis than environment {name!r}. Unset ${BASE_URL_ENV} to use the environment's"
        " URL, or pass --base-url to choose the URL on purpose"
    )


def check_base_url(url: str, source: str) -> str:
    """`url` normalised (no trailing slash), or UsageError saying what is wrong and where."""
    parts = _split(url)
    if parts is None:
        raise UsageError(f"base URL from {source} is not a URL: {_shown(url)!r}")
    problem = _problem(parts, url, source)
    if problem is not None:
        raise UsageError(problem)
    return url.rstrip("/")


def _split(url: str) -> SplitResult | None:
    """The URL's parts, or None when it is not one (a bad port included)."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - read here as before: any ValueError means not a URL
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return parts


def _problem(parts: SplitResult, url: str, source: str) -> str | None:
    """What is wrong with a base URL that parses, or None."""
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        return (
            f"base URL from {source} is not a URL: {_shown(url)!r}"
            " (expected https://TEAM.REALM.celonis.cloud)"
        )
    if parts.username is not None or parts.password is not None:
        return (
            f"base URL from {source} must not contain a user name or password;"
            " put the key in the environment variable named by connection.auth"
        )
    if parts.query or parts.fragment:
        return (
            f"base URL from {source} must not have a query or fragment: {_shown(url)!r}"
            " (expected https://TEAM.REALM.celonis.cloud)"
        )
    if parts.scheme == "http" and not is_loopback(host):
        return (
            f"base URL from {source} uses http:// for {host}: only https:// is allowed"
            " (http:// only for 127.0.0.1, ::1 and localhost)"
        )
    return None


def _shown(url: str) -> str:
    # A URL that may carry credentials (user:password@host) is not echoed back.
    return "<a URL with an @ in it>" if "@" in url else url
