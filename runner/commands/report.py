"""`celonis-runner report RUN_ID|latest`: a saved run shown again, as a table, JSON, a Gantt
chart (Mermaid), one HTML page, or any output `run` writes (its summary, `--report` JSON,
`--junit-xml`, the GitHub step summary), byte for byte as the run wrote it.

Read-only and offline: it reads the run's state file (snapshot plus journal)
from the state directory into the same `RunResult` the run's outputs rendered.
State files from before the pools' names were kept name them from the manifest
the run used when it is still where it was, else by their ids.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from runner.commands.shared import Context
from runner.durations import format_duration
from runner.errors import ExitCode, RunnerError, UsageError
from runner.execution.statefile import find_state
from runner.logs import Redactor, secret_like_values
from runner.reports.gantt import write_gantt
from runner.reports.report import iso, one_line, report_text, write_summary
from runner.runresult.model import JobResult, RunResult
from runner.runresult.read import load_saved, state_dir
from runner.runresult.records import SavedRun, result_of
from runner.text import inert, printable

REPORT_FORMAT_VERSION = 1
FORMATS = ("text", "json", "gantt", "html", "summary", "report-json", "junit", "github")

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
        " html: one self-contained page (as run --html); summary: the run's summary;"
        " report-json: the JSON report (as run --report); junit: as run --junit-xml;"
        " github: the GitHub step summary (default: text)",
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
    view = result_of(saved, _pool_names(saved, ctx.environ))
    view = view.redacted(Redactor(secret_like_values(ctx.environ)))
    rendered = render(view, args.format)
    if args.out:
        from runner.files import REPORT_MODE, write_text_atomic

        try:
            write_text_atomic(Path(args.out), rendered, mode=REPORT_MODE)
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


def render(view: RunResult, output_format: str) -> str:
    return _RENDERERS[output_format](view)


def _html(view: RunResult) -> str:
    from runner.reports.html import render as render_html

    return render_html(view)


def _json(view: RunResult) -> str:
    return json.dumps(to_dict(view), indent=2) + "\n"


def _junit(view: RunResult) -> str:
    from runner.reports.junit import junit_text

    return junit_text(view)


def _github(view: RunResult) -> str:
    from runner.reports.github import step_summary

    return step_summary(view)


def _written_to_stream(write: Callable[[RunResult, TextIO], None]) -> Callable[[RunResult], str]:
    def rendered(view: RunResult) -> str:
        out = io.StringIO()
        write(view, out)
        return out.getvalue()

    return rendered


def _pool_names(saved: SavedRun, environ: Mapping[str, str]) -> dict[str, str]:
    """For a state file from before pool names were kept: pool id -> name from the manifest
    the run used, if it can still be read (else ids)."""
    from runner.manifest.loader import load_manifest

    if saved.pools is not None:
        return {}
    path = Path(saved.manifest_resolved or saved.manifest_path)
    if not path.is_file():
        return {}
    try:
        manifest = load_manifest(path, environ, strict_env=False)
    except (RunnerError, OSError):
        return {}
    return {pool.pool_id.lower(): name for name, pool in manifest.pools.items()}


def to_dict(view: RunResult) -> dict[str, Any]:
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
                "status": j.report_status,
                "started_at": iso(j.started_at),
                "finished_at": iso(j.finished_at),
                "duration_seconds": None if j.duration is None else round(j.duration, 3),
                "error": j.error,
                "depends_on": list(j.depends_on),
                "wave": j.wave,
                "tasks": [
                    {"name": t.name, "status": t.status, "detail": t.error or ""}
                    for t in j.tasks or ()
                ],
            }
            for j in view.jobs
        ],
    }


def _table_row(j: JobResult) -> tuple[str, ...]:
    return (
        inert(j.name),  # a state file's texts are data, like Celonis'
        printable(j.pool),
        printable(j.report_status),
        iso(j.started_at) or "-",
        format_duration(j.duration) if j.duration is not None else "-",
        one_line(j.error) if j.error and j.report_status != "succeeded" else "",
    )


def write_table(view: RunResult, stream: TextIO) -> None:
    stream.write(
        f"Run {printable(view.run_id)} of {printable(view.manifest)}: {printable(view.status)}\n\n"
    )
    header = ("JOB", "POOL", "STATUS", "STARTED", "DURATION")
    rows = [_table_row(j) for j in view.jobs]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = "  ".join(row[i].ljust(widths[i]) for i in range(len(header)))
        reason = row[5] if len(row) > 5 else ""
        stream.write(f"{cells}  {reason}".rstrip() + "\n")


_RENDERERS: dict[str, Callable[[RunResult], str]] = {
    "text": _written_to_stream(write_table),
    "json": _json,
    "gantt": _written_to_stream(write_gantt),
    "html": _html,
    "summary": _written_to_stream(write_summary),
    "report-json": report_text,
    "junit": _junit,
    "github": _github,
}
