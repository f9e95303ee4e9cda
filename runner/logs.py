"""Logging set-up for the CLI: readable lines for people (colour on a terminal), or JSON lines.

Only the commands call `configure`; library modules just
`structlog.get_logger(__name__)` and bind context. Every event passes
through a redactor that replaces any known secret value with `***` before
it is rendered (and so before a long line is shortened).

The console line: `HH:MM:SS +ELAPSED event key=value ...`: wall time, time
since logging started, durations as `1m30s`, no empty fields, at most
CONSOLE_WIDTH characters at the default verbosity. CI logs are read in a
browser, so the default is the console form everywhere; JSON lines with
`--log-format json` or CELONIS_RUNNER_LOG_FORMAT=json.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from runner.terminal import use_colour

REDACTED = "***"


class Redactor:
    """A structlog processor that removes secret values from every field of every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted(
            {form for s in secrets for form in secret_forms(s)}, key=len, reverse=True
        )

    def add(self, secret: str) -> None:
        added = [form for form in secret_forms(secret) if form not in self.secrets]
        if added:
            self.secrets = sorted([*self.secrets, *added], key=len, reverse=True)

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

    def appears_in(self, text: str) -> bool:
        """Whether a secret is in `text` as itself or as JSON writes it (json.dumps escapes
        character by character, so a secret inside a value shows as its escaped form)."""
        return any(s in text or _json_escaped(s) in text for s in self.secrets)

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        return {k: self.scrub(v) for k, v in event.items()}


@functools.lru_cache(maxsize=64)
def _json_escaped(secret: str) -> str:
    return json.dumps(secret)[1:-1]


MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: replacing them would garble ordinary text."""


def secret_forms(secret: str) -> set[str]:
    """Every form of `secret` that may reach an output: as set, as sent (the credential code
    strips the environment's value), and each as JSON writes it (with and without ASCII
    escapes: a Celonis message may quote a JSON body). Forms shorter than 4 are left out."""
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        forms |= {value, _json_escaped(value), json.dumps(value, ensure_ascii=False)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)


def secret_like_values(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names say they hold a credential."""
    return [
        value
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value.strip()) >= 8
    ]


LOG_FORMAT_ENV = "CELONIS_RUNNER_LOG_FORMAT"
LOG_FORMATS = ("console", "json")
CONSOLE_WIDTH = 120


def choose_format(
    requested: str | None, stream: TextIO, environ: Mapping[str, str] | None = None
) -> str:
    """`--log-format`, else $CELONIS_RUNNER_LOG_FORMAT, else console (on a terminal or not)."""
    if requested:
        return requested
    from_env = (environ or {}).get(LOG_FORMAT_ENV, "").strip().lower()
    if not from_env:
        return "console"
    if from_env not in LOG_FORMATS:
        from runner.errors import UsageError

        raise UsageError(f"${LOG_FORMAT_ENV} must be console or json, got {from_env[:20]!r}")
    return from_env


def configure(
    *,
    log_format: str,
    verbosity: int,
    stream: TextIO,
    environ: Mapping[str, str],
    redactor: Redactor,
) -> None:
    # -1 (`--quiet`): warnings and errors only
    level = logging.DEBUG if verbosity >= 1 else logging.INFO if verbosity == 0 else logging.WARNING
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if log_format == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redactor,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        width = None if verbosity >= 1 else CONSOLE_WIDTH
        processors += [
            structlog.processors.TimeStamper(fmt=None),
            redactor,
            structlog.processors.format_exc_info,
            ConsoleLine(colour=use_colour(stream, environ), width=width),
        ]
    wrapper = structlog.make_filtering_bound_logger(level)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _quiet_wrapper[:] = [wrapper] if level > logging.DEBUG else []


_quiet_wrapper: list[type[Any]] = []
"""The wrapper class `configure` last made, when it filters debug events out."""


def debug_enabled() -> bool:
    """Whether a debug event would be written. False only while the configuration that
    `configure` made at info level is in force, so a hot path may skip building a debug
    event's fields; True whenever unsure (structlog unconfigured or configured elsewhere)."""
    return not _quiet_wrapper or structlog.get_config()["wrapper_class"] is not _quiet_wrapper[0]


class BackgroundWriter:
    """A log stream whose lines reach `target` from a writer thread, in order, moments later.

    Why: a write to a terminal, pipe or file releases the GIL, and the thread that wrote
    then waits for the HTTP worker threads to hand it back (up to the 5 ms switch interval).
    On the scheduling thread that wait cost 0.65 ms per log line, 20 s for a 10,000-job run:
    the scheduler starts jobs late. Here the scheduling thread only appends to a list; the
    writer thread pays the wait. `close()` writes what is left and makes writes synchronous
    again: call it before anything else is written to the same stream (summary, errors).
    """

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()

    def write(self, text: str) -> int:
        with self._lock:
            if not self._closed:
                self._pending.append(text)
                if len(self._pending) == 1:
                    self._wake.set()
                return len(text)
        self.target.write(text)
        self.target.flush()
        return len(text)

    def flush(self) -> None:
        """The writer thread flushes after every batch (structlog calls this after each line)."""

    def isatty(self) -> bool:
        return self.target.isatty()

    def _drain(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                batch, self._pending = self._pending, []
                closed = self._closed
            if batch:
                self.target.write("".join(batch))
                self.target.flush()
            if closed:
                return

    def close(self) -> None:
        """Write every pending line, end the writer thread; later writes go straight through."""
        with self._lock:
            self._closed = True
            self._wake.set()
        self._thread.join()


RESET = "\x1b[0m"
GREEN, RED, YELLOW, CYAN, DIM = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[2m"
STATE_COLOURS = {
    "succeeded": GREEN,
    "success": GREEN,
    "failed": RED,
    "fail": RED,
    "timed_out": RED,
    "unclear": RED,
    "cancelled": YELLOW,
    "cancel": YELLOW,
    "skipped": YELLOW,
    "not_started": YELLOW,
    "running": CYAN,
    "starting": CYAN,
    "waiting": CYAN,
}
"""Colours of job states (ours, lower case) and Celonis statuses (upper case, folded)."""

DURATION_FIELDS = frozenset(
    {"elapsed", "duration", "wait", "grace", "expires_in", "refresh_in", "assumed_expires_in"}
)
"""Fields that hold seconds: shown as `1m30s`."""

SHORTENED_FIELDS = ("reason", "error", "headers", "path", "base_url", "manifest")
"""Free text that may be cut (with `…`) to keep a console line within its width, first first."""

QUIET_VALUES = {"attempt": 1, "posts": 1}
"""Values a console line leaves out as the usual case (JSON lines keep every field)."""

LEVEL_TAGS = {"warning": "WARN ", "error": "ERROR ", "critical": "ERROR ", "debug": "debug "}


def colour_state(text: str, colour: bool, state: str | None = None) -> str:
    """`text` in the colour of `state` (default: its first word), when `colour`; shared with
    the summary table."""
    key = (state or text.split(" ")[0]).lower()
    code = STATE_COLOURS.get(
        key, RED if key in ("api_error", "state_error", "interrupted") else None
    )
    code = code if colour else None
    return f"{code}{text}{RESET}" if code else text


class ConsoleLine:
    """Renders an event as one readable line (see the module docstring)."""

    def __init__(self, *, colour: bool, width: int | None) -> None:
        self.colour = colour
        self.width = width
        self.started: float | None = None

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        stamp = float(event.pop("timestamp", 0.0) or 0.0)
        if self.started is None:
            self.started = stamp
        level = str(event.pop("level", method))
        name = str(event.pop("event", ""))
        head = f"{_clock(stamp)} +{format_seconds(int(stamp - self.started)):<6} "
        head += LEVEL_TAGS.get(level, "") + name
        fields = [(k, _shown(k, v)) for k, v in event.items() if _worth_showing(name, k, v)]
        fields = self._fit(len(head), fields)
        line = self._paint(head, level, name) + "".join(
            f" {k}={self._value(k, v)}" for k, v in fields
        )
        return line

    def _fit(self, used: int, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Shorten free-text values until the line fits `width` (redaction already happened)."""
        if self.width is None:
            return fields
        for name in SHORTENED_FIELDS:
            total = used + sum(len(k) + len(v) + 2 for k, v in fields)
            if total <= self.width:
                break
            for i, (key, value) in enumerate(fields):
                if key == name and len(value) > 20:
                    keep = max(20, len(value) - (total - self.width))
                    fields[i] = (key, value[: keep - 1] + "…")
        return fields

    def _paint(self, head: str, level: str, name: str) -> str:
        if not self.colour:
            return head
        clock, rest = head[:9], head[9:]
        code = STATE_COLOURS.get(name.removeprefix("job_"))
        if level in ("error", "critical"):
            code = RED
        elif level == "warning" and code is None:
            code = YELLOW
        painted = f"{code}{rest}{RESET}" if code else rest
        return f"{DIM}{clock}{RESET}{painted}"

    def _value(self, key: str, value: str) -> str:
        if key == "status" and self.colour:
            return colour_state(value, True)
        return value


def format_seconds(seconds: float) -> str:
    """`1m30s`, `45s`, `0.5s`: how durations read in the console."""
    from runner.durations import format_duration

    return format_duration(max(0.0, float(seconds)))


def _clock(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def _worth_showing(event: str, key: str, value: Any) -> bool:
    if value is None or value == "" or QUIET_VALUES.get(key) == value:
        return False
    # `job_failed ... status=failed` says it twice
    return not (key == "status" and event == f"job_{value}")


def _shown(key: str, value: Any) -> str:
    if key in DURATION_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return format_seconds(value)
    # a list reads as its items (`a,b`), never as Python's `['a', 'b']`
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    return repr(text) if " " in text or not text.isprintable() else text
