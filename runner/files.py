"""Writing files whole or not at all: a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPORT_MODE = 0o644
"""Reports (JSON, JUnit, HTML, `report --out`) are read by the CI user's group and other
tools; they hold no secret (the key is scrubbed). The umask still applies (027: 0640)."""


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """A reader sees the old file or the new one, never half of one. Raises OSError.

    The file is 0600 (the state file's), or `mode` less the umask, as `open` would make it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, *, mode: int | None = None) -> None:
    """`data` as indented JSON, written atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n", mode=mode)


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (threads may be
    creating files meanwhile); elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o077)
    os.umask(current)
    return current
