"""Durations as written in manifests and scenarios: `90s`, `30m`, `2h`, `1h30m`, `500ms`, or seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|h|m|s))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

PATTERN = r"^(?:\d+(?:\.\d+)?(?:ms|h|m|s))+$"
"""The same grammar for the JSON Schema."""

MAX_SECONDS = 30 * 24 * 3600
"""The longest duration accepted anywhere (30 days): a finite bound keeps every sum and
every deadline computed from a duration finite."""
RANGE = "from 0 to 30 days"


class DurationRangeError(ValueError):
    """The duration is well-formed but negative, not finite, or longer than MAX_SECONDS."""


def parse_duration(value: object) -> float:
    """Seconds for a duration; ValueError with a hint on anything else.

    DurationRangeError (a ValueError) for a value outside 0..MAX_SECONDS,
    including NaN, infinities and integers too big for a float.
    """
    if isinstance(value, bool):
        raise ValueError(_hint(value))
    if isinstance(value, int | float):
        return _in_range(value, value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return _in_range(float(text), value)
        if _WHOLE.match(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
            return _in_range(seconds, value)
    raise ValueError(_hint(value))


def _in_range(seconds: float, value: object) -> float:
    # compared before any conversion: float(10**400) would raise, NaN fails every comparison
    if seconds < 0:
        raise DurationRangeError(f"duration must not be negative, got {value!r:.40}")
    if not seconds <= MAX_SECONDS:
        raise DurationRangeError(f"duration must be {RANGE}, got {value!r:.40}")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """Short human form: `1h30m`, `45s`, `0.5s`."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 and seconds != int(seconds) else f"{seconds:.0f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs and not hours:
        out += f"{secs}s"
    return out or "0s"


def _hint(value: object) -> str:
    return (
        f"invalid duration {value!r}: use a number of seconds or units like "
        "'90s', '30m', '2h', '1h30m', '500ms'"
    )
