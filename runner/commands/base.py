"""BASE for `diff`, `plan --base` and `run --base`: a manifest file or a git revision's file
(`origin/main:jobs.yaml`), checked like any manifest; and the change list a pull request's
step summary gets from `validate --github` and `diff --github`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner.commands.shared import check_file
from runner.errors import ManifestError, RunnerError

if TYPE_CHECKING:
    from runner.manifest.diff import ManifestDiff
    from runner.manifest.loader import CheckResult
    from runner.manifest.model import Manifest

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


def check_source(
    spec: str, environ: Mapping[str, str], *, strict_env: bool, max_bytes: int
) -> CheckResult:
    """check_file for a file; for `REV:path`, the file as `git show` gives it, its problems
    named `REV:path:line:column`."""
    from runner.manifest.loader import check_manifest
    from runner.manifest.revision import is_revision, materialized

    if not is_revision(spec):
        return check_file(spec, environ, strict_env=strict_env, max_bytes=max_bytes)
    with materialized(spec) as path:
        return check_manifest(
            path, environ, strict_env=strict_env, display=spec, max_bytes=max_bytes
        )


def load_pair(
    base: str, new: str, *, environ: Mapping[str, str], stderr: TextIO, max_bytes: int
) -> tuple[Manifest, Manifest]:
    """Both manifests, each validated first: every problem of both is reported (ManifestError)
    before anything is compared; warnings go to `stderr`."""
    from runner import problems as out

    results = [
        check_source(spec, environ, strict_env=False, max_bytes=max_bytes) for spec in (base, new)
    ]
    problems = [p for result in results for p in result.problems]
    if results[0].manifest is None or results[1].manifest is None:
        raise ManifestError(problems)
    out.write_text(problems, stderr)
    return results[0].manifest, results[1].manifest


def changes_against(
    base: str, new: Manifest, *, environ: Mapping[str, str], max_bytes: int
) -> ManifestDiff:
    """What changed from BASE to the manifest `new` (for `state:` selectors). BASE's warnings
    are not repeated: they are `new`'s too, as a rule; its errors stop the command."""
    from runner.manifest.diff import compare

    result = check_source(base, environ, strict_env=False, max_bytes=max_bytes)
    if result.manifest is None:
        raise ManifestError(result.problems)
    return compare(result.manifest, new)


def on_pull_request(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS and bool(
        environ.get("GITHUB_BASE_REF")
    )


def at_revision(rev: str, file: str) -> str:
    """`REV:./FILE`: `file` as the revision has it (`./`: a path from here, as `file` is,
    not from the repository's top)."""
    relative = Path(os.path.relpath(file)) if Path(file).is_absolute() else Path(file)
    return f"{rev}:./{relative.as_posix()}"


def pull_request_base(file: str, environ: Mapping[str, str]) -> str:
    """The file as the pull request's target branch has it: `origin/BRANCH:./FILE`."""
    return at_revision(f"origin/{environ['GITHUB_BASE_REF']}", file)


def pull_request_summary(
    files: Sequence[tuple[str, Manifest]],
    *,
    environ: Mapping[str, str],
    stream: TextIO,
    max_bytes: int,
) -> None:
    """For `validate --github` on a pull request: each valid file's changes against the
    target branch, as Markdown with the graph, in the step summary."""
    if not on_pull_request(environ) or not environ.get(STEP_SUMMARY_ENV):
        return
    from runner.reports.diff_output import markdown
    from runner.reports.github import append_step_summary

    parts = []
    for file, manifest in files:
        base = pull_request_base(file, environ)
        try:
            parts.append(
                markdown(changes_against(base, manifest, environ=environ, max_bytes=max_bytes))
            )
        except RunnerError as exc:
            note = f"not compared with `{base}`: {exc}"
            stream.write(f"celonis-runner: warning: {note}\n")
            parts.append(f"## celonis-runner: changes to `{file}`\n\n{note}\n\n")
    append_step_summary("".join(parts), environ, stream)


def selection_against(
    base: str | None,
    select: Sequence[str],
    exclude: Sequence[str],
    manifest: Manifest,
    *,
    environ: Mapping[str, str],
    max_bytes: int,
) -> tuple[list[str], list[str]] | None:
    """For `run --base` or a `state:` selector: --select and --exclude as the job names they
    stand for now, so that a resume runs the same jobs whatever BASE has become; None when
    they select nothing (nothing changed). Unchanged when neither is used."""
    from runner.plan.build import resolve_selection

    if base is None and not _uses_state(select, exclude):
        return list(select), list(exclude)
    changes = (
        changes_against(base, manifest, environ=environ, max_bytes=max_bytes) if base else None
    )
    chosen = resolve_selection(manifest, select, changes) if select else list(manifest.jobs)
    left_out = set(resolve_selection(manifest, exclude, changes)) if exclude else set()
    names = [n for n in chosen if n not in left_out]
    if not names:
        return None
    return names, []


def _uses_state(select: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a selector is a `state:` one."""
    from runner.plan.state_selection import is_state

    specs = [s.strip() for raw in [*select, *exclude] for s in raw.split(",")]
    return any(is_state(s) for s in specs)
