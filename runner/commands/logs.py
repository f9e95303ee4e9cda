"""`celonis-runner logs JOB [FILE]`: a job's latest execution (or the one a run started), its tasks
and the log lines of what failed.

Read-only. With `--run RUN_ID` the execution is the one in the job's history
whose start date is closest to the time that run sent the job's execute (from
its state file: `sent_at`, else `started_at`, else `intent_at`), among those
that started at most five minutes before it and at most five minutes after
the run saw the job end (clocks differ; Celonis may queue an execution).
Exit 0 when read, 2 for an unknown job or run (or a run whose execution is
not in the history), 3 when the API cannot be used.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from runner.commands.shared import (
    Context,
    RemoteOptions,
    add_connection,
    add_env,
    add_file,
    add_manifest_options,
    add_quiet,
    chosen_env,
    load_checked,
    remote_client,
    remote_options,
)
from runner.durations import format_duration
from runner.errors import ExitCode, UsageError
from runner.joblogs import (
    RUN_MATCH_SKEW,
    ExecutionLog,
    Item,
    JobLogs,
    LogLine,
    reads_of,
    run_reference_time,
)
from runner.manifest.model import Job, Manifest
from runner.problems import did_you_mean
from runner.text import inert, json_safe, printable

if TYPE_CHECKING:
    from runner.api.client import CelonisClient
    from runner.logs import Redactor

LOGS_FORMAT_VERSION = 1
FRESH_EMULATOR = (
    "--emulator starts a new emulator for this command alone, and a new emulator has run"
    " nothing (its history holds only a scenario's last_run): start one with"
    " `celonis-runner emulator`, run the jobs against it with --base-url, then give"
    " `logs` the same --base-url"
)
STARTED_STATES = ("running", "succeeded", "failed", "timed_out", "cancelled", "unclear")

EXAMPLES = """\
  celonis-runner logs transform_o2c             # its latest execution in ./jobs.yaml's team
  celonis-runner logs transform_o2c prod.jobs.yaml --run latest   # the one the last run started
  celonis-runner logs load_model --format json | jq '.tasks[] | select(.status=="FAIL")'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Optional for argparse (every command parses without arguments); main() insists on it.
    parser.add_argument("job", nargs="?", metavar="JOB", help="the job's name in the manifest")
    add_file(parser)
    parser.add_argument(
        "--run",
        metavar="RUN_ID",
        help="the execution this run of celonis-runner started (a run id, or latest)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where runs are saved (default: $CELONIS_RUNNER_STATE_DIR, else .celonis-runner/runs)",
    )
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: for people; json: for scripts (default: text)",
    )
    add_connection(parser)
    add_env(parser)
    add_quiet(
        parser,
        "the log lines: no headers, no task table; nothing when nothing failed"
        " (--format json is unchanged)",
    )
    add_manifest_options(parser)
    # the usage shows JOB as required, as it is (argparse would show `[JOB]`)
    usage = parser.format_usage().removeprefix("usage: ").replace("[JOB]", "JOB", 1)
    parser.usage = usage.replace("%", "%%").rstrip("\n")


@dataclass(frozen=True)
class RunMatch:
    run_id: str
    when: float
    field: str
    until: float | None
    """When that run saw the job end (its finished_at), if it did."""
    pool_id: str
    job_id: str


@dataclass(frozen=True)
class Found:
    job: Job
    pool_id: str
    job_id: str
    log: ExecutionLog | None
    """None: nothing to show (the job never ran, or the run's execution is not in the history)."""
    run: RunMatch | None = None
    note: str | None = None


def _looked_up(client: CelonisClient, manifest: Manifest, job: Job, stderr: TextIO) -> Job:
    """The job with the ids its Celonis names stand for in this team."""
    from runner.commands.names import resolved_or_refused

    return resolved_or_refused(client, manifest, stderr, doing="read").jobs[job.name]


def main(args: argparse.Namespace, ctx: Context) -> int:

    if not args.job:
        raise UsageError("logs needs JOB: the name of a job of the manifest")
    remote = remote_options(args)
    manifest = load_checked(
        args.file,
        environ=ctx.environ,
        strict_env=not remote.emulator,
        stderr=ctx.stderr,
        max_bytes=args.max_size,
        environment=chosen_env(args.env, ctx.environ),
    )
    job = _job(manifest, args.job)
    run = _run_match(args, ctx, job) if args.run else None
    with remote_client(manifest, remote, ctx.environ, ctx.stderr) as (client, redactor):
        if run is None and manifest.by_name:
            job = _looked_up(client, manifest, job, ctx.stderr)
        pool_id, job_id = (run.pool_id, run.job_id) if run else (job.pool_id, job.job_id)
        reads = JobLogs(reads_of(client, pool_id, job_id), pool_id, job_id)
        found = _explained(collect(reads, Found(job, pool_id, job_id, None, run)), remote)
    ctx.stdout.write(str(redactor.scrub(_rendered(found, args, redactor))))
    return ExitCode.OK if found.log is not None or run is None else ExitCode.INVALID


def _rendered(found: Found, args: argparse.Namespace, redactor: Redactor) -> str:
    # Scrubbed before rendering: JSON would escape a key with `"` or `\` out of the
    # redactor's sight (the rendered text is scrubbed again all the same).
    if args.format == "json":
        data = redactor.scrub(to_dict(found))
        return json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
    render = render_quiet if args.quiet else render_text
    return render(found, redactor.scrub)


def _explained(found: Found, remote: RemoteOptions) -> Found:
    """With --emulator, why the job never ran: that emulator is new."""
    if remote.emulator and found.log is None and found.run is None:
        return replace(found, note=f"{found.note}. {FRESH_EMULATOR}")
    return found


def _job(manifest: Manifest, name: str) -> Job:
    if name in manifest.jobs:
        return manifest.jobs[name]
    hint = did_you_mean(name, manifest.jobs)
    listed = "" if hint else f"; its jobs: {', '.join(sorted(manifest.jobs)[:10])}"
    raise UsageError(f"no job '{printable(name)}' in {manifest.path}{hint}{listed}")


def _run_match(args: argparse.Namespace, ctx: Context, job: Job) -> RunMatch:
    """Which time to look for in the history, from the run's state file."""
    from runner.execution.statefile import find_state
    from runner.runresult.read import load_saved, state_dir
    from runner.runresult.records import result_of

    path = find_state(state_dir(args.state_dir, ctx.environ), args.run)
    saved = load_saved(path, doing="read the run (logs --run) from")  # checked: times in range
    run = result_of(saved)
    found = [j for j in run.jobs if j.name == job.name]
    if not found:
        raise UsageError(f"run {run.run_id} did not include job '{job.name}'")
    entry = found[0]
    reference = run_reference_time(
        {"sent_at": entry.sent_at, "started_at": entry.started_at, "intent_at": entry.intent_at}
    )
    if entry.state not in STARTED_STATES or reference is None:
        raise UsageError(
            f"run {run.run_id} did not start job '{job.name}' (it ended {entry.state})"
        )
    when, field = reference
    pool_id, job_id = entry.pool_id or job.pool_id, entry.job_id or job.job_id
    return RunMatch(run.run_id, when, field, entry.finished_at, pool_id, job_id)


def collect(reads: JobLogs, wanted: Found) -> Found:
    """`wanted` with the execution read: the latest, or the one `wanted.run` started."""
    run = wanted.run
    if run is None:
        latest = reads.latest()
        if latest is None:
            return replace(wanted, note="it never ran: its execution history is empty")
        return replace(wanted, log=reads.read(latest))
    match = reads.started_near(run.when, run.until)
    if match is None:
        note = (
            f"no execution in its history started between {format_duration(RUN_MATCH_SKEW)}"
            f" before run {run.run_id} sent its execute ({_when(run.when)}) and"
            f" {format_duration(RUN_MATCH_SKEW)} after that run saw it end"
        )
        return replace(wanted, note=note)
    return replace(wanted, log=reads.read(match))


# -- output --------------------------------------------------------------------


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ms(value: int | None) -> float | None:
    return None if value is None else value / 1000


def _iso(value: int | None) -> str | None:
    from runner.reports.report import iso

    return iso(_ms(value))


def _duration(item: Item) -> float | None:
    if item.start_ms is None or item.end_ms is None:
        return None
    return max(0.0, (item.end_ms - item.start_ms) / 1000)


def render_text(found: Found, scrub: Callable[[str], str] = str) -> str:
    """Lines for people: each scrubbed by `scrub`, then escaped to one printable line."""
    job = found.job
    lines = [f"{job.name} (pool {job.pool}, job {found.job_id})"]
    if found.run is not None:
        run = found.run
        lines.append(
            f"  run:      {run.run_id} sent its execute at {_when(run.when)} ({run.field});"
            " shown: the execution that started closest to then"
        )
    if found.log is None:
        lines.append(f"  {found.note}")
        return "\n".join(lines) + "\n"
    execution = found.log.execution
    duration = _duration(execution)
    lines += [
        f"  execution {execution.execution_id or '-'}: {execution.status or 'no status'}",
        f"  started:  {_when(_ms(execution.start_ms))}",
        f"  ended:    {_when(_ms(execution.end_ms))}"
        + (f" ({format_duration(duration)})" if duration is not None else ""),
    ]
    lines += _task_lines(found.log)
    return "\n".join(inert(scrub(line)) for line in lines) + "\n"


def render_quiet(found: Found, scrub: Callable[[str], str] = str) -> str:
    """`logs -q`: the log lines of what failed, as render_text shows them but not indented,
    without the headers and the task table; when no execution was found, why."""
    if found.log is None:
        lines = [found.note or ""]
    else:
        logged = [*(line for task in found.log.tasks for line in task.lines), *found.log.job_lines]
        lines = [_log_line(line).strip() for line in logged]
    return "".join(inert(scrub(line)) + "\n" for line in lines)


def _task_lines(log: ExecutionLog) -> list[str]:
    lines = _task_table(log)
    for task in log.tasks:
        if task.lines:
            lines.append(f"Log of failed task '{task.item.name or task.item.id}':")
            lines += [_log_line(line) for line in task.lines]
    if log.job_lines:
        lines.append("Log of the execution (no task says why it failed):")
        lines += [_log_line(line) for line in log.job_lines]
    return lines


def _task_table(log: ExecutionLog) -> list[str]:
    """One line per task: status, name, start and end."""
    if not log.tasks:
        return ["Tasks: none listed"]
    width = max(len(t.item.status or "-") for t in log.tasks)
    lines = ["Tasks:"]
    for task in log.tasks:
        item = task.item
        span = f"{_when(_ms(item.start_ms))} -> {_when(_ms(item.end_ms))}"
        lines.append(f"  {(item.status or '-').ljust(width)}  {item.name or item.id}  {span}")
    return lines


def _log_line(line: LogLine) -> str:
    # One output line per log line: a message's own line breaks are shown escaped.
    return f"  {line.level:<7} {_when(_ms(line.date_ms))}  {line.message}"


def _item_dict(item: Item) -> dict[str, Any]:
    duration = _duration(item)
    return {
        "id": item.id,
        "name": item.name,
        "status": item.status,
        "started_at": _iso(item.start_ms),
        "finished_at": _iso(item.end_ms),
        "duration_seconds": None if duration is None else round(duration, 3),
    }


def _lines_dict(lines: tuple[LogLine, ...]) -> list[dict[str, Any]]:
    return [{"level": x.level, "date": _iso(x.date_ms), "message": x.message} for x in lines]


def to_dict(found: Found) -> dict[str, Any]:
    """The JSON form; stable like `status --format json` (fields are only added)."""
    log = found.log
    run = found.run
    return {
        "format_version": LOGS_FORMAT_VERSION,
        "job": found.job.name,
        "pool": found.job.pool,
        "pool_id": found.pool_id,
        "job_id": found.job_id,
        "run": None
        if run is None
        else {"run_id": run.run_id, "sent_at": _iso(int(run.when * 1000)), "from": run.field},
        "execution": None
        if log is None
        else {**_item_dict(log.execution), "execution_id": log.execution.execution_id},
        "tasks": []
        if log is None
        else [{**_item_dict(t.item), "log": _lines_dict(t.lines)} for t in log.tasks],
        "job_log": [] if log is None else _lines_dict(log.job_lines),
        "note": found.note,
    }
