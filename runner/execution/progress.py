"""The live progress line on a terminal (never in CI logs): done / running / waiting / failed, elapsed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

from runner.durations import format_duration
from runner.execution.runstate import JobRun, JobState, RunState
from runner.logs import BackgroundWriter

_CLEAR = "\r\x1b[K"
DRAW_INTERVAL = 0.1
"""Seconds between redraws on state changes (the ticker redraws every second anyway)."""


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
    """The progress line, and the stream logs go through (`stream`). It shows real elapsed
    time (what the person waits), from `monotonic`, even when the run's clock is scaled.

    With `background`, log lines reach the target from a writer thread (`BackgroundWriter`:
    the scheduling thread never waits on a write); `close()` writes what is left.
    """

    def __init__(
        self,
        target: TextIO,
        *,
        enabled: bool,
        background: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.enabled = enabled
        self.line = ""
        self._monotonic = monotonic
        self.started = monotonic()
        self.lock = threading.Lock()
        stream: TextIO = _Stream(self) if enabled else target  # type: ignore[assignment]
        self._writer = BackgroundWriter(stream) if background else None
        self.stream: TextIO = self._writer or stream  # type: ignore[assignment]
        self._state: RunState | None = None
        self._counts: dict[str, int] = {}
        self._seen: dict[str, str] = {}
        self._drawn_at: float | None = None
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    def update(self, state: RunState, job: JobRun) -> None:
        """A listener of the executor: redraw on a state change (at most every DRAW_INTERVAL
        seconds: a terminal write per change would slow the scheduler) and every second."""
        if not self.enabled:
            return
        if self._state is None:
            self._state, self._counts = state, state.counts()
            self._seen = {name: run.state for name, run in state.jobs.items()}
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        # counted as it changes: counting every job on every change is quadratic in a run
        old = self._seen.get(job.name)
        if old != job.state:
            if old is not None:
                self._counts[old] -= 1
            self._counts[job.state] = self._counts.get(job.state, 0) + 1
            self._seen[job.name] = job.state
        now = self._monotonic()
        if self._drawn_at is None or now - self._drawn_at >= DRAW_INTERVAL:
            self._drawn_at = now
            self._draw(dict(self._counts), len(state.jobs))

    def _tick(self) -> None:
        while not self._closed.wait(1.0):
            if self._state is not None:  # a full count once a second keeps the line exact
                self._draw(self._state.counts(), len(self._state.jobs))

    def _draw(self, counts: dict[str, int], total: int) -> None:
        done = counts.get("succeeded", 0)
        failed = sum(n for s, n in counts.items() if JobState(s).is_unsuccessful)
        running = counts.get("running", 0) + counts.get("starting", 0)
        waiting = counts.get("pending", 0) + counts.get("waiting", 0)
        elapsed = format_duration(float(int(self._monotonic() - self.started)))
        line = (
            f"[{elapsed}] {done}/{total} done, {running} running, {waiting} waiting, "
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
        """Write the pending log lines, then clear the progress line (a second call does nothing)."""
        if self._writer is not None:
            self._writer.close()
        self._closed.set()
        if self.enabled and self.line:
            with self.lock:
                self.target.write(_CLEAR)
                self.target.flush()
                self.line = ""
