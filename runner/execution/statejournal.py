"""The state file's journal: JSON lines appended to `<run id>.jsonl`, one per changed job.

Appending costs what changed, not the run's size. A line is only trusted
together with the snapshot of its generation (see statefile.StateStore), so
a journal left over from before a compaction, or a last line torn by a
crash, never changes what a resume reads.
"""

from __future__ import annotations

import os
from pathlib import Path


class JournalFile:
    """An append-only file; `append` writes whole lines, `sync` makes them durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        """Bytes appended since the last reset."""
        self.bytes_written = 0
        """Bytes appended over this object's life."""
        self._fd: int | None = None
        self._dirty = False

    def reset(self) -> int:
        """Start empty (after a compaction: the snapshot now holds everything)."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._fd = fd
        self.size = 0
        return fd

    def append(self, data: bytes) -> None:
        fd = self._fd if self._fd is not None else self.reset()
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        self.size += len(data)
        self.bytes_written += len(data)
        self._dirty = True

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._dirty = False
