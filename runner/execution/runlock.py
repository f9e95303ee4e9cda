"""One process per run, and one run of a manifest at a time per state directory: lock files
that name their holder.

Two `run`s (or `--resume`s) of the same manifest with the same state
directory would start every job twice and write one state file from two
processes: `run_lock` is an flock on `<state dir>/.lock-<hash of the manifest
path>`. The manifest's path is not the run, though: a copy or a hard link of
the manifest is another path to the same run (issue 20 #8). So each run also
has its own lock, `run_id_lock`, an flock on `<state dir>/.lock-run-<run id>`:
a new run takes it as soon as its run id exists, and `--resume RUN_ID` takes it
before it reads the run's state, whatever manifest path it was given.

The OS releases an flock on any exit, SIGKILL included, so a dead holder never
blocks a new run or a resume. The holder writes its pid, host and start time
into the file, for the message the second process shows, and removes the file
when it is done (a SIGKILLed holder leaves it: the next holder takes it over).
Removal is safe because a process that locked a file checks that the path still
names that file, and opens it again if a holder removed it in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from runner.clock import Clock, SystemClock
from runner.errors import UsageError


def lock_path(directory: Path, manifest: str) -> Path:
    key = hashlib.sha256(str(Path(manifest).resolve()).encode("utf-8")).hexdigest()[:16]
    return directory / f".lock-{key}"


def run_lock_path(directory: Path, run_id: str) -> Path:
    """The lock file of one run (run ids are letters, digits and dashes: a safe file name)."""
    return directory / f".lock-run-{run_id}"


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
    """Hold the manifest's lock for the block; UsageError (exit 2) naming the holder when another
    has it."""

    def refused(holder: str) -> str:
        return (
            f"another run of {manifest} with the state in {directory} is going on "
            f"({holder}): wait until it ends, or stop it, before you start a run "
            "or --resume; two runs at once would start every job twice"
        )

    with _flock(directory, lock_path(directory, manifest), clock, refused) as path:
        yield path


@contextlib.contextmanager
def run_id_lock(directory: Path, run_id: str, clock: Clock | None = None) -> Iterator[Path]:
    """Hold run `run_id`'s own lock for the block; UsageError (exit 2) naming the holder when
    another process runs or resumes that run, through whichever manifest path."""

    def refused(holder: str) -> str:
        return (
            f"run {run_id} (state in {directory}) is going on in {holder}: it cannot be "
            "resumed while that process lives, through this manifest path or another; "
            "wait until it ends, or stop it, then resume. Two processes on one run would "
            "start its jobs twice and both write its state file"
        )

    with _flock(directory, run_lock_path(directory, run_id), clock, refused) as path:
        yield path


@contextlib.contextmanager
def _flock(
    directory: Path, path: Path, clock: Clock | None, refused: Callable[[str], str]
) -> Iterator[Path]:
    """An exclusive flock on `path` for the block, with this process written in as its holder;
    UsageError(refused(who holds it)) when another process does. The file is removed at the
    end, while still locked."""
    fd = _locked(directory, path, refused)
    try:
        started = datetime.fromtimestamp((clock or SystemClock()).time(), UTC)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started.isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the lock


def _locked(directory: Path, path: Path, refused: Callable[[str], str]) -> int:
    """A descriptor of `path`, flocked, that `path` still names (a holder that ended may have
    removed the file between our open and our lock: then open the new one)."""
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(
                f"cannot write in the state directory {directory} ({exc.strerror}): "
                "choose a writable one with --state-dir"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(refused(holder)) from None
        if _names(path, fd):
            return fd
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` is the file open as `fd`."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
