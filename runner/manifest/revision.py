"""A manifest as a git revision has it: `REV:path` (`origin/main:jobs.yaml`), read with
`git show`, for `diff BASE` and `--base BASE`. An existing file of that name wins.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from runner.errors import UsageError

GIT_TIMEOUT = 60.0


def is_revision(spec: str) -> bool:
    """True when `spec` names a file in a git revision (`REV:path`) rather than a file here."""
    rev, colon, path = spec.partition(":")
    return bool(colon and rev and path) and not Path(spec).exists()


def read_revision(spec: str, *, git: str = "git", max_bytes: int | None = None) -> bytes:
    """The file's bytes as `git show REV:path` gives them (in the current directory's
    repository); UsageError saying what git said and how to get the revision."""
    try:
        done = subprocess.run(
            [git, "show", spec], capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise UsageError(f"cannot read {spec}: git is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"cannot read {spec}: git show took over {GIT_TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"cannot read {spec} with git show: {_reason(said, spec)}")
    if max_bytes is not None and len(done.stdout) > max_bytes:
        raise UsageError(f"{spec}: larger than {max_bytes:,} bytes (--max-size)")
    return done.stdout


@contextlib.contextmanager
def materialized(spec: str, *, max_bytes: int | None = None) -> Iterator[Path]:
    """A path to read `spec` from: the file itself, or a temporary copy of `REV:path`."""
    if not is_revision(spec):
        yield Path(spec)
        return
    data = read_revision(spec, max_bytes=max_bytes)
    with tempfile.TemporaryDirectory(prefix="celonis-runner-base-") as folder:
        path = Path(folder) / Path(spec.partition(":")[2]).name
        path.write_bytes(data)
        yield path


def _reason(said: list[str], spec: str) -> str:
    rev = spec.partition(":")[0]
    first = said[0].removeprefix("fatal: ").rstrip(".") if said else "git show failed"
    if "invalid object name" in first or "unknown revision" in first:
        return (
            f"{first}. Is {rev} fetched? In CI: `git fetch origin {rev.removeprefix('origin/')}`"
            " (actions/checkout fetches one commit unless told `fetch-depth: 0`)"
        )
    if "does not exist in" in first or "exists on disk, but not in" in first:
        return f"{first} (the path is from the repository's top; write {rev}:./FILE for a path from here)"
    if "not a git repository" in first:
        return f"{first}: run it inside the repository, or give BASE as a file"
    return first
