"""Celonis' clock, measured: the offset between this machine's wall clock and Celonis' dates.

Every answer's HTTP `Date` header (whole seconds) says what Celonis' clock
read at some moment between our send and our receipt of it. So the offset
(Celonis minus ours) lies in [Date - received, Date + 1 - sent]. The bounds of
recent answers are intersected: `lo` is how far behind ours Celonis' clock can
at most be, `hi` how far ahead. A local time `t` is then at least
`t + lo` on Celonis' clock: `floor_ms` gives that, less a small tolerance for
the spread between Celonis' own machines (`ceiling_ms`: at most `t + hi`, plus it). No fixed window: the bound is as
wide as the measurements are.

Bounds that contradict each other (a clock stepped by NTP, a proxy's Date)
drop the older ones. Without any Date header the clocks are assumed to agree
within NO_DATE_TOLERANCE and a warning says so once.
"""

from __future__ import annotations

import email.utils
import threading
from collections import deque
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

TOLERANCE = 2.0
"""Seconds allowed between the Celonis machine that dates an answer and the one that dates an
execution (both are Celonis' clock; they may differ by a little)."""

NO_DATE_TOLERANCE = 300.0
"""Seconds our clock and Celonis' are assumed to differ by at most when no answer had a Date."""

WINDOW = 64
"""Answers whose bounds are intersected."""


@dataclass(frozen=True)
class Offset:
    """Celonis' clock minus ours, in seconds: somewhere in [lo, hi]."""

    lo: float
    hi: float

    @property
    def spread(self) -> float:
        return self.hi - self.lo

    def to_dict(self) -> dict[str, float]:
        return {"lo": round(self.lo, 3), "hi": round(self.hi, 3)}

    @classmethod
    def from_dict(cls, data: object) -> Offset | None:
        if not isinstance(data, dict):
            return None
        lo, hi = data.get("lo"), data.get("hi")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
            return None
        assert isinstance(lo, int | float) and isinstance(hi, int | float)
        return cls(float(lo), float(hi)) if lo <= hi else None


class CelonisClock:
    """The measured offset; `note` is called with every answer (from any request thread)."""

    def __init__(self, known: Offset | None = None) -> None:
        self._bounds: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._lock = threading.Lock()
        self._last_header: str | None = None
        self._last_date: float | None = None
        self._warned = False
        if known is not None:
            self._bounds.append((known.lo, known.hi))

    def note(self, sent: float, received: float, header: str | None) -> None:
        """An answer dated `header` (its Date), sent and received at these local epoch seconds."""
        if not header:
            return
        date = self._parse(header)
        if date is None:
            return
        bound = (date - received, date + 1.0 - sent)
        with self._lock:
            if self._bounds:
                lo = max(max(b[0] for b in self._bounds), bound[0])
                hi = min(min(b[1] for b in self._bounds), bound[1])
                if lo > hi:  # a clock moved: the older bounds no longer hold
                    log.info("api.clock_offset_changed", before=self._offset_locked(), now=bound)
                    self._bounds.clear()
            self._bounds.append(bound)

    def _parse(self, header: str) -> float | None:
        if header == self._last_header:  # the Date changes once a second: parse it once
            return self._last_date
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:
            return None
        date = parsed.timestamp()
        self._last_header, self._last_date = header, date
        return date

    def offset(self) -> Offset | None:
        """The offset as measured so far; None before any dated answer."""
        with self._lock:
            return self._offset_locked()

    def _offset_locked(self) -> Offset | None:
        if not self._bounds:
            return None
        return Offset(max(b[0] for b in self._bounds), min(b[1] for b in self._bounds))

    def floor_ms(self, local: float) -> int:
        """Epoch ms on Celonis' clock that local epoch time `local` is certainly not before."""
        offset = self.offset()
        if offset is None:
            if not self._warned:
                self._warned = True
                log.warning(
                    "api.clock_offset_unknown",
                    assumed=f"within {NO_DATE_TOLERANCE:g} s",
                    why="no answer of Celonis had a Date header",
                )
            return int((local - NO_DATE_TOLERANCE) * 1000)
        return int((local + offset.lo - TOLERANCE) * 1000)

    def ceiling_ms(self, local: float) -> int:
        """Epoch ms on Celonis' clock that local epoch time `local` is certainly not after."""
        offset = self.offset()
        if offset is None:
            return int((local + NO_DATE_TOLERANCE) * 1000)
        return int((local + offset.hi + TOLERANCE) * 1000)
