"""The scenario's rate limit: fixed windows of `per` virtual seconds, `requests` in each."""

from __future__ import annotations

import math

from runner.emulator.scenario import RateLimit


class RateLimiter:
    def __init__(self, limit: RateLimit, start: float) -> None:
        self.limit = limit
        self._start = start
        self._window = 0
        self._count = 0

    def _roll(self, now: float) -> None:
        window = math.floor((now - self._start) / self.limit.per)
        if window != self._window:
            self._window = window
            self._count = 0

    def admit(self, now: float) -> bool:
        """Count a request; False (not counted) when the window is full."""
        self._roll(now)
        if self._count >= self.limit.requests:
            return False
        self._count += 1
        return True

    def headers(self, now: float) -> dict[str, str]:
        """x-ratelimit-limit and x-ratelimit-remaining, for every answer."""
        self._roll(now)
        return {
            "x-ratelimit-limit": str(self.limit.requests),
            "x-ratelimit-remaining": str(max(self.limit.requests - self._count, 0)),
        }

    def reset_after(self, now: float) -> int:
        """Whole (virtual) seconds until the window ends, at least 1."""
        window_end = self._start + (self._window + 1) * self.limit.per
        return max(math.ceil(window_end - now), 1)
