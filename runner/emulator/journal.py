"""The emulator's journal: every request and execution event, in memory and as JSON lines.

Entries carry `seq` (1, 2, ...) and `t` (virtual seconds on the emulator's
clock). They never hold a key, token, secret or header value.
"""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any, TextIO


class Journal:
    def __init__(self, path: Path | None = None) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._path = path
        self._file: TextIO | None = None

    def open(self) -> None:
        """Start writing the JSON lines file (truncated), if there is one."""
        if self._path is not None and self._file is None:
            self._file = self._path.open("w", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def record(self, t: float, entry: dict[str, Any]) -> None:
        with self._lock:
            full = {"seq": len(self._entries) + 1, "t": t, **entry}
            self._entries.append(full)
            if self._file is not None:
                self._file.write(json.dumps(full, separators=(",", ":")) + "\n")
                self._file.flush()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._entries)
