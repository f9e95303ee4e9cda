"""The live progress line on a terminal (never in CI logs): done / running / waiting / failed, elapsed."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from runner.durations import format_duration
from runner.executor import JobRun, RunState

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
    def __init__(self, target: TextIO, *, enabled: bool) -> None:
        self.target = target
        self.enabled = enabled
        self.line = ""
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stream: TextIO = _Stream(self) if enabled else target  # type: ignore[assignment]

    def update(self, state: RunState, job: JobRun) -> None:
        if not self.enabled:
            return
        counts = state.counts()
        done = counts.get("succeeded", 0)
        failed = sum(counts.get(k, 0) for k in ("failed", "timed_out", "cancelled"))
        running = counts.get("running", 0) + counts.get("starting", 0)
        waiting = counts.get("pending", 0) + counts.get("waiting", 0)
        elapsed = format_duration(time.monotonic() - self.started)
        line = (
            f"[{elapsed}] {done}/{len(state.jobs)} done, {running} running, {waiting} waiting, "
            f"{failed} failed, {counts.get('skipped', 0)} skipped"
        )
        with self.lock:
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
        if self.enabled and self.line:
            with self.lock:
                self.target.write(_CLEAR)
                self.target.flush()
                self.line = ""
