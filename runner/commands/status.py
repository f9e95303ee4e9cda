"""`celonis-runner status`: each job's status in Celonis now, with its last execution's start and end.

Read-only: one job list per pool, then the newest entry of each job's
execution history. Exit 0, 2 when a pool or job of the manifest does not
exist there, 3 when the API cannot be used. With `--watch` it reads them
again every `--interval` seconds until Ctrl-C, which exits 0 (the last table
stays on screen).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from runner import problems as out
from runner.api.client import CelonisClient
from runner.api.errors import ApiError, AuthError
from runner.clock import Clock, SystemClock
from runner.commands.shared import (
    Context,
    RemoteOptions,
    add_connection,
    add_env,
    add_file,
    add_github,
    add_manifest_options,
    add_quiet,
    chosen_env,
    github_enabled,
    load_checked,
    remote_client,
    remote_options,
    write_columns,
)
from runner.durations import format_duration
from runner.errors import ExitCode
from runner.manifest.model import Job, Manifest
from runner.preflight.remote import Locator, look_up_pools
from runner.reports.report import iso
from runner.text import printable

STATUS_FORMAT_VERSION = 1

EXAMPLES = """\
  celonis-runner status                        # every job of ./jobs.yaml, now
  celonis-runner status --emulator             # try it without a Celonis team
  celonis-runner status --watch --interval 30  # refresh every 30 s until Ctrl-C"""

CLEAR_SCREEN = "\x1b[H\x1b[2J"
FINE = ("SUCCESS", "QUEUED", "RUNNING")
"""`status -q` leaves out the jobs in these statuses."""
DEFAULT_INTERVAL = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file(parser)
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: a table; json: for scripts (default: text)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="refresh until interrupted (Ctrl-C exits 0); with --format json, one line a refresh",
    )
    parser.add_argument(
        "--interval",
        type=_interval,
        default=DEFAULT_INTERVAL,
        metavar="S",
        help=f"with --watch: seconds between refreshes (default {DEFAULT_INTERVAL:g})",
    )
    add_connection(parser)
    add_env(parser)
    add_github(parser, "GitHub Actions annotations for jobs not found")
    add_quiet(
        parser,
        "a count: the table shows only the jobs that are not SUCCESS, QUEUED or RUNNING"
        " (--format json is unchanged)",
    )
    add_manifest_options(parser)


def main(args: argparse.Namespace, ctx: Context) -> int:
    return run(
        args.file,
        output_format=args.format,
        remote=remote_options(args),
        environ=ctx.environ,
        stdout=ctx.stdout,
        stderr=ctx.stderr,
        max_bytes=args.max_size,
        github=github_enabled(args, ctx),
        watch=Watch(args.interval) if args.watch else None,
        environment=chosen_env(args.env, ctx.environ),
        quiet=args.quiet,
    )


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"give between 1 and 86400 seconds, not {text}")
    return value


@dataclass(frozen=True)
class Watch:
    """`--watch`: how often to refresh, and the clock that waits (a fake one in tests)."""

    interval: float = DEFAULT_INTERVAL
    clock: Clock = field(default_factory=SystemClock)


@dataclass(frozen=True)
class JobRow:
    job: Job
    status: str | None
    """The job's status now (None: it never ran)."""
    execution_id: str | None = None
    started_at: float | None = None
    """Its newest execution's start and end, epoch seconds."""
    finished_at: float | None = None
    error: str | None = None
    """Why there is nothing to show (the pool or job was not found)."""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


def run(
    file: str,
    *,
    output_format: str,
    remote: RemoteOptions,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    max_bytes: int,
    github: bool = False,
    watch: Watch | None = None,
    environment: str | None = None,
    quiet: bool = False,
) -> int:
    """`quiet`: the text table shows only the jobs that are not fine, then a count."""
    from runner.commands.names import first_read, resolved_or_refused

    manifest = load_checked(
        file,
        environ=environ,
        strict_env=not remote.emulator,
        stderr=stderr,
        max_bytes=max_bytes,
        annotate=github,
        environment=environment,
    )
    table = write_quiet_table if quiet else write_table
    with remote_client(manifest, remote, environ, stderr) as (client, _):
        pools = first_read(client, embedded=remote.emulator)
        manifest = resolved_or_refused(
            client, manifest, stderr, github=github, doing="read", pools=pools
        )
        if watch is not None:
            return _watch(client, manifest, watch, output_format, stdout, stderr, github, table)
        shown_url = client.base_url
        states = collect(client, manifest)
    if output_format == "json":
        json.dump(to_dict(manifest, shown_url, states), stdout, indent=2)
        stdout.write("\n")
    else:
        table(states, stdout)
    return _report_missing(manifest, states, stderr, github)


def _watch(
    client: CelonisClient,
    manifest: Manifest,
    watch: Watch,
    output_format: str,
    stdout: TextIO,
    stderr: TextIO,
    github: bool,
    table: Callable[[list[JobRow], TextIO], None],
) -> int:
    """Refresh until Ctrl-C (exit 0); jobs not found are said once, after the first table."""
    clear = CLEAR_SCREEN if output_format == "text" and stdout.isatty() else ""
    refreshes = 0
    try:
        while True:
            states = _refresh(client, manifest, stderr, first=refreshes == 0)
            if states is None:
                watch.clock.sleep(watch.interval)
                continue
            if output_format == "json":  # one document a line: a stream scripts can read
                stdout.write(json.dumps(to_dict(manifest, client.base_url, states)) + "\n")
            else:
                stdout.write(f"{clear}{_as_of(watch)}\n")
                table(states, stdout)
            stdout.flush()
            if refreshes == 0:
                _report_missing(manifest, states, stderr, github)
            refreshes += 1
            watch.clock.sleep(watch.interval)
    except KeyboardInterrupt:
        stderr.write(
            f"Stopped watching after {refreshes} refresh{'es' if refreshes != 1 else ''}\n"
        )
        return ExitCode.OK


def _refresh(
    client: CelonisClient, manifest: Manifest, stderr: TextIO, *, first: bool
) -> list[JobRow] | None:
    """The statuses now; after the first refresh a passing API error is said and skipped
    (the next refresh tries again) rather than ending the watch. A refused key always ends it."""
    try:
        return collect(client, manifest)
    except AuthError:
        raise
    except ApiError as exc:
        if first:
            raise
        stderr.write(f"celonis-runner: warning: this refresh failed, trying again: {exc}\n")
        return None


def _as_of(watch: Watch) -> str:
    stamp = datetime.fromtimestamp(watch.clock.time(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"As of {stamp}; every {format_duration(watch.interval)}; Ctrl-C to stop"


def _report_missing(manifest: Manifest, states: list[JobRow], stderr: TextIO, github: bool) -> int:
    missing = [s for s in states if s.error]
    if missing:
        locate = Locator(manifest)
        problems = [locate.job(s.job, s.error or "") for s in missing]
        if github:
            out.write_github(problems, stderr)
        out.write_text(problems, stderr)
        return ExitCode.INVALID
    return ExitCode.OK


def collect(client: CelonisClient, manifest: Manifest) -> list[JobRow]:
    jobs = list(manifest.jobs.values())
    lookups = look_up_pools(client, [job.pool_id for job in jobs])
    states: list[JobRow] = []
    for job in jobs:
        lookup = lookups[job.pool_id]
        if lookup.jobs is None:
            if lookup.error is not None and lookup.error.status == 403:
                raise lookup.error  # no permission: the API is unusable for this manifest
            states.append(
                JobRow(
                    job,
                    None,
                    error=f"pool '{job.pool}' ({job.pool_id}) does not exist, or the key cannot see it",
                )
            )
            continue
        info = lookup.jobs.get(job.job_id.lower())
        if info is None:
            states.append(
                JobRow(
                    job,
                    None,
                    error=f"job {job.job_id} does not exist in pool '{job.pool}', or the key cannot see it",
                )
            )
            continue
        latest = client.latest_execution(job.pool_id, job.job_id)
        states.append(
            JobRow(
                job,
                info.status.status,
                execution_id=latest.execution_id if latest else None,
                started_at=_seconds(latest.start_date if latest else None),
                finished_at=_seconds(latest.end_date if latest else None),
            )
        )
    return states


def to_dict(manifest: Manifest, base_url: str, states: list[JobRow]) -> dict[str, Any]:
    """The JSON form; stable like `plan --format json` (new fields may be added)."""
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "manifest": manifest.path,
        "base_url": base_url,
        "jobs": [
            {
                "name": s.job.name,
                "pool": s.job.pool,
                "pool_id": s.job.pool_id,
                "job_id": s.job.job_id,
                "status": s.status,
                "execution_id": s.execution_id,
                "started_at": iso(s.started_at),
                "finished_at": iso(s.finished_at),
                "duration_seconds": None if s.duration is None else round(s.duration, 3),
                "error": s.error,
            }
            for s in states
        ],
    }


def write_table(states: list[JobRow], stream: TextIO) -> None:
    header = ("JOB", "POOL", "STATUS", "STARTED", "ENDED", "DURATION")
    rows = [
        (
            s.job.name,
            s.job.pool,
            "NOT FOUND" if s.error else printable(s.status or "never ran"),  # Celonis' word
            _when(s.started_at),
            _when(s.finished_at),
            format_duration(s.duration) if s.duration is not None else "-",
        )
        for s in states
    ]
    write_columns([header, *rows], stream)


def write_quiet_table(states: list[JobRow], stream: TextIO) -> None:
    """`status -q`: the rows of the jobs that are not SUCCESS, QUEUED or RUNNING (failed,
    cancelled, skipped, never ran, not found), then how many of all they are."""
    shown = [s for s in states if s.error or (s.status or "").upper() not in FINE]
    count = f"{len(states)} job{'s' if len(states) != 1 else ''}"
    if not shown:
        stream.write(f"all {count} fine (SUCCESS, QUEUED or RUNNING)\n")
        return
    write_table(shown, stream)
    stream.write(f"{len(shown)} of {count} not fine (fine: SUCCESS, QUEUED or RUNNING)\n")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _seconds(epoch_ms: int | None) -> float | None:
    return None if epoch_ms is None else epoch_ms / 1000
