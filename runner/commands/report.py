"""`celonis-runner report RUN_ID|latest`: a saved run shown again, as a table, JSON, a Gantt
chart (Mermaid) or one HTML page.

Read-only and offline: it reads the run's state file (snapshot plus journal)
from the state directory. The state keeps pool ids, not names: when the
manifest the run used is still where it was, its pool names are shown.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from runner.commands.shared import Context
from runner.durations import format_duration
from runner.errors import ExitCode, RunnerError, UsageError
from runner.execution.statefile import find_state, load_saved, state_dir
from runner.logs import Redactor, secret_like_values
from runner.reports.report import iso, one_line
from runner.reports.runview import RunView, from_saved, scrubbed
from runner.text import inert, printable

REPORT_FORMAT_VERSION = 1
FORMATS = ("text", "json", "gantt", "html")

EXAMPLES = """\
  celonis-runner report latest                          # the last run, as a table
  celonis-runner report latest --format gantt           # its timeline as Mermaid
  celonis-runner report 20260101T120000Z-1a2b3c --format html --out run.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id",
        nargs="?",
        default="latest",
        metavar="RUN_ID",
        help="a run id (as `run` prints it) or latest (default: latest)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: a table; json: for scripts; gantt: the timeline as a Mermaid gantt chart;"
        " html: one self-contained page (default: text)",
    )
    parser.add_argument("--out", metavar="PATH", help="write to this file instead of stdout")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where run state is saved"
        " (default: $CELONIS_RUNNER_STATE_DIR, then .celonis-runner/runs)",
    )


def main(args: argparse.Namespace, ctx: Context) -> int:
    directory = state_dir(args.state_dir, ctx.environ)
    if args.run_id == "latest" and not _any_run(directory):
        raise UsageError(
            f"no saved run in {directory}: `run` saves each run there (--state-dir or"
            " $CELONIS_RUNNER_STATE_DIR choose another folder)"
        )
    saved = load_saved(find_state(directory, args.run_id), doing="report on")
    view = from_saved(saved, _pool_names(str(saved.data["manifest"]["path"]), ctx.environ))
    view = scrubbed(view, Redactor(secret_like_values(ctx.environ)))
    rendered = render(view, args.format)
    if args.out:
        from runner.files import write_text_atomic

        try:
            write_text_atomic(Path(args.out), rendered)
        except OSError as exc:
            ctx.stderr.write(
                f"celonis-runner: error: cannot write --out {args.out}: {exc.strerror or exc}\n"
            )
            return ExitCode.INVALID
        ctx.stderr.write(f"Wrote run {view.run_id} ({args.format}) to {args.out}\n")
    else:
        ctx.stdout.write(rendered)
    return ExitCode.OK


def _any_run(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("*.json"))


def render(view: RunView, output_format: str) -> str:
    if output_format == "html":
        from runner.reports.html import render as render_html

        return render_html(view)
    if output_format == "json":
        return json.dumps(to_dict(view), indent=2) + "\n"
    import io

    out = io.StringIO()
    if output_format == "gantt":
        from runner.reports.gantt import write_gantt

        write_gantt(view, out)
    else:
        write_table(view, out)
    return out.getvalue()


def _pool_names(manifest_path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Pool id -> name from the manifest the run used, if it can still be read (else ids)."""
    from runner.manifest.loader import load_manifest

    path = Path(manifest_path)
    if not path.is_file():
        return {}
    try:
        manifest = load_manifest(path, environ, strict_env=False)
    except (RunnerError, OSError):
        return {}
    return {pool.pool_id.lower(): name for name, pool in manifest.pools.items()}


def to_dict(view: RunView) -> dict[str, Any]:
    """The JSON form (stable; new fields may be added)."""
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "run_id": view.run_id,
        "status": view.status,
        "manifest": view.manifest,
        "started_at": iso(view.started_at),
        "finished_at": iso(view.finished_at),
        "jobs": [
            {
                "name": j.name,
                "pool": j.pool,
                "status": j.status,
                "started_at": iso(j.started_at),
                "finished_at": iso(j.finished_at),
                "duration_seconds": None if j.duration is None else round(j.duration, 3),
                "error": j.error,
                "depends_on": list(j.depends_on),
                "wave": j.wave,
                "tasks": [
                    {"name": t.name, "status": t.status, "detail": t.detail} for t in j.tasks
                ],
            }
            for j in view.jobs
        ],
    }


def write_table(view: RunView, stream: TextIO) -> None:
    stream.write(
        f"Run {printable(view.run_id)} of {printable(view.manifest)}: {printable(view.status)}\n\n"
    )
    header = ("JOB", "POOL", "STATUS", "STARTED", "DURATION")
    rows = [
        (
            inert(j.name),  # a state file's texts are data, like Celonis'
            printable(j.pool),
            printable(j.status),
            iso(j.started_at) or "-",
            format_duration(j.duration) if j.duration is not None else "-",
            one_line(j.error) if j.error and j.status != "succeeded" else "",
        )
        for j in view.jobs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = "  ".join(row[i].ljust(widths[i]) for i in range(len(header)))
        reason = row[5] if len(row) > 5 else ""
        stream.write(f"{cells}  {reason}".rstrip() + "\n")
