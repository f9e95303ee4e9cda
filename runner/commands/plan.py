"""`celonis-runner plan`: the dry run. Builds the Plan that `run` executes and prints it.

With `--check-remote` it then checks the plan against the API, read-only
(runner.commands.check_remote).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping, Sequence
from typing import TextIO

from runner.commands.base import changes_against
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
    positive_int,
    remote_options,
)
from runner.errors import ExitCode, UsageError
from runner.manifest.model import Manifest
from runner.plan.build import Plan, build_plan
from runner.plan.tasks_option import task_jobs, with_task_selection
from runner.reports import plan_output

WRITERS = {
    "text": plan_output.write_text,
    "json": plan_output.write_json,
    "mermaid": plan_output.write_mermaid,
    "dot": plan_output.write_dot,
}

EXAMPLES = """\
  celonis-runner plan --select +transform_o2c --format mermaid
  celonis-runner plan --select state:modified+ --base origin/main:jobs.yaml   # what changed
  celonis-runner plan prod.jobs.yaml --check-remote     # are the pools and jobs there?"""


def add_selection(parser: argparse.ArgumentParser) -> None:
    """`--select`, `--exclude`, `--max-parallel`: which jobs, how many at once (also `run`'s)."""
    forms = (
        "NAME, +NAME (with its dependencies), NAME+ (with its dependents), +NAME+, pool:POOL,"
        " state:modified (added and changed jobs against --base; + before or after too)"
    )
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="SEL",
        help=f"only these jobs; repeat the option for more. SEL: {forms}; commas allowed",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SEL",
        help="leave these jobs out (applied after --select); repeat the option for more",
    )
    parser.add_argument(
        "--base",
        metavar="BASE",
        help="for state:modified: the manifest to compare with, a file or REV:PATH read with"
        " `git show` (e.g. origin/main:jobs.yaml)",
    )
    parser.add_argument(
        "--max-parallel", type=positive_int, metavar="N", help="at most N jobs at once overall"
    )
    parser.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="JOB:TASKS",
        help="run only part of JOB, as its extractions/transformations/data_models keys would:"
        " 'JOB:EXTRACTION', 'JOB:EXTRACTION[TABLE,TABLE]',"
        " 'JOB:transformations=A,B;data_models=none'; selects JOB when --select is not given;"
        " repeat the option for more jobs",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_file(parser)
    parser.add_argument(
        "--format",
        choices=list(WRITERS),
        default="text",
        help="text: waves and the critical path; json: for scripts; mermaid/dot: the graph"
        " (default: text)",
    )
    add_selection(parser)
    parser.add_argument(
        "--check-remote",
        action="store_true",
        help="then check against the API, read-only, that every pool and job exists and is"
        " visible to the key, and warn about jobs running now",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where earlier runs' state is read to learn durations of jobs without"
        " expected_duration (default: $CELONIS_RUNNER_STATE_DIR, then .celonis-runner/runs)",
    )
    add_connection(parser)
    add_env(parser, repeat=True)
    add_github(parser, "GitHub Actions annotations for problems")
    add_quiet(
        parser,
        "the plan's headline and critical path (--format text; the other formats are unchanged)",
    )
    add_manifest_options(parser)


def main(args: argparse.Namespace, ctx: Context) -> int:
    remote = remote_options(args)
    if (args.emulator or args.base_url) and not args.check_remote:
        raise UsageError(
            "--base-url and --emulator go with --check-remote (plan alone makes no request)"
        )
    envs: list[str] = args.env or [e for e in [chosen_env(None, ctx.environ)] if e]
    if len(envs) > 1:
        return _drift(args, envs, remote, ctx)
    return run(
        args.file,
        output_format=args.format,
        select=args.select,
        exclude=args.exclude,
        max_parallel=args.max_parallel,
        environ=ctx.environ,
        stdout=ctx.stdout,
        stderr=ctx.stderr,
        max_bytes=args.max_size,
        github=github_enabled(args, ctx),
        remote=remote if args.check_remote else None,
        state_dir=args.state_dir,
        tasks=args.tasks,
        base=args.base,
        environment=envs[0] if envs else None,
        quiet=args.quiet,
    )


def _drift(args: argparse.Namespace, envs: list[str], remote: RemoteOptions, ctx: Context) -> int:
    """`--env A --env B --check-remote`: each job looked up in each environment."""
    if not args.check_remote or remote.base_url or remote.emulator:
        raise UsageError(
            "several --env go with --check-remote (and without --base-url or --emulator: each"
            " environment's own connection is used)"
        )
    from runner.commands import drift

    return drift.run(
        args.file,
        envs,
        remote,
        environ=ctx.environ,
        stdout=ctx.stdout,
        stderr=ctx.stderr,
        max_bytes=args.max_size,
        github=github_enabled(args, ctx),
    )


def write_plan(
    plan: Plan,
    output_format: str,
    stdout: TextIO,
    environ: Mapping[str, str],
    quiet: bool = False,
) -> None:
    """The plan in its format (`quiet`: the text's summary lines only). Task names (a job's
    `extractions`, ...) may come from the environment: any credential among them is scrubbed,
    as in every other output."""
    writer = WRITERS[output_format]
    if quiet and output_format == "text":
        writer = plan_output.write_summary
    if all(p.job.tasks is None for p in plan.jobs.values()):
        writer(plan, stdout)
        return
    from runner import logs
    from runner.target import secret_values

    redactor = logs.Redactor(
        [*secret_values(plan.manifest, environ), *logs.secret_like_values(environ)]
    )
    text = io.StringIO()
    writer(plan, text)
    stdout.write(redactor.scrub(text.getvalue()))


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
    state_dir: str | None = None,
    tasks: Sequence[str] = (),
    base: str | None = None,
    environment: str | None = None,
    quiet: bool = False,
) -> int:
    manifest = load_checked(
        file,
        environ=environ,
        # the remote check needs the real ids: an unset variable is an error there
        strict_env=remote is not None and not remote.emulator,
        stderr=stderr,
        max_bytes=max_bytes,
        annotate=github,
        environment=environment,
    )
    manifest = with_task_selection(manifest, tasks)
    select = list(select) or task_jobs(tasks)
    learned = _learned(manifest, state_dir, environ)
    changes = (
        changes_against(base, manifest, environ=environ, max_bytes=max_bytes) if base else None
    )

    def planned(manifest: Manifest) -> Plan:
        return build_plan(
            manifest,
            select=select,
            exclude=exclude,
            max_parallel=max_parallel,
            learned=learned,
            changes=changes,
        )

    plan = planned(manifest)
    write_plan(plan, output_format, stdout, environ, quiet)
    if remote is None:
        return ExitCode.OK
    from runner.commands import check_remote  # loads the HTTP stack only when asked to

    return check_remote.run(
        plan, remote, environ=environ, stderr=stderr, github=github, replan=planned
    )


def _learned(
    manifest: Manifest, option: str | None, environ: Mapping[str, str]
) -> dict[str, float]:
    """Durations of earlier runs, for the jobs without an expected_duration."""
    from runner.runresult.history import learned_durations
    from runner.runresult.read import state_dir

    found = learned_durations(state_dir(option, environ), manifest)
    return {name: learned.seconds for name, learned in found.items()}
