"""Time, injected: the real clock, and a scaled one shared by the emulator and the runner in tests.

A `ScaledClock(600)` runs 600 virtual seconds per real second, so a 10-minute
job and a 10-second poll interval keep their proportions while a test takes
a second. Everything that waits or reads time takes a `Clock`.

Two processes that each make a `ScaledClock` (the emulator, and a runner
started later) agree on the virtual date only if they share an origin: the
real epoch second at which virtual and real time coincide. Each clock's
virtual time is `origin + (real now - origin) * scale`; without an origin
given, the origin is the moment the clock is made.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from runner.errors import UsageError

TIME_SCALE_ENV = "CELONIS_RUNNER_TIME_SCALE"
TIME_ORIGIN_ENV = "CELONIS_RUNNER_TIME_ORIGIN"
"""Real epoch seconds where a scaled clock's virtual time equals real time: the emulator
prints its own, so a runner started later agrees with it on virtual dates."""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (virtual seconds when scaled)."""

    def time(self) -> float:
        """Epoch seconds (virtual when scaled)."""

    def sleep(self, seconds: float) -> None:
        """Wait this many (virtual) seconds."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait until `event` is set or the time is up; True if the event was set."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0))


class ScaledClock:
    """Virtual time running `scale` times faster than real time, from `origin` (real epoch
    seconds; default: now), where virtual and real time coincide."""

    def __init__(self, scale: float, origin: float | None = None) -> None:
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError("time scale must be a positive finite number")
        if origin is not None and not math.isfinite(origin):
            raise ValueError("time origin must be a finite number of epoch seconds")
        self.scale = scale
        self._real_start = time.monotonic()
        real_now = time.time()
        self.origin = real_now if origin is None else origin
        """The real epoch second where virtual time equals real time."""
        self._wall_start = self.origin + (real_now - self.origin) * scale

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_start) * self.scale

    def time(self) -> float:
        return self._wall_start + self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0) / self.scale)


def time_origin(environ: Mapping[str, str]) -> float | None:
    """$CELONIS_RUNNER_TIME_ORIGIN (None when unset): the origin of a scaled clock."""
    text = environ.get(TIME_ORIGIN_ENV, "").strip()
    if not text:
        return None
    try:
        origin = float(text)
    except ValueError:
        origin = math.nan
    if not (math.isfinite(origin) and origin >= 0):
        raise UsageError(
            f"${TIME_ORIGIN_ENV} must be a number of epoch seconds (what the emulator prints),"
            f" got {text[:20]!r}"
        )
    return origin
