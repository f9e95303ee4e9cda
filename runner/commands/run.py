"""`celonis-runner run`: execute the plan against Celonis (or the embedded emulator)."""

from __future__ import annotations

import contextlib
import os
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

import requests
import structlog

from runner import logs
from runner.api import CelonisClient
from runner.clock import Clock
from runner.commands.plan import load_checked
from runner.errors import ExitCode, UsageError
from runner.execution.executor import Executor
from runner.execution.progress import ProgressLine
from runner.execution.runlock import run_lock
from runner.execution.runstate import ResumeFrom, RunState
from runner.execution.statefile import (
    EMULATOR_TARGET,
    SavedRun,
    StateStore,
    check_resume_target,
    find_state,
    load_saved,
    manifest_changes,
    resume_from,
    state_dir,
)
from runner.files import write_json_atomic
from runner.plan.build import build_plan
from runner.reports import github
from runner.reports.junit import write_junit
from runner.reports.report import build_report, write_summary
from runner.target import http_timeouts, open_target, secret_values

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
    github: bool = False


def new_run_id(clock: Clock) -> str:
    stamp = datetime.fromtimestamp(clock.time(), UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def run(options: RunOptions, *, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    # one run or resume of a manifest per state directory at a time (issue 16 #3)
    with run_lock(state_dir(options.state_dir, environ), options.file):
        return _run(options, environ=environ, stdout=stdout, stderr=stderr)


def _run(options: RunOptions, *, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO) -> int:
    manifest = load_checked(
        options.file,
        environ=environ,
        strict_env=not options.emulator,
        stderr=stderr,
        max_bytes=options.max_bytes,
        annotate=options.github,
    )
    directory = state_dir(options.state_dir, environ)
    resume: ResumeFrom | None = None
    saved: SavedRun | None = None
    select, exclude = list(options.select), list(options.exclude)
    if options.resume:
        saved = load_saved(find_state(directory, options.resume))
        if (select or exclude) and (select, exclude) != (saved.select, saved.exclude):
            raise UsageError(
                "a resumed run keeps the selection it started with: drop --select/--exclude"
            )
        select, exclude = saved.select, saved.exclude
    plan = build_plan(manifest, select=select, exclude=exclude, max_parallel=options.max_parallel)
    if saved is not None:
        changes = manifest_changes(saved, plan)
        if changes and not options.force:
            raise UsageError(
                f"the manifest changed since run {saved.run_id}: "
                + "; ".join(changes)
                + ". Resume anyway with --force, or start a new run without --resume"
            )
        resume = resume_from(saved, plan)
    log_format = logs.choose_format(options.log_format, stderr)
    redactor = logs.Redactor(secret_values(manifest, environ))
    progress = ProgressLine(stderr, enabled=log_format == "console" and _isatty(stderr))
    logs.configure(
        log_format=log_format,
        verbosity=options.verbose,
        stream=progress.stream,
        environ=environ,
        redactor=redactor,
    )
    with open_target(
        manifest,
        environ,
        redactor,
        base_url=options.base_url,
        emulator=options.emulator,
        scenario=options.scenario,
        emulator_journal=options.emulator_journal,
    ) as target:
        session = requests.Session()
        client = CelonisClient(
            target.base_url, target.auth, session, target.clock, timeouts=http_timeouts(environ)
        )
        where = EMULATOR_TARGET if options.emulator else target.base_url
        check_resume_target(saved, where, force=options.force)
        if saved is None:
            run_id = new_run_id(target.clock)
            state_path = directory / f"{run_id}.json"
        else:
            run_id, state_path = saved.run_id, saved.path
        store = StateStore(
            state_path,
            select=select,
            exclude=exclude,
            clock=target.clock,
            redactor=redactor,
            target=where,
            clock_rate=getattr(target.clock, "scale", 1.0),  # the throttle runs on real time
        )
        executor = Executor(
            plan,
            client,
            target.clock,
            fail_fast=options.fail_fast,
            cancel_on_stop=options.cancel_on_stop,
            grace=options.grace,
            listeners=[progress.update, store.note],
            checkpoint=store,
            resume=resume,
            run_id=run_id,
        )
        log.info(
            "run_started",
            run_id=run_id,
            manifest=manifest.path,
            jobs=len(plan.jobs),
            base_url=target.base_url,
        )
        with _signals(executor) as received:
            state = executor.run()
        progress.close()
        _write_outputs(
            options,
            state,
            run_id=run_id,
            state_path=state_path,
            stdout=stdout,
            stderr=stderr,
            environ=environ,
        )
        code = exit_code(state, received)
        if len(received) >= 2:
            # A second signal means "now": the state, report and summary are written; don't wait
            # for requests still in flight or for the emulator's threads to wind down.
            stdout.flush()
            stderr.flush()
            os._exit(code)
    return code


def _write_outputs(
    options: RunOptions,
    state: RunState,
    *,
    run_id: str,
    state_path: Path,
    stdout: TextIO,
    stderr: TextIO,
    environ: Mapping[str, str],
) -> None:
    if options.report:
        write_json_atomic(Path(options.report), build_report(state, run_id=run_id))
    write_summary(state, stdout)
    if options.github:
        github.report_run(state, run_id=run_id, stream=stderr, environ=environ)
    if options.junit_xml:
        write_junit(Path(options.junit_xml), state)
    if state.status != "succeeded":
        stdout.write(
            f"State saved in {state_path}; resume with: {resume_command(options, run_id)}\n"
        )


def resume_command(options: RunOptions, run_id: str) -> str:
    """The command that resumes this run, as it works when pasted: same manifest, state
    directory and target (the embedded emulator starts afresh, hence --force)."""
    words = ["celonis-runner", "run", options.file, "--resume", run_id]
    if options.state_dir:
        words += ["--state-dir", options.state_dir]
    if options.base_url:
        words += ["--base-url", options.base_url]
    if options.emulator:
        words += ["--emulator", *(("--scenario", options.scenario) if options.scenario else ())]
        words.append("--force")
    return shlex.join(words)


def exit_code(state: RunState, received: list[int]) -> int:
    if received:
        return ExitCode.TERMINATED if received[0] == signal.SIGTERM else ExitCode.INTERRUPTED
    if state.status == "api_error":
        return ExitCode.API_UNUSABLE
    if state.status == "failed":
        return ExitCode.JOB_FAILED
    return ExitCode.OK


@contextlib.contextmanager
def _signals(executor: Executor) -> Iterator[list[int]]:
    """First SIGINT/SIGTERM: stop gracefully. Second: stop at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            executor.request_stop(f"{name} received")
        else:
            executor.hard_stop.set()
            executor.request_stop(f"{name} received twice")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
