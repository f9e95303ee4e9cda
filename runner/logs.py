"""Logging set-up for the CLI: structlog, console on a terminal, JSON lines otherwise.

Only the CLI entry point calls `configure`; library modules just
`structlog.get_logger(__name__)` and bind context. Every event passes
through a redactor that replaces any known secret value with `***`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from runner.terminal import isatty, use_colour

REDACTED = "***"


class Redactor:
    """A structlog processor that removes secret values from every field of every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, Mapping):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        return {k: self.scrub(v) for k, v in event.items()}


_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)


def secret_like_values(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names say they hold a credential."""
    return [
        value for name, value in environ.items() if _SECRET_NAME.search(name) and len(value) >= 8
    ]


def choose_format(
    requested: str | None, stream: TextIO, environ: Mapping[str, str] | None = None
) -> str:
    if requested:
        return requested
    return "console" if isatty(stream) else "json"


def configure(
    *,
    log_format: str,
    verbosity: int,
    stream: TextIO,
    environ: Mapping[str, str],
    redactor: Redactor,
) -> None:
    level = logging.DEBUG if verbosity >= 1 else logging.INFO
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor,
    ]
    if log_format == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        colors = use_colour(stream, environ)
        processors.append(structlog.dev.ConsoleRenderer(colors=colors))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
