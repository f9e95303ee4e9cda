"""`celonis-runner plan`: the dry run. Builds the Plan that `run` executes and prints it.

With `--check-remote` it then checks the plan against the API, read-only
(runner.commands.check_remote).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from runner.errors import ExitCode, ManifestError
from runner.manifest import problems as out
from runner.manifest.loader import check_manifest
from runner.manifest.model import Manifest
from runner.plan.build import build_plan
from runner.reports import plan_output

WRITERS = {
    "text": plan_output.write_text,
    "json": plan_output.write_json,
    "mermaid": plan_output.write_mermaid,
    "dot": plan_output.write_dot,
}


def load_checked(
    file: str,
    *,
    environ: Mapping[str, str],
    strict_env: bool,
    stderr: TextIO,
    max_bytes: int,
    annotate: bool = False,
) -> Manifest:
    """The manifest, with warnings printed; ManifestError on errors.

    `annotate`: also print the warnings as GitHub workflow commands (the CLI
    does the same for errors).
    """
    result = check_manifest(
        Path(file), environ, strict_env=strict_env, display=file, max_bytes=max_bytes
    )
    if result.manifest is None:
        raise ManifestError(result.problems)
    if annotate:
        out.write_github(result.problems, stderr)
    out.write_text(result.problems, stderr)
    return result.manifest


def run(
    file: str,
    *,
    output_format: str,
    select: Sequence[str],
    exclude: Sequence[str],
    max_parallel: int | None,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    max_bytes: int,
    github: bool = False,
    remote: RemoteOptions | None = None,
) -> int:
    manifest = load_checked(
        file,
        environ=environ,
        # the remote check needs the real ids: an unset variable is an error there
        strict_env=remote is not None and not remote.emulator,
        stderr=stderr,
        max_bytes=max_bytes,
        annotate=github,
    )
    plan = build_plan(manifest, select=select, exclude=exclude, max_parallel=max_parallel)
    WRITERS[output_format](plan, stdout)
    if remote is None:
        return ExitCode.OK
    from runner.commands import check_remote  # loads the HTTP stack only when asked to

    return check_remote.run(plan, remote, environ=environ, stderr=stderr, github=github)


@dataclass(frozen=True)
class RemoteOptions:
    """`plan --check-remote` and where to check: like `run`'s connection options."""

    base_url: str | None = None
    emulator: bool = False
    scenario: str | None = None
