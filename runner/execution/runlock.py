"""One run of a manifest at a time per state directory: a lock file that names its holder.

Two `run`s (or `--resume`s) of the same manifest with the same state
directory would start every job twice and write one state file from two
processes. The lock is an flock on `<state dir>/.lock-<hash of the manifest
path>`: the OS releases it on any exit, SIGKILL included, so a dead holder
never blocks a new run. The holder writes its pid, host and start time into
the file, for the message the second process shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from runner.clock import Clock, SystemClock
from runner.errors import UsageError


def lock_path(directory: Path, manifest: str) -> Path:
    key = hashlib.sha256(str(Path(manifest).resolve()).encode("utf-8")).hexdigest()[:16]
    return directory / f".lock-{key}"


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote; the OS lock is the truth, this is for the message."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"process {int(data['pid'])} on {data['host']}, started {data['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


@contextlib.contextmanager
def run_lock(directory: Path, manifest: str, clock: Clock | None = None) -> Iterator[Path]:
    """Hold the lock for the block; UsageError (exit 2) naming the holder when another has it."""
    path = lock_path(directory, manifest)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(
            f"cannot write in the state directory {directory} ({exc.strerror}): "
            "choose a writable one with --state-dir"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another run of {manifest} with the state in {directory} is going on "
                f"({_holder(fd)}): wait until it ends, or stop it, before you start a run "
                "or --resume; two runs at once would start every job twice"
            ) from None
        started = datetime.fromtimestamp((clock or SystemClock()).time(), UTC)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started.isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
