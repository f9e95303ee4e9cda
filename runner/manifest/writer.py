"""Rendering a manifest for `celonis-runner init`: the team's pools and jobs as a commented jobs.yaml.

Pure: data in, YAML text out. Keys come from the Celonis names
(`runner.manifest.naming`); the Celonis names themselves go to `name` and
`description`, quoted so that no character of theirs can break the YAML, the
schema or `${VAR}` substitution. No dependency is invented.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from runner.manifest.naming import base_key, unique_keys
from runner.shared_types import AuthType
from runner.text import printable

# YAML 1.1 reads these plain words as booleans or null; PyYAML speaks 1.1.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_PLAIN_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.()/&+,")


@dataclass(frozen=True)
class RemoteJob:
    id: str
    name: str | None


@dataclass(frozen=True)
class RemotePool:
    id: str
    name: str | None
    jobs: tuple[RemoteJob, ...] = ()
    unreadable: str | None = None
    """Why its jobs could not be listed (e.g. no permission); None when they were."""


@dataclass(frozen=True)
class Source:
    """Where the pools came from, and the connection the written file keeps."""

    described: str
    """For the header comment, e.g. `https://acme.eu-1.celonis.cloud`."""
    base_url: str | None = None
    team: str | None = None
    realm: str | None = None
    auth_type: AuthType = "api_key"
    schema_ref: str = "jobs.schema.json"
    by_name: bool = False
    """Address pools and jobs by `celonis_name:` (init --by-name), not by id: one manifest then
    serves every team whose pools and jobs have those names."""
    environments: tuple[tuple[str, Source], ...] = ()
    """`environments:` entries (init --env NAME=URL): each name with its team's connection."""
    key_prefix: str = "CELONIS"
    """The key variables' prefix: CELONIS_API_KEY, DEV_API_KEY, ..."""


@dataclass(frozen=True)
class NamedJob:
    key: str
    job: RemoteJob
    renamed: bool = False
    """The key is not simply the name in snake_case: another job had the same one."""


@dataclass(frozen=True)
class NamedPool:
    key: str
    pool: RemotePool
    jobs: tuple[NamedJob, ...] = field(default=())


def _order(name: str | None, celonis_id: str) -> tuple[str, str]:
    # Sorted by name, then id: the same team gives the same file, whatever order the API lists.
    return ((name or "").casefold(), celonis_id.lower())


def _qualified(bases: list[list[str]], pool_keys: list[str]) -> list[str]:
    """Each pool's job keys in order, a key that occurs in several pools qualified with its
    pool's key."""
    pools_with: dict[str, set[int]] = {}
    for index, keys in enumerate(bases):
        for key in keys:
            pools_with.setdefault(key, set()).add(index)
    return [
        f"{pool_keys[index]}_{key}" if len(pools_with[key]) > 1 else key
        for index, keys in enumerate(bases)
        for key in keys
    ]


def name_pools(pools: Sequence[RemotePool]) -> list[NamedPool]:
    """Every pool and job with a unique, valid key, sorted by Celonis name.

    A job name that occurs in more than one pool is qualified with its pool's
    key (`sap_extract`, `crm_extract`); repeats within a pool get `_2`, `_3`.
    """
    ordered = sorted(pools, key=lambda p: _order(p.name, p.id))
    pool_keys = unique_keys([base_key(p.name, "pool", p.id) for p in ordered])
    jobs_of = [sorted(p.jobs, key=lambda j: _order(j.name, j.id)) for p in ordered]
    bases = [[base_key(j.name, "job", j.id) for j in jobs] for jobs in jobs_of]
    wanted = _qualified(bases, pool_keys)
    job_keys = iter(unique_keys(wanted))
    plain = iter(key for keys in bases for key in keys)
    named: list[NamedPool] = []
    for key, pool, jobs in zip(pool_keys, ordered, jobs_of, strict=True):
        entries = []
        for job in jobs:
            job_key, base = next(job_keys), next(plain)
            entries.append(NamedJob(job_key, job, renamed=job_key != base))
        named.append(NamedPool(key, pool, tuple(entries)))
    return named


def yaml_string(text: str) -> str:
    """`text` as a YAML scalar that loads back as `text` after the manifest's `${VAR}`
    substitution: plain when that is unambiguous, else double-quoted with escapes."""
    text = text.replace("${", "$${")
    if (
        text
        and text[0].isalpha()
        and text[-1] != " "
        and set(text) <= _PLAIN_SAFE
        and text.lower() not in _YAML_WORDS
    ):
        return text
    return '"' + "".join(_escaped(c) for c in text) + '"'


def _escaped(char: str) -> str:
    if char in '\\"':
        return "\\" + char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate (JSON allows them, YAML does not)
        return "\\uFFFD"
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def comment_text(text: str | None) -> str:
    """`text` safe inside a `#` comment: one line, control characters shown escaped."""
    return printable(text or "(no name)")


def _header(source: Source, named: Sequence[NamedPool]) -> list[str]:
    jobs = sum(len(p.jobs) for p in named)
    return [
        f"# yaml-language-server: $schema={source.schema_ref}",
        "#",
        f"# Written by `celonis-runner init` from {comment_text(source.described)}:",
        f"# {_count(len(named), 'data pool')}, {_count(jobs, 'data job')}.",
        "# Keys are the Celonis names in snake_case: rename them as you like (the Celonis",
        "# name stays in `name` and `description`); the ids are Celonis'.",
        "version: 1",
        "",
    ]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _connection(source: Source) -> list[str]:
    return [
        *_connection_block(source),
        *_environments(source.environments),
        "",
        "# defaults:          # settings for every job; a job's own value wins",
        "#   mode: DELTA      # FULL extracts every table, DELTA only what changed (default)",
        "#   timeout: 2h      # cancel a job that runs longer (default 4h)",
        "",
    ]


def _environments(entries: Sequence[tuple[str, Source]]) -> list[str]:
    """`environments:`, one entry a team, each with its own connection and key variables."""
    if not entries:
        return []
    lines = ["", "environments:  # --env NAME (or $CELONIS_RUNNER_ENV) picks one"]
    for name, source in entries:
        lines.append(f"  {yaml_string(name)}:")
        lines += [f"    {line}" for line in _connection_block(source)]
    return lines


def _connection_block(source: Source) -> list[str]:
    lines = ["connection:"]
    if source.team and source.realm:
        lines += [f"  team: {source.team}", f"  realm: {source.realm}"]
    elif source.base_url:
        lines.append(f"  base_url: {yaml_string(source.base_url)}")
    else:
        lines += [
            "  # base_url: https://TEAM.REALM.celonis.cloud  # or team: + realm:,",
            "  #   or --base-url / $CELONIS_BASE_URL when you run",
        ]
    lines += ["  auth:", f"    type: {source.auth_type}"]
    prefix = source.key_prefix
    if source.auth_type == "oauth":
        return [
            *lines,
            f"    client_id_env: {prefix}_CLIENT_ID  # the NAMES of the variables, never the values",
            f"    client_secret_env: {prefix}_CLIENT_SECRET",
        ]
    return [*lines, f"    key_env: {prefix}_API_KEY  # the NAME of the variable, never the key"]


def _address(name: str | None, celonis_id: str, unique: bool, by_name: bool) -> list[str]:
    """How the manifest names a pool or job in Celonis: `celonis_name:` (--by-name, when the
    name picks one), else `id:` (with the name as text beside it)."""
    if by_name and name and unique:
        return [f"celonis_name: {yaml_string(name)}"]
    shown = [f"name: {yaml_string(name)}"] if name else []
    why = ["# no single Celonis name picks it: kept by id"] if by_name else []
    return [*why, *shown, f"id: {celonis_id}"]


def _unique(names: Sequence[str | None]) -> set[str]:
    """The names that occur exactly once."""
    counts = Counter(n for n in names if n)
    return {n for n, count in counts.items() if count == 1}


def _pools(named: Sequence[NamedPool], by_name: bool = False) -> list[str]:
    lines = ["pools:"]
    unique = _unique([entry.pool.name for entry in named])
    for entry in named:
        if not entry.jobs:
            continue
        pool = entry.pool
        lines += [
            f"  # {comment_text(pool.name)}: {_count(len(entry.jobs), 'data job')}",
            f"  {entry.key}:",
        ]
        address = _address(pool.name, pool.id, pool.name in unique, by_name)
        lines += [f"    {line}" for line in address]
        lines.append("    # max_parallel: 2  # at most this many of its jobs at once")
    left_out = [entry for entry in named if not entry.jobs]
    if left_out:
        lines.append("  # Left out (no data job to run):")
        for entry in left_out:
            why = entry.pool.unreadable or "no data jobs"
            lines.append(f"  #   {comment_text(entry.pool.name)} ({entry.pool.id}): {why}")
    return [*lines, ""]


def _jobs(named: Sequence[NamedPool], by_name: bool = False) -> list[str]:
    lines = [
        "jobs:",
        "  # No dependencies were added: Celonis does not say which job needs which. Give a job",
        "  # `depends_on: [other_job, ...]` to start it only after those succeeded;",
        "  # `celonis-runner plan` then shows the order.",
    ]
    for entry in named:
        if not entry.jobs:
            continue
        lines += ["", f"  # ---- {comment_text(entry.pool.name)} ({entry.key}) ----"]
        unique = _unique([job.job.name for job in entry.jobs])
        for job in entry.jobs:
            lines += [f"  {job.key}:", f"    pool: {entry.key}"]
            if by_name and job.job.name in unique:
                lines.append(f"    celonis_name: {yaml_string(job.job.name or '')}")
                continue
            lines.append(f"    id: {job.job.id}")
            if job.job.name:
                lines.append(f"    description: {yaml_string(job.job.name)}")
    return lines


def render(source: Source, named: Sequence[NamedPool]) -> str:
    """The manifest's text. `named` must hold at least one job (a manifest needs one)."""
    if not any(entry.jobs for entry in named):
        raise ValueError("a manifest needs at least one data job")
    pools, jobs = _pools(named, source.by_name), _jobs(named, source.by_name)
    lines = [*_header(source, named), *_connection(source), *pools, *jobs]
    return "\n".join(lines) + "\n"


_EXAMPLE = """\
# yaml-language-server: $schema={schema_ref}
#
# A starter manifest from `celonis-runner init --example`. Replace the ids with
# your own: they are in each data job's URL, .../integration/ui/pools/<POOL ID>/
# data-configuration/data-jobs?jobId=<JOB ID> (or paste that URL as `url:`).
# `celonis-runner init` (with $CELONIS_API_KEY and --base-url) writes this file
# from your team instead. Check it with `celonis-runner validate`.
version: 1

connection:
  team: acme            # REPLACE: https://{{team}}.{{realm}}.celonis.cloud
  realm: eu-1           # REPLACE
  auth:
    type: api_key       # api_key (Bearer), app_key (AppKey) or oauth (client credentials)
    key_env: CELONIS_API_KEY  # the NAME of the variable that holds the key, never the key

defaults:               # settings for every job; a job's own value wins
  mode: DELTA           # FULL extracts every table, DELTA only what changed
  timeout: 2h           # cancel a job that runs longer
  poll_interval: 10s    # how often its status is read at first

pools:
  sap:                  # your name for the pool: jobs refer to it
    name: SAP ECC       # free text: the pool's name in Celonis
    id: 3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11   # REPLACE: the pool id
    max_parallel: 2     # at most 2 of its jobs at once (optional)

jobs:
  extract_sap:          # your name for the job: depends_on, --select and reports use it
    pool: sap
    id: 8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33   # REPLACE: the job id
    mode: FULL
    expected_duration: 20m   # optional: only for the plan's critical path
  transform_o2c:
    pool: sap
    id: 5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55   # REPLACE
    depends_on: [extract_sap]   # starts only after extract_sap succeeded
    allow_failure: false        # true: its failure does not fail the run
"""


def example_manifest(schema_ref: str = "jobs.schema.json") -> str:
    """A commented starter manifest that validates (its ids are examples to replace)."""
    return _EXAMPLE.format(schema_ref=schema_ref)
