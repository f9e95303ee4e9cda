"""Everything a run writes at its end (JSON report, summary, GitHub outputs, JUnit,
HTML), and the checks of those paths before the run starts.

All of it renders one `RunResult`, redacted once by its maker (`RunResult.redacted`)
before any output shortens a text. A file that cannot be written is said plainly;
the summary is printed all the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from runner.errors import RunnerError, UsageError
from runner.files import REPORT_MODE, write_json_atomic
from runner.reports import github
from runner.reports.junit import write_junit
from runner.reports.report import build_report, write_summary
from runner.runresult.model import RunResult
from runner.terminal import use_colour


@dataclass(frozen=True)
class Outputs:
    """Where a run's results go (None: not asked for)."""

    report: str | None = None
    junit_xml: str | None = None
    github: bool = False
    html: str | None = None
    quiet: bool = False
    """The summary: only the jobs that did not succeed, and the verdict."""


def check_paths(manifest: str, named: Sequence[tuple[str, str | None]]) -> None:
    """UsageError, before anything runs, for an output (option, path) that would overwrite the
    manifest or cannot be written (no such folder, a directory, no permission)."""
    target = Path(manifest)
    for option, path in named:
        if not path:
            continue
        if _same_file(Path(path), target):
            raise UsageError(f"{option} {path} is the manifest itself: choose another file")
        problem = _unwritable(Path(path))
        if problem:
            raise UsageError(f"cannot write {option} {path}: {problem}")


def check_state_dir(directory: Path) -> None:
    """UsageError unless run state can be saved in `directory` (created if missing)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(_state_dir_message(directory, exc.strerror or str(exc))) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(_state_dir_message(directory, "permission denied"))


def _state_dir_message(directory: Path, why: str) -> str:
    return (
        f"cannot save run state in {directory}: {why}; choose a folder you can write with"
        " --state-dir or $CELONIS_RUNNER_STATE_DIR"
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot be written, or None; missing folders are fine when one that exists
    above them can be written (the report writers create them)."""
    if path.is_dir():
        return "it is a directory"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"permission denied in {folder}"
    return None


def write_outputs(
    run: RunResult,
    outputs: Outputs,
    *,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> bool:
    """The summary on stdout and every output asked for, of a run already redacted
    (`RunResult.redacted`); False if one could not be written (said on stderr, the others are
    written all the same)."""
    ok = True
    if outputs.report:
        report = build_report(run)  # written as report_text renders it (`report --format`)
        ok &= _written(
            stderr,
            "--report",
            outputs.report,
            lambda p: write_json_atomic(p, report, mode=REPORT_MODE),
        )
    write_summary(run, stdout, colour=use_colour(stdout, environ), quiet=outputs.quiet)
    if outputs.github:
        github.report_run(run, stream=stderr, environ=environ)
    if outputs.junit_xml:
        ok &= _written(stderr, "--junit-xml", outputs.junit_xml, lambda p: write_junit(p, run))
    if outputs.html:
        ok &= _written(stderr, "--html", outputs.html, lambda p: _write_html(p, run))
    return ok


def _write_html(path: Path, run: RunResult) -> None:
    from runner.reports.html import write_html

    write_html(path, run)


def _written(stderr: TextIO, option: str, path: str, write: Callable[[Path], object]) -> bool:
    try:
        write(Path(path))
    except RunnerError as exc:
        stderr.write(f"celonis-runner: error: {exc}\n")
        return False
    except OSError as exc:
        stderr.write(
            f"celonis-runner: error: cannot write {option} {path}: {exc.strerror or exc}"
            " (the run itself is over: see its summary)\n"
        )
        return False
    return True
