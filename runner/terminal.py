"""Is output going to a person at a terminal: `isatty`, and whether to use colour (NO_COLOR)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO


def isatty(stream: TextIO) -> bool:
    """Whether `stream` is a terminal (False for streams without a file behind them)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_colour(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org) or TERM=dumb."""
    return isatty(stream) and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"
