"""`celonis-runner init`: write a jobs.yaml from the team's data pools and jobs (or a starter one).

Read-only towards Celonis: the pool list, then each pool's job list. The
written file validates (it is checked before it takes its name), names
pools and jobs after their Celonis names and invents no dependency. An
existing file is never overwritten without `--force`. Exit 0 when written,
2 for usage (the file exists, `--pool` matches nothing, nothing to write),
3 when the API cannot be used.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from runner.commands.shared import (
    DEFAULT_FILE,
    Context,
    RemoteOptions,
    add_connection,
    remote_client,
    remote_options,
)
from runner.errors import ExitCode, RunnerError, UsageError
from runner.files import write_text_atomic
from runner.manifest.loader import canonical_uuid
from runner.manifest.model import Manifest
from runner.manifest.naming import snake_case
from runner.manifest.writer import (
    NamedPool,
    RemoteJob,
    RemotePool,
    Source,
    example_manifest,
    name_pools,
    render,
)
from runner.problems import did_you_mean
from runner.shared_types import (
    DEFAULT_CLIENT_ID_ENV,
    DEFAULT_CLIENT_SECRET_ENV,
    DEFAULT_KEY_ENV,
    AuthConfig,
    AuthType,
    Connection,
)
from runner.text import printable

if TYPE_CHECKING:
    from runner.api.client import CelonisClient

EXAMPLES = """\
  celonis-runner init --base-url https://acme.eu-1.celonis.cloud   # key in $CELONIS_API_KEY
  celonis-runner init --pool "SAP ECC" --pool 7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77 --out sap.jobs.yaml
  celonis-runner init --example                # a commented starter file, no API call"""

_TEAM_URL = re.compile(r"^https://([a-z0-9][a-z0-9-]*)\.([a-z0-9][a-z0-9-]*)\.celonis\.cloud$")
_AUTH_TYPES: tuple[AuthType, ...] = ("api_key", "app_key", "oauth")

EMPTY_TEAM_HINT = (
    "check that the base URL is your team's, that the key belongs to that team, and that its"
    " user or application has permission on the data pools (view and manage)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default=DEFAULT_FILE,
        metavar="FILE",
        help=f"the manifest to write (default: {DEFAULT_FILE})",
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="NAME_OR_ID",
        help="only this data pool (its Celonis name or id); repeat for more",
    )
    parser.add_argument(
        "--example",
        action="store_true",
        help="write a commented starter manifest instead, without any API call",
    )
    parser.add_argument(
        "--auth",
        choices=_AUTH_TYPES,
        default=None,
        help="how to authenticate (default: api_key when $CELONIS_API_KEY is set, oauth when"
        " $CELONIS_CLIENT_ID and $CELONIS_CLIENT_SECRET are); the file keeps it",
    )
    parser.add_argument(
        "--by-name",
        action="store_true",
        help="address pools and jobs by their Celonis names (celonis_name:), not by ids, so that"
        " one manifest serves every team that has them (see environments: in the README)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=URL",
        dest="env_pairs",
        help="with --by-name: an entry NAME of environments: for the team at URL (its key in"
        " $NAME_API_KEY); repeat for more",
    )
    add_connection(parser)
    for action in parser._actions:
        if action.dest == "base_url":  # there is no manifest yet to take it from
            action.help = "the Celonis team URL (default: $CELONIS_BASE_URL)"


@dataclass(frozen=True)
class Written:
    path: Path
    named: list[NamedPool]
    schema_ref: str
    schema_exists: bool


def main(args: argparse.Namespace, ctx: Context) -> int:
    out = Path(args.out)
    _refuse_overwrite(out, args.force)
    schema_ref, schema_exists = schema_reference(out)
    if args.example:
        return _example(out, args, schema_ref, schema_exists, ctx)
    remote = remote_options(args)
    _check_target(args, remote, ctx.environ)
    _environment_sources(args.env_pairs, "api_key", by_name=args.by_name)  # usage errors first
    auth_type = args.auth or _detected_auth(ctx.environ, remote.emulator)
    pools, base_url = read_team(args, ctx, auth_type)
    pools, left_out = usable(pools)
    for note in left_out:
        ctx.stderr.write(f"celonis-runner: warning: the team listed {note}\n")
    named = name_pools(pools)
    if not any(entry.jobs for entry in named):
        return _nothing_to_write(named, base_url, ctx.stderr)
    source = dataclasses.replace(
        _source(base_url, remote.emulator, auth_type, schema_ref),
        by_name=args.by_name,
        environments=_environment_sources(args.env_pairs, auth_type),
    )
    write_manifest(out, render(source, named), force=args.force)
    _report(Written(out, named, schema_ref, schema_exists), ctx.stdout)
    schema_exists = write_schema_beside(out, schema_ref, schema_exists, ctx.stdout)
    _next_steps(out, args, schema_ref, schema_exists, ctx.stdout)
    return ExitCode.OK


def _example(
    out: Path, args: argparse.Namespace, schema_ref: str, schema_exists: bool, ctx: Context
) -> int:
    """init --example: a commented starter manifest, without any API call."""
    if args.pool or args.emulator or args.base_url or args.scenario:
        raise UsageError("--example makes no API call: it takes only --out and --force")
    write_manifest(out, example_manifest(schema_ref), force=args.force)
    ctx.stdout.write(f"Wrote {out}: a starter manifest; replace its ids with yours.\n")
    schema_exists = write_schema_beside(out, schema_ref, schema_exists, ctx.stdout)
    _next_steps(out, args, schema_ref, schema_exists, ctx.stdout)
    return ExitCode.OK


def _check_target(
    args: argparse.Namespace, remote: RemoteOptions, environ: Mapping[str, str]
) -> None:
    """UsageError unless init knows which team to read."""
    if remote.emulator and not remote.scenario:
        raise UsageError(
            "init --emulator needs --scenario FILE: without one the emulator serves no data pools"
        )
    if not remote.emulator and not (args.base_url or environ.get("CELONIS_BASE_URL")):
        raise UsageError(
            "init needs your team's URL: pass --base-url https://TEAM.REALM.celonis.cloud"
            " or set $CELONIS_BASE_URL (or try it with --emulator --scenario FILE)"
        )


def _refuse_overwrite(out: Path, force: bool) -> None:
    if out.is_dir():
        raise UsageError(f"{out} is a directory: pass --out FILE")
    if out.exists() and not force:
        raise UsageError(
            f"{out} already exists: pass --force to overwrite it, or --out to write another file"
        )


def write_schema_beside(out: Path, schema_ref: str, schema_exists: bool, stdout: TextIO) -> bool:
    """The manifest's modeline names `schema_ref` beside it: write the schema there when it is
    not (outside this repository the modeline would name a file that does not exist)."""
    if schema_exists:
        return True
    from runner.schema import MANIFEST_SCHEMA, schema_text

    place = out.parent / schema_ref
    try:
        write_text_atomic(place, schema_text(MANIFEST_SCHEMA), mode=0o644)
    except OSError as error:
        stdout.write(
            f"(could not write {place}: {error.strerror}; the editor's modeline needs it)\n"
        )
        return False
    stdout.write(f"Wrote {place}: the JSON Schema the file's modeline names, for your editor.\n")
    return True


def schema_reference(out: Path) -> tuple[str, bool]:
    """The modeline's schema path, relative to the written file, and whether it exists there."""
    for candidate in ("schema/jobs.schema.json", "jobs.schema.json"):
        if (out.parent / candidate).is_file():
            return candidate, True
    return "jobs.schema.json", False


def _detected_auth(environ: Mapping[str, str], emulator: bool) -> AuthType:
    if environ.get(DEFAULT_KEY_ENV, "").strip():
        return "api_key"
    if (
        environ.get(DEFAULT_CLIENT_ID_ENV, "").strip()
        and environ.get(DEFAULT_CLIENT_SECRET_ENV, "").strip()
    ):
        return "oauth"
    if emulator:
        return "api_key"
    raise UsageError(
        f"no credentials: set ${DEFAULT_KEY_ENV} (an API key; with --auth app_key an application"
        f" key), or ${DEFAULT_CLIENT_ID_ENV} and ${DEFAULT_CLIENT_SECRET_ENV} (an OAuth client)"
    )


def _pseudo_manifest(auth_type: AuthType) -> Manifest:
    """What `connect` needs from a manifest, before there is one: the credential variables."""
    return Manifest(
        path="(init)",
        sha256="",
        version=1,
        connection=Connection(auth=AuthConfig(type=auth_type)),
        pools={},
        jobs={},
    )


def read_team(
    args: argparse.Namespace, ctx: Context, auth_type: AuthType
) -> tuple[list[RemotePool], str]:
    """The pools `--pool` names (every pool the key can see without it), each with its jobs;
    and the base URL they were read from."""
    # Imported here: `init --example` and `--help` need no HTTP stack.

    remote = remote_options(args)
    manifest = _pseudo_manifest(auth_type)
    with remote_client(manifest, remote, ctx.environ, ctx.stderr) as (client, redactor):
        listed = [(info.id, info.name) for info in client.list_pools()]
        chosen = choose_pools(listed, args.pool)
        # Only the chosen pools' job lists are read: --pool saves a request per other pool.
        pools = [_read_pool(client, pool_id, name) for pool_id, name in chosen]
        return [_scrubbed(pool, redactor.scrub) for pool in pools], client.base_url


def _scrubbed(pool: RemotePool, scrub: Callable[[str], str]) -> RemotePool:
    """The pool with no credential in its name or its jobs' (they go to the file and stdout)."""

    def name(text: str | None) -> str | None:
        return None if text is None else scrub(text)

    jobs = tuple(RemoteJob(job.id, name(job.name)) for job in pool.jobs)
    return RemotePool(pool.id, name(pool.name), jobs, pool.unreadable)


def usable(pools: Sequence[RemotePool]) -> tuple[list[RemotePool], list[str]]:
    """The pools and jobs a manifest can hold: ids that are UUIDs (lower case), each pool and
    each job once (the first listing kept); and what was left out, one line each."""
    seen_pools: set[str] = set()
    seen_jobs: dict[str, str] = {}  # job id -> the pool it was kept in
    kept: list[RemotePool] = []
    notes: list[str] = []
    for pool in pools:
        pool_id = canonical_uuid(pool.id)
        shown = f"pool '{printable(pool.name or '(no name)')}' ({printable(pool.id)})"
        if pool_id is None or pool_id in seen_pools:
            why = "its id is not a UUID" if pool_id is None else "listed twice"
            notes.append(f"{shown}: {why}; left out")
            continue
        seen_pools.add(pool_id)
        jobs = _usable_jobs(pool, pool_id, shown, seen_jobs, notes)
        kept.append(RemotePool(pool_id, pool.name, tuple(jobs), pool.unreadable))
    return kept, notes


def _usable_jobs(
    pool: RemotePool, pool_id: str, shown: str, seen: dict[str, str], notes: list[str]
) -> list[RemoteJob]:
    """The pool's jobs with a UUID not kept before (noted in `seen`); the others in `notes`."""
    jobs = []
    for job in pool.jobs:
        job_id = canonical_uuid(job.id)
        if job_id is not None and job_id not in seen:
            seen[job_id] = pool_id
            jobs.append(RemoteJob(job_id, job.name))
            continue
        why = "its id is not a UUID" if job_id is None else "listed twice"
        if job_id is not None and seen[job_id] != pool_id:
            why = f"listed twice (also in pool {seen[job_id]})"
        job_shown = f"job '{printable(job.name or '(no name)')}' ({printable(job.id)})"
        notes.append(f"{job_shown} in {shown}: {why}; left out")
    return jobs


def _matches(pool_id: str, name: str | None, selector: str) -> bool:
    """`selector` is the pool's id, its Celonis name (any case), or that name in snake_case."""
    wanted = selector.strip()
    if wanted.lower() == pool_id.lower():
        return True
    if name is None:
        return False
    key = snake_case(wanted)
    return wanted.casefold() == name.strip().casefold() or (bool(key) and key == snake_case(name))


def choose_pools(
    pools: list[tuple[str, str | None]], selectors: Sequence[str]
) -> list[tuple[str, str | None]]:
    """The (id, name) pairs `--pool` names, all without it; UsageError for a selector that
    matches none (with the closest name)."""
    for selector in selectors:
        if not any(_matches(pool_id, name, selector) for pool_id, name in pools):
            raise UsageError(_no_pool(selector, [name for _, name in pools if name]))
    if not selectors:
        return pools
    return [(i, n) for i, n in pools if any(_matches(i, n, s) for s in selectors)]


def _no_pool(selector: str, names: list[str]) -> str:
    hint = did_you_mean(selector, names)
    listed = "" if hint or not names else f"; the pools: {', '.join(sorted(names)[:10])}"
    return f"--pool {selector!r} matches no data pool{hint}{listed}"


def _read_pool(client: CelonisClient, pool_id: str, name: str | None) -> RemotePool:
    from runner.api.errors import AuthError, NotFoundError

    try:
        jobs = client.list_jobs(pool_id)
    except (AuthError, NotFoundError) as error:
        if error.status not in (403, 404):
            raise  # 401: the key was refused, nothing else will work either
        why = "the key has no permission to list its jobs" if error.status == 403 else "not found"
        return RemotePool(pool_id, name, unreadable=why)
    return RemotePool(pool_id, name, tuple(RemoteJob(job.id, job.name) for job in jobs))


def _nothing_to_write(named: list[NamedPool], base_url: str, stderr: TextIO) -> int:
    if not named:
        stderr.write(
            f"celonis-runner: error: no data pools visible at {base_url}: the team has none,"
            f" or the key cannot see them; {EMPTY_TEAM_HINT}. Nothing written.\n"
        )
        return ExitCode.INVALID
    stderr.write(
        f"celonis-runner: error: none of the {len(named)} data pool(s) at {base_url} has a data"
        " job the key can see, and a manifest needs at least one. Nothing written.\n"
    )
    for entry in named:
        why = entry.pool.unreadable or "no data jobs"
        stderr.write(f"  {printable(entry.pool.name or '(no name)')} ({entry.pool.id}): {why}\n")
    stderr.write(f"Check: {EMPTY_TEAM_HINT}.\n")
    return ExitCode.INVALID


def _environment_sources(
    pairs: Sequence[str], auth_type: AuthType, *, by_name: bool = True
) -> tuple[tuple[str, Source], ...]:
    """`--env NAME=URL` pairs as `environments:` entries; UsageError for a malformed pair."""
    from runner.api.baseurl import check_base_url

    if pairs and not by_name:
        raise UsageError("--env NAME=URL needs --by-name: ids differ between teams, names do not")
    entries: dict[str, Source] = {}
    for pair in pairs:
        name, _, url = pair.partition("=")
        name, url = name.strip(), url.strip()
        if not _ENV_NAME.match(name) or not url:
            raise UsageError(
                f"--env {pair!r}: write NAME=URL, NAME of letters, digits, '_', '-', '.'"
                " (starting with a letter or '_')"
            )
        if name in entries:
            raise UsageError(f"--env {name!r} is given twice")
        source = _source(check_base_url(url, f"--env {name}"), False, auth_type, "")
        prefix = re.sub(r"[^A-Z0-9]", "_", name.upper())
        entries[name] = dataclasses.replace(source, key_prefix=prefix)
    return tuple(entries.items())


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _source(base_url: str, emulator: bool, auth_type: AuthType, schema_ref: str) -> Source:
    if emulator:
        return Source("the embedded emulator", auth_type=auth_type, schema_ref=schema_ref)
    team = _TEAM_URL.match(base_url)
    if team:
        return Source(
            base_url,
            team=team.group(1),
            realm=team.group(2),
            auth_type=auth_type,
            schema_ref=schema_ref,
        )
    return Source(base_url, base_url=base_url, auth_type=auth_type, schema_ref=schema_ref)


def write_manifest(out: Path, text: str, *, force: bool) -> None:
    """Write `text` to `out` whole or not at all, after checking that it validates; never
    over an existing file unless `force` (even one created meanwhile)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    _checked_into_place(Path(tmp_name), fd, out, text, force=force)


def _checked_into_place(tmp: Path, fd: int, out: Path, text: str, *, force: bool) -> None:
    from runner.manifest.loader import check_manifest

    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        result = check_manifest(tmp, {}, strict_env=False, display=str(out))
        if result.errors:  # `usable` should have left out what causes this
            problems = "; ".join(p.render() for p in result.errors[:5])
            raise RunnerError(
                f"the data pools and jobs the team listed make no valid manifest ({problems});"
                f" nothing written to {out}"
            )
        if force:
            os.replace(tmp, out)
        else:
            _link_new(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, out: Path) -> None:
    try:
        os.link(tmp, out)  # fails if `out` exists: no overwrite, even in a race
    except FileExistsError:
        raise UsageError(f"{out} already exists: pass --force to overwrite it") from None
    except OSError:  # a file system without hard links
        with open(out, "x", encoding="utf-8") as handle:
            handle.write(tmp.read_text(encoding="utf-8"))


def _report(written: Written, stdout: TextIO) -> None:
    pools = [entry for entry in written.named if entry.jobs]
    jobs = sum(len(entry.jobs) for entry in pools)
    stdout.write(
        f"Wrote {written.path}: {_plural(len(pools), 'data pool')}, {_plural(jobs, 'data job')}.\n"
    )
    stdout.writelines(_left_out(written.named))
    stdout.writelines(_renamed(pools))


def _left_out(named: Sequence[NamedPool]) -> list[str]:
    return [
        f"  left out pool '{printable(e.pool.name or '(no name)')}' ({e.pool.id}):"
        f" {e.pool.unreadable or 'no data jobs'}\n"
        for e in named
        if not e.jobs
    ]


def _renamed(pools: Sequence[NamedPool]) -> list[str]:
    lines = []
    for entry in pools:
        for job in entry.jobs:
            if job.renamed:
                shown = printable(job.job.name or "(no name)")
                lines.append(
                    f"  job '{shown}' ({entry.key}) is {job.key}: another job has the same name\n"
                )
    return lines


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _next_steps(
    out: Path, args: argparse.Namespace, schema_ref: str, schema_exists: bool, stdout: TextIO
) -> None:
    file = shlex.quote(str(out))
    target = ""
    if args.emulator:
        target = " --emulator" + (
            f" --scenario {shlex.quote(args.scenario)}" if args.scenario else ""
        )
    steps = [f"celonis-runner validate {file}", f"celonis-runner plan {file}"]
    if not schema_exists:
        place = shlex.quote(str(out.parent / schema_ref))
        steps.append(f"celonis-runner schema > {place}    # for the editor's modeline")
    steps += [
        "# add depends_on where a job needs another one first, then:",
        f"celonis-runner run {file}{target}",
    ]
    stdout.write("Next:\n" + "".join(f"  {step}\n" for step in steps))
