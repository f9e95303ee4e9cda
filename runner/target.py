"""Which Celonis API a command talks to: the team's (base URL, credentials, clock) or the embedded emulator.

Shared by `run`, `plan --check-remote` and `status`, so they resolve the
base URL, the credentials, the clock and the HTTP timeouts the same way.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import requests
import structlog

from runner import logs
from runner.api import CelonisClient, KeyAuth, Secret, auth_from_config, resolve_base_url
from runner.api.auth import Auth
from runner.api.tls import ca_bundle
from runner.api.transport import DEFAULT_TIMEOUTS
from runner.clock import (
    TIME_SCALE_ENV,
    Clock,
    ScaledClock,
    SystemClock,
    time_origin,
)
from runner.errors import UsageError
from runner.manifest.model import Manifest

log = structlog.get_logger(__name__)

DEFAULT_EMULATOR_SCALE = 60.0
"""`--emulator` without `--scenario`: emulated seconds per real second."""

READ_TIMEOUT_ENV = "CELONIS_RUNNER_READ_TIMEOUT"


@dataclass(frozen=True)
class Target:
    base_url: str
    auth: Auth
    clock: Clock


def http_timeouts(environ: Mapping[str, str]) -> tuple[float, float]:
    """(connect, read) timeouts in real seconds; the read timeout from $CELONIS_RUNNER_READ_TIMEOUT."""
    read = DEFAULT_TIMEOUTS[1]
    if environ.get(READ_TIMEOUT_ENV):
        try:
            read = float(environ[READ_TIMEOUT_ENV])
        except ValueError:
            raise UsageError(f"${READ_TIMEOUT_ENV} must be a number of seconds") from None
        if read <= 0:
            raise UsageError(f"${READ_TIMEOUT_ENV} must be more than 0")
    return (DEFAULT_TIMEOUTS[0], read)


def secret_values(manifest: Manifest, environ: Mapping[str, str]) -> list[str]:
    """The values of the credential variables the manifest names (for the log redactor)."""
    auth = manifest.connection.auth
    names = [auth.key_env, auth.client_id_env, auth.client_secret_env]
    values = [environ[n] for n in names if environ.get(n)]  # the Redactor adds stripped forms
    client_id = environ.get(auth.client_id_env, "").strip()
    secret = environ.get(auth.client_secret_env, "").strip()
    if client_id and secret:
        # a token endpoint may echo the Basic credentials it was sent (stripped, as sent)
        pair = f"{client_id}:{secret}"
        values += [pair, base64.b64encode(pair.encode()).decode("ascii")]
    return values


def _clock(environ: Mapping[str, str]) -> Clock:
    scale = environ.get(TIME_SCALE_ENV)
    origin = time_origin(environ)
    if not scale:
        return SystemClock()
    try:
        return ScaledClock(float(scale), origin)
    except ValueError:
        raise UsageError(
            f"${TIME_SCALE_ENV} must be a positive number (virtual seconds per real second),"
            f" got {scale[:20]!r}"
        ) from None


@contextlib.contextmanager
def open_target(
    manifest: Manifest,
    environ: Mapping[str, str],
    redactor: logs.Redactor,
    *,
    base_url: str | None = None,
    emulator: bool = False,
    scenario: str | None = None,
    emulator_journal: str | None = None,
) -> Iterator[Target]:
    """The team's API (`--base-url`, `$CELONIS_BASE_URL`, the manifest) or, with `emulator`,
    an embedded emulator serving the manifest's pools and jobs for as long as the context lasts."""
    if not emulator:
        yield Target(
            base_url=resolve_base_url(manifest.connection, base_url, environ, manifest.environment),
            auth=auth_from_config(manifest.connection.auth, environ),
            clock=_clock(environ),
        )
        return
    from runner.emulator import Emulator, Scenario, load_scenario

    # Without a scenario every job succeeds after its expected_duration (default 60 s), 60x faster.
    base = (
        load_scenario(Path(scenario)) if scenario else Scenario(time_scale=DEFAULT_EMULATOR_SCALE)
    )
    served = Scenario.from_manifest(manifest, base=base)
    clock = ScaledClock(served.time_scale)
    key = secrets.token_urlsafe(24)
    redactor.add(key)
    journal = Path(emulator_journal) if emulator_journal else None
    with Emulator(served, clock=clock, api_keys=[key], journal_path=journal) as running:
        log.info("emulator_started", base_url=running.base_url, time_scale=served.time_scale)
        yield Target(
            base_url=running.base_url, auth=KeyAuth("Bearer", Secret(key), "emulator"), clock=clock
        )


@contextlib.contextmanager
def connect(
    manifest: Manifest,
    environ: Mapping[str, str],
    redactor: logs.Redactor,
    *,
    base_url: str | None = None,
    emulator: bool = False,
    scenario: str | None = None,
) -> Iterator[CelonisClient]:
    """A client for a read-only command (`status`, `plan --check-remote`); the command has
    configured logging with `redactor` (see `logs.configure`)."""
    with open_target(
        manifest, environ, redactor, base_url=base_url, emulator=emulator, scenario=scenario
    ) as target:
        yield client_for(target, environ)


def client_for(
    target: Target, environ: Mapping[str, str], interrupt: threading.Event | None = None
) -> CelonisClient:
    """The client of `target`, with the timeouts and CA bundle the environment asks for."""
    return CelonisClient.connect(
        target.base_url,
        target.auth,
        requests.Session(),
        target.clock,
        timeouts=http_timeouts(environ),
        ca_bundle=ca_bundle(environ),
        interrupt=interrupt,
    )


def command_logging(
    manifest: Manifest, environ: Mapping[str, str], stream: TextIO, verbose: int = 0
) -> logs.Redactor:
    """Logging of a read-only command to `stream`, in the default format; its redactor."""
    redactor = logs.Redactor([*secret_values(manifest, environ), *logs.secret_like_values(environ)])
    logs.configure(
        log_format=logs.choose_format(None, stream, environ),
        verbosity=verbose,
        stream=stream,
        environ=environ,
        redactor=redactor,
    )
    return redactor
