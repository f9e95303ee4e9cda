"""`celonis-runner run`: execute the plan against Celonis (or the embedded emulator)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import secrets
import shlex
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

import structlog

from runner import logs
from runner import problems as problems_out
from runner.api import CelonisClient
from runner.api.task_reader import TaskReader
from runner.clock import Clock
from runner.commands.base import selection_against
from runner.commands.names import first_read, resolved_or_refused
from runner.commands.plan import add_selection
from runner.commands.shared import (
    DEFAULT_FILE,
    Context,
    add_connection,
    add_env,
    add_github,
    add_manifest_options,
    chosen_env,
    github_enabled,
    load_checked,
    looks_like_manifest,
    non_negative_float,
)
from runner.durations import parse_duration
from runner.errors import ExitCode, UsageError
from runner.execution.executor import Executor
from runner.execution.progress import ProgressLine
from runner.execution.runlock import run_id_lock, run_lock
from runner.execution.runstate import ResumeFrom, RunState, run_result
from runner.execution.statefile import (
    EMULATOR_TARGET,
    SavedRun,
    StateStore,
    check_resume_names,
    check_resume_target,
    find_state,
    load_saved,
    manifest_changes,
    resume_from,
    state_dir,
)
from runner.manifest.model import Manifest
from runner.plan.build import Plan, build_plan
from runner.plan.tasks_option import task_jobs, with_task_selection
from runner.preflight.resume_tasks import resume_failed_tasks
from runner.preflight.task_names import resolve_plan
from runner.reports.outputs import Outputs, check_paths, check_state_dir, write_outputs
from runner.target import Target, client_for, open_target, secret_values
from runner.terminal import isatty

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    file: str
    select: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_parallel: int | None = None
    fail_fast: bool = False
    report: str | None = None
    base_url: str | None = None
    log_format: str | None = None
    verbose: int = 0
    quiet: bool = False
    """Only problems (warnings, errors, the jobs that did not succeed) and the verdict."""
    emulator: bool = False
    scenario: str | None = None
    emulator_journal: str | None = None
    cancel_on_stop: bool = True
    grace: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    resume: str | None = None
    state_dir: str | None = None
    force: bool = False
    junit_xml: str | None = None
    whole_jobs: bool = False
    tasks: Sequence[str] = ()
    github: bool = False
    html: str | None = None
    settle_window: float | None = None
    """Overrides every job's settle_window (manifest `defaults` and per job)."""
    base: str | None = None
    """For `state:` selectors: the manifest to compare with (a file or REV:PATH)."""
    environment: str | None = None
    """The manifest's environment (`--env`, $CELONIS_RUNNER_ENV); None: the top-level one."""


def new_run_id(clock: Clock) -> str:
    stamp = datetime.fromtimestamp(clock.time(), UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run(
    options: RunOptions,
    *,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    ctx: Context | None = None,
) -> int:
    manifest = load_checked(
        options.file,
        environ=environ,
        strict_env=not options.emulator,
        stderr=stderr,
        max_bytes=options.max_bytes,
        annotate=options.github,
        environment=options.environment,
    )
    if options.resume is None:
        narrowed = _with_changes(options, manifest, environ, stdout)
        if narrowed is None:
            return ExitCode.OK
        options = narrowed
    elif options.base is not None:
        raise UsageError("--base goes with --select state:...; a resumed run keeps its selection")
    directory = state_dir(options.state_dir, environ)
    _check_outputs(options, directory)
    # one run or resume of a manifest per state directory at a time (issue 16 #3), and one
    # process per run whatever the manifest's path (issue 20 #8): a resume takes the run's own
    # lock before it reads the saved state, so two resumes cannot both take up the same run
    with run_lock(directory, options.file), contextlib.ExitStack() as locks:
        resumed = find_state(directory, options.resume) if options.resume else None
        if resumed is not None:
            locks.enter_context(run_id_lock(directory, resumed.stem))
        return _run(options, manifest, directory, resumed, locks, environ, stdout, stderr, ctx)


def _with_changes(
    options: RunOptions, manifest: Manifest, environ: Mapping[str, str], stdout: TextIO
) -> RunOptions | None:
    """The options with `state:` selectors (against --base) as job names; None, and a line
    saying so, when they select no job."""
    found = selection_against(
        options.base,
        options.select,
        options.exclude,
        manifest,
        environ=environ,
        max_bytes=options.max_bytes,
    )
    if found is None:
        given = [f"--select {s}" for s in options.select]
        given += [f"--exclude {s}" for s in options.exclude]
        stdout.write(
            f"No job to run: {' '.join(given)} leaves none"
            + (f" (nothing changed against {options.base})" if options.base else "")
            + "\n"
        )
        return None
    return dataclasses.replace(options, select=found[0], exclude=found[1])


def _run(
    options: RunOptions,
    manifest: Manifest,
    directory: Path,
    state_file: Path | None,
    locks: contextlib.ExitStack,
    environ: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    ctx: Context | None,
) -> int:
    """The run; `state_file`: that of the run it resumes (None: a new run); `locks`: those the
    run holds (a new run adds its own run lock as soon as its id exists)."""
    early = _early_plan(options, manifest, state_file)
    redactor, progress = _configure_logging(options, manifest, environ, stderr)
    # closing: every log line is out (the writer thread drained) even when the run raises
    with contextlib.closing(progress), _open_target(options, manifest, environ, redactor) as target:
        interrupt = threading.Event()  # set by a signal: retry waits end at once
        client = client_for(target, environ, interrupt)
        where = EMULATOR_TARGET if options.emulator else target.base_url
        out = (stderr, redactor)
        plan, saved, resume = _prepare(options, manifest, state_file, client, where, out, early)
        select, exclude, tasks = _selection(options, saved)  # a resume: those it started with
        run_id, state_path = _run_id_and_path(saved, directory, target.clock)
        if saved is None:  # a resume of this run through any manifest path is refused from now
            locks.enter_context(run_id_lock(directory, run_id, target.clock))
        store = StateStore(
            state_path,
            select=select,
            exclude=exclude,
            tasks=tasks,
            clock=target.clock,
            redactor=redactor,
            target=where,
            clock_rate=getattr(target.clock, "scale", 1.0),  # the throttle runs on real time
        )
        executor = _executor(options, plan, client, target.clock, progress, store, resume, run_id)
        log.info(
            "run_started",
            run_id=run_id,
            manifest=manifest.path,
            jobs=len(plan.jobs),
            base_url=target.base_url,
            **_environment(plan),
        )
        # the handlers stay while the outputs are written: a second Ctrl-C then must not
        # cut a report short (it makes the process exit at once once they are written)
        with _signals(executor, interrupt) as received:
            with _gc_frozen():
                state = executor.run()
            progress.close()
            written = _write_outputs(
                options, state, run_id, state_path, stdout, stderr, environ, redactor
            )
        code = exit_code(state, received, written)
        if len(received) >= 2 and ctx is not None:
            # A second signal means "now": the state, report and summary are written; the entry
            # point exits without waiting for requests in flight or the emulator's threads.
            ctx.hard_exit = True
    return code


def _environment(plan: Plan) -> dict[str, str]:
    """The run's environment for its log events; nothing for the top-level connection."""
    env = plan.manifest.environment
    return {"environment": env} if env else {}


def _early_plan(
    options: RunOptions, manifest: Manifest, state_file: Path | None
) -> tuple[Plan, SavedRun | None, ResumeFrom | None] | None:
    """A plan of ids (no names to look up), made and checked before the API is reached;
    None for a manifest with names (planned once they are looked up)."""
    return None if manifest.by_name else _plan_and_resume(options, manifest, state_file)


def _prepare(
    options: RunOptions,
    manifest: Manifest,
    state_file: Path | None,
    client: CelonisClient,
    where: str,
    out: tuple[TextIO, logs.Redactor],
    early: tuple[Plan, SavedRun | None, ResumeFrom | None] | None,
) -> tuple[Plan, SavedRun | None, ResumeFrom | None]:
    """The base URL checked to answer like Celonis (its first request: before a state file or a
    resume hint can exist), the manifest's names looked up (one pool list, one job list per
    pool: nothing runs while any is unknown), then the plan and what a resume takes up (`early`
    when made before: a manifest of ids), checked to go where the earlier run went; then its
    subsets' task names looked up (`out`: stderr, redactor)."""
    stderr, redactor = out
    pools = first_read(client, embedded=options.emulator)
    manifest = resolved_or_refused(
        client, manifest, stderr, github=options.github, doing="started", pools=pools
    )
    plan, saved, resume = early or _plan_and_resume(options, manifest, state_file)
    check_resume_target(saved, where, force=options.force)
    return _task_plan(options, plan, client, saved, stderr, redactor), saved, resume


def _task_plan(
    options: RunOptions,
    plan: Plan,
    client: CelonisClient,
    saved: SavedRun | None,
    stderr: TextIO,
    redactor: logs.Redactor,
) -> Plan:
    """The plan with its subsets resolved and, on a resume, failed jobs limited to the tasks
    that did not succeed (runner.preflight)."""
    plan = resolve_subsets(plan, client, stderr, redactor, github=options.github)
    if saved is None or options.whole_jobs:
        return plan
    reader = TaskReader(client)
    return resume_failed_tasks(plan, saved.jobs, reader, run_id=saved.run_id, force=options.force)


def resolve_subsets(
    plan: Plan,
    client: CelonisClient,
    stderr: TextIO,
    redactor: logs.Redactor,
    *,
    github: bool = False,
) -> Plan:
    """The plan with its subsets resolved to task ids (runner.preflight.task_names); before anything starts, so
    a task name Celonis does not have stops the run with nothing executed (exit 2)."""
    if all(p.job.tasks is None for p in plan.jobs.values()):
        return plan
    resolved = resolve_plan(TaskReader(client), plan, redactor.scrub)
    if github:
        problems_out.write_github(resolved.problems, stderr)
    problems_out.write_text(resolved.problems, stderr)
    if resolved.errors:
        count = len(resolved.errors)
        raise UsageError(
            f"{count} task name{'' if count == 1 else 's'} not found in Celonis; nothing was "
            "started: fix the names (or ids) in the manifest or in --tasks"
        )
    return resolved.plan


def _open_target(
    options: RunOptions, manifest: Manifest, environ: Mapping[str, str], redactor: logs.Redactor
) -> contextlib.AbstractContextManager[Target]:
    return open_target(
        manifest,
        environ,
        redactor,
        base_url=options.base_url,
        emulator=options.emulator,
        scenario=options.scenario,
        emulator_journal=options.emulator_journal,
    )


@contextlib.contextmanager
def _gc_frozen() -> Iterator[None]:
    """The collector leaves what exists now (plan, run data) alone until the run ends.

    They live as long as the run, but each full collection walks all of them: at 10,000 jobs
    those passes made the runner's CPU per job grow with the run's size.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _plan_and_resume(
    options: RunOptions, manifest: Manifest, state_file: Path | None
) -> tuple[Plan, SavedRun | None, ResumeFrom | None]:
    """The plan; with --resume (`state_file`), the saved run it takes up and what to take
    from it."""
    resume: ResumeFrom | None = None
    saved: SavedRun | None = None
    if state_file is not None:
        saved = load_saved(state_file)
        given = (list(options.select), list(options.exclude), list(options.tasks))
        if any(given) and given != (saved.select, saved.exclude, saved.tasks):
            raise UsageError(
                "a resumed run keeps the selection it started with: drop --select/--exclude/--tasks"
            )
    select, exclude, tasks = _selection(options, saved)
    manifest = with_task_selection(manifest, tasks)
    if options.settle_window is not None:
        manifest = with_settle_window(manifest, options.settle_window)
    plan = build_plan(manifest, select=select, exclude=exclude, max_parallel=options.max_parallel)
    if saved is not None:
        check_resume_names(saved, plan, force=options.force)
        changes = manifest_changes(saved, plan)
        if changes and not options.force:
            raise UsageError(
                f"the manifest changed since run {saved.run_id}: "
                + "; ".join(changes)
                + ". Resume anyway with --force, or start a new run without --resume"
            )
        resume = resume_from(saved, plan)
    return plan, saved, resume


def _selection(
    options: RunOptions, saved: SavedRun | None
) -> tuple[list[str], list[str], list[str]]:
    """--select, --exclude and --tasks of this run (a resumed run's are those it started with);
    --tasks selects its jobs when --select is not given."""
    if saved is not None:
        return saved.select, saved.exclude, saved.tasks
    tasks = list(options.tasks)
    return list(options.select) or task_jobs(tasks), list(options.exclude), tasks


def _configure_logging(
    options: RunOptions, manifest: Manifest, environ: Mapping[str, str], stderr: TextIO
) -> tuple[logs.Redactor, ProgressLine]:
    log_format = logs.choose_format(options.log_format, stderr, environ)
    redactor = logs.Redactor([*secret_values(manifest, environ), *logs.secret_like_values(environ)])
    progress = ProgressLine(
        stderr, enabled=log_format == "console" and isatty(stderr), background=True
    )
    logs.configure(
        log_format=log_format,
        verbosity=-1 if options.quiet else options.verbose,
        stream=progress.stream,
        environ=environ,
        redactor=redactor,
    )
    return redactor, progress


def _executor(
    options: RunOptions,
    plan: Plan,
    client: CelonisClient,
    clock: Clock,
    progress: ProgressLine,
    store: StateStore,
    resume: ResumeFrom | None,
    run_id: str,
) -> Executor:
    return Executor(
        plan,
        client,
        clock,
        fail_fast=options.fail_fast,
        cancel_on_stop=options.cancel_on_stop,
        grace=options.grace,
        listeners=[progress.update, store.note],
        checkpoint=store,
        resume=resume,
        run_id=run_id,
    )


def _run_id_and_path(saved: SavedRun | None, directory: Path, clock: Clock) -> tuple[str, Path]:
    """A new run's id and state file, or those of the run it resumes."""
    if saved is None:
        run_id = new_run_id(clock)
        return run_id, directory / f"{run_id}.json"
    return saved.run_id, saved.path


def _write_outputs(
    options: RunOptions,
    state: RunState,
    run_id: str,
    state_path: Path,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
    redactor: logs.Redactor,
) -> bool:
    """False when an output file could not be written (the summary is printed all the same)."""
    wanted = Outputs(
        report=options.report,
        junit_xml=options.junit_xml,
        github=options.github,
        html=options.html,
        quiet=options.quiet,
    )
    result = run_result(state).redacted(redactor)  # the one model every output renders
    ok = write_outputs(
        result,
        wanted,
        stdout=stdout,
        stderr=stderr,
        environ=environ,
    )
    if state.status != "succeeded":
        stdout.write(
            f"State saved in {state_path}; resume with: {resume_command(options, run_id)}\n"
        )
    return ok


def _check_outputs(options: RunOptions, directory: Path) -> None:
    """Before anything runs: no output over the manifest, every output and the state writable."""
    named = [
        ("--report", options.report),
        ("--junit-xml", options.junit_xml),
        ("--html", options.html),
        ("--emulator-journal", options.emulator_journal),
    ]
    check_paths(options.file, named)
    journal = Path(options.emulator_journal) if options.emulator_journal else None
    if journal is not None and not journal.parent.is_dir():
        raise UsageError(f"cannot write --emulator-journal {journal}: no folder {journal.parent}")
    check_state_dir(directory)


def resume_command(options: RunOptions, run_id: str) -> str:
    """The command that resumes this run, as it works when pasted: same manifest, state
    directory and target (the embedded emulator starts afresh, hence --force)."""
    words = ["celonis-runner", "run", options.file, "--resume", run_id]
    if options.environment:
        words += ["--env", options.environment]
    if options.state_dir:
        words += ["--state-dir", options.state_dir]
    if options.base_url:
        words += ["--base-url", options.base_url]
    if options.emulator:
        words += ["--emulator", *(("--scenario", options.scenario) if options.scenario else ())]
        words.append("--force")
    return shlex.join(words)


def exit_code(state: RunState, received: list[int], outputs_written: bool = True) -> int:
    """The documented exit code; an output that could not be written is a usage error (2)
    when nothing worse happened."""
    if received:
        return ExitCode.TERMINATED if received[0] == signal.SIGTERM else ExitCode.INTERRUPTED
    if state.status in ("api_error", "state_error"):
        return ExitCode.API_UNUSABLE
    if state.status == "failed":
        return ExitCode.JOB_FAILED
    return ExitCode.OK if outputs_written else ExitCode.INVALID


@contextlib.contextmanager
def _signals(executor: Executor, interrupt: threading.Event) -> Iterator[list[int]]:
    """First SIGINT/SIGTERM: stop gracefully (and end retry waits). Second: stop at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        interrupt.set()
        name = signal.Signals(signum).name
        if len(received) == 1:
            executor.request_stop(f"{name} received")
        else:
            executor.request_stop(f"{name} received twice", hard=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


EXAMPLES = """\
  celonis-runner run --emulator                 # try ./jobs.yaml against the embedded emulator
  celonis-runner run prod.jobs.yaml --select +load_o2c_model --report report.json
  celonis-runner run prod.jobs.yaml --resume    # take up the latest run that did not succeed"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        default=DEFAULT_FILE,
        action=_File,
        metavar="FILE",
        help=f"the manifest (default: {DEFAULT_FILE})",
    )
    add_selection(parser)
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="after the first failure start nothing new and cancel running jobs",
    )
    _add_outputs(parser)
    _add_target(parser)
    _add_stopping(parser)
    _add_resume(parser)
    add_github(parser, "GitHub Actions annotations and the job summary")
    add_manifest_options(parser)


def _add_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", metavar="PATH", help="write a JSON report (schema/report.schema.json)"
    )
    parser.add_argument(
        "--junit-xml", metavar="PATH", help="write a JUnit XML report (a test suite per pool)"
    )
    parser.add_argument(
        "--html",
        metavar="PATH",
        help="write the run as one HTML page: timeline, dependency graph, each job's outcome"
        " (no network needed to view it)",
    )
    parser.add_argument(
        "--log-format",
        choices=["console", "json"],
        help="console: lines for people; json: one JSON object a line"
        " (default: $CELONIS_RUNNER_LOG_FORMAT, then console)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail in the log (debug events)"
    )
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="fewer lines: only problems (warnings, errors, the jobs that did not succeed)"
        " and the verdict",
    )


def _add_target(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    add_env(parser)
    parser.add_argument(
        "--emulator-journal",
        metavar="PATH",
        help="with --emulator: write every request the emulator saw (JSON lines)",
    )


def _add_stopping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-cancel", action="store_true", help="on Ctrl-C/SIGTERM leave remote jobs running"
    )
    parser.add_argument(
        "--grace",
        type=non_negative_float,
        default=60.0,
        metavar="SECONDS",
        help="on Ctrl-C/SIGTERM wait this long for cancelled jobs to end (default 60)",
    )
    parser.add_argument(
        "--settle-window",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="how long an execute whose answer was lost is looked for in the execution history"
        " before the job ends unclear (e.g. 5m; overrides settle_window in the manifest)",
    )


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero, e.g. 5m")
    return seconds


def with_settle_window(manifest: Manifest, seconds: float) -> Manifest:
    """The manifest with every job's settle window set to `seconds` (run --settle-window)."""
    jobs = {n: dataclasses.replace(j, settle_window=seconds) for n, j in manifest.jobs.items()}
    return dataclasses.replace(manifest, jobs=jobs)


class _File(argparse.Action):
    """FILE; when absent, a manifest given right after --resume stands (see _Resume)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        after_resume: str | None = getattr(namespace, "file_after_resume", None)
        if after_resume is None or values != self.default:
            if after_resume not in (None, values):
                parser.error(f"two manifests: {values} and {after_resume}")
            namespace.file = values


class _Resume(argparse.Action):
    """`--resume [RUN_ID]`: a manifest right after it is FILE (`run --resume jobs.yaml`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        value = str(values)
        if value != "latest" and looks_like_manifest(value):
            if getattr(namespace, "file", DEFAULT_FILE) not in (DEFAULT_FILE, value):
                parser.error(f"two manifests: {namespace.file} and {value}")
            namespace.file = namespace.file_after_resume = value
            value = "latest"
        namespace.resume = value


def _add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        action=_Resume,
        metavar="RUN_ID",
        help="run what did not succeed in an earlier run: RUN_ID, or the latest when none is"
        " given (a .yaml/.yml or an existing file after it is FILE, not a run id)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where run state is saved"
        " (default: $CELONIS_RUNNER_STATE_DIR, then .celonis-runner/runs)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --resume: resume even if the manifest changed (a job whose tasks changed in"
        " Celonis then runs whole)",
    )
    parser.add_argument(
        "--whole-jobs",
        action="store_true",
        help="with --resume: run a job that failed in one of its tasks whole, not only its"
        " tasks that did not succeed",
    )


def main(args: argparse.Namespace, ctx: Context) -> int:
    if (args.scenario or args.emulator_journal) and not args.emulator:
        raise UsageError("--scenario and --emulator-journal go with --emulator")
    options = RunOptions(
        file=args.file,
        select=args.select,
        exclude=args.exclude,
        max_parallel=args.max_parallel,
        fail_fast=args.fail_fast,
        report=args.report,
        base_url=args.base_url,
        log_format=args.log_format,
        verbose=args.verbose,
        quiet=args.quiet,
        emulator=args.emulator,
        scenario=args.scenario,
        emulator_journal=args.emulator_journal,
        cancel_on_stop=not args.no_cancel,
        grace=args.grace,
        max_bytes=args.max_size,
        resume=args.resume,
        state_dir=args.state_dir,
        force=args.force,
        junit_xml=args.junit_xml,
        html=args.html,
        github=github_enabled(args, ctx),
        whole_jobs=args.whole_jobs,
        tasks=args.tasks,
        settle_window=args.settle_window,
        base=args.base,
        environment=chosen_env(args.env, ctx.environ),
    )
    return run(options, environ=ctx.environ, stdout=ctx.stdout, stderr=ctx.stderr, ctx=ctx)
