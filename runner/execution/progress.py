"""The live progress line on a terminal (never in CI logs): done / running / waiting / failed, elapsed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from runner.execution.runstate import JobRun, JobState, RunState
from runner.manifest.durations import format_duration

_CLEAR = "\r\x1b[K"


class _Stream:
    """Log output goes through here so the progress line is cleared before and drawn after."""

    def __init__(self, owner: ProgressLine) -> None:
        self.owner = owner

    def write(self, text: str) -> int:
        return self.owner.write_through(text)

    def flush(self) -> None:
        self.owner.target.flush()

    def isatty(self) -> bool:
        return self.owner.target.isatty()


class ProgressLine:
    """The ticking line on a terminal. It shows real elapsed time (what the person waits),
    from `monotonic`, even when the run's clock is scaled."""

    def __init__(
        self,
        target: TextIO,
        *,
        enabled: bool,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.enabled = enabled
        self.line = ""
        self._monotonic = monotonic
        self.started = monotonic()
        self.lock = threading.Lock()
        self.stream: TextIO = _Stream(self) if enabled else target  # type: ignore[assignment]
        self._state: RunState | None = None
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    def update(self, state: RunState, job: JobRun) -> None:
        """A listener of the executor: redraw on every state change (and every second, for elapsed)."""
        if not self.enabled:
            return
        self._state = state
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        self._draw(state)

    def _tick(self) -> None:
        while not self._closed.wait(1.0):
            if self._state is not None:
                self._draw(self._state)

    def _draw(self, state: RunState) -> None:
        counts = state.counts()
        done = counts.get("succeeded", 0)
        failed = sum(n for s, n in counts.items() if JobState(s).is_unsuccessful)
        running = counts.get("running", 0) + counts.get("starting", 0)
        waiting = counts.get("pending", 0) + counts.get("waiting", 0)
        elapsed = format_duration(float(int(self._monotonic() - self.started)))
        line = (
            f"[{elapsed}] {done}/{len(state.jobs)} done, {running} running, {waiting} waiting, "
            f"{failed} failed, {counts.get('skipped', 0)} skipped"
        )
        with self.lock:
            if self._closed.is_set():
                return
            self.line = line
            self.target.write(_CLEAR + line)
            self.target.flush()

    def write_through(self, text: str) -> int:
        with self.lock:
            if self.line:
                self.target.write(_CLEAR)
            written = self.target.write(text)
            if self.line and text.endswith("\n"):
                self.target.write(self.line)
            self.target.flush()
            return written

    def close(self) -> None:
        self._closed.set()
        if self.enabled and self.line:
            with self.lock:
                self.target.write(_CLEAR)
                self.target.flush()
                self.line = ""
