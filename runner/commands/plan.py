"""`celonis-runner plan`: the dry run. Builds the Plan that `run` executes and prints it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from runner import plan_output
from runner import problems as out
from runner.errors import ExitCode, ManifestError
from runner.manifest import check_manifest
from runner.model import Manifest
from runner.plan import build_plan

WRITERS = {
    "text": plan_output.write_text,
    "json": plan_output.write_json,
    "mermaid": plan_output.write_mermaid,
    "dot": plan_output.write_dot,
}


def load_checked(
    file: str, *, environ: Mapping[str, str], strict_env: bool, stderr: TextIO, max_bytes: int
) -> Manifest:
    """The manifest, with warnings printed; ManifestError on errors."""
    result = check_manifest(
        Path(file), environ, strict_env=strict_env, display=file, max_bytes=max_bytes
    )
    if result.manifest is None:
        raise ManifestError(result.problems)
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
) -> int:
    manifest = load_checked(
        file, environ=environ, strict_env=False, stderr=stderr, max_bytes=max_bytes
    )
    plan = build_plan(manifest, select=select, exclude=exclude, max_parallel=max_parallel)
    WRITERS[output_format](plan, stdout)
    return ExitCode.OK
