"""Loading and checking `jobs.yaml`: YAML, JSON Schema, then what a schema can't say.

Every problem names its file, line, column and the path to the field, and
all of them are reported at once. Only a manifest without errors becomes a
`runner.manifest.model.Manifest`.
"""

from __future__ import annotations

import graphlib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from runner.errors import ManifestError
from runner.manifest import envsubst, yamlio
from runner.manifest.durations import parse_duration
from runner.manifest.model import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MODE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    AuthConfig,
    Connection,
    Job,
    Manifest,
    Mode,
    Pool,
)
from runner.manifest.problems import Problem, did_you_mean, errors_of, sort_problems
from runner.schema import MANIFEST_SCHEMA, schema_issues
from runner.urls import is_loopback

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URL_PATH = re.compile(r"^/integration/ui/pools/([^/]+)/data-configuration/data-jobs/?$")
_DURATIONS = ("timeout", "poll_interval", "max_poll_interval", "expected_duration")
_MAX_CYCLES_REPORTED = 10

PathT = tuple[str | int, ...]


@dataclass
class CheckResult:
    """What checking one file gave: its problems (sorted) and, if it had no errors, the model."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def errors(self) -> list[Problem]:
        return errors_of(self.problems)


def check_manifest(
    path: Path,
    environ: Mapping[str, str],
    *,
    strict_env: bool,
    display: str | None = None,
    max_bytes: int = yamlio.DEFAULT_MAX_BYTES,
) -> CheckResult:
    """Check one manifest file. `strict_env`: an unset variable is an error, not a warning."""
    shown = display if display is not None else str(path)
    result = CheckResult(shown)
    try:
        text = yamlio.read_text(path, display=shown, max_bytes=max_bytes)
        doc = yamlio.parse(text, display=shown)
    except yamlio.YamlError as exc:
        result.problems = [exc.problem]
        return result
    checker = _Checker(doc, environ, strict_env)
    checker.run()
    result.problems = sort_problems(checker.problems)
    if not result.errors and checker.manifest_data is not None:
        result.manifest = _build(checker, path, text)
    return result


def load_manifest(
    path: Path,
    environ: Mapping[str, str],
    strict_env: bool = True,
    *,
    display: str | None = None,
    max_bytes: int = yamlio.DEFAULT_MAX_BYTES,
) -> Manifest:
    """The model of a valid manifest; ManifestError with every problem otherwise."""
    result = check_manifest(
        path, environ, strict_env=strict_env, display=display, max_bytes=max_bytes
    )
    if result.manifest is None:
        raise ManifestError(result.errors or result.problems)
    return result.manifest


def parse_job_url(url: str) -> tuple[str, str] | None:
    """(pool id, job id) from a data job page URL, or None."""
    parts = urlsplit(url.strip())
    match = _URL_PATH.match(parts.path)
    job_ids = parse_qs(parts.query).get("jobId", [])
    if parts.scheme not in ("http", "https") or not match or len(job_ids) != 1:
        return None
    pool_id, job_id = match.group(1), job_ids[0]
    if not (_UUID.match(pool_id) and _UUID.match(job_id)):
        return None
    return pool_id.lower(), job_id.lower()


class _Checker:
    def __init__(self, doc: yamlio.Document, environ: Mapping[str, str], strict_env: bool) -> None:
        self.doc = doc
        self.environ = environ
        self.strict_env = strict_env
        self.problems: list[Problem] = list(doc.problems)
        self.unresolved: set[PathT] = set()
        self.manifest_data: dict[str, Any] | None = None
        self.job_ids: dict[str, tuple[str, str]] = {}

    def add(self, path: PathT, message: str, *, key: bool = False, severity: str = "error") -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity=severity))

    def run(self) -> None:
        data = self.doc.data
        if self.doc.root is None:
            self.add((), "the file is empty; a manifest needs 'version: 1', 'pools' and 'jobs'")
            return
        if self.doc.problems and data is None:
            return
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
            self.add(
                (), f"the manifest must be a mapping with 'version', 'pools' and 'jobs', not {kind}"
            )
            return
        data = envsubst.substitute(data, self.environ, self._missing_var, self._malformed_var)
        self._schema(data)
        self._connection(data.get("connection"))
        self._settings(data.get("defaults"), ("defaults",))
        pools = data.get("pools") if isinstance(data.get("pools"), dict) else {}
        jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
        self._pools(pools)
        self._jobs(jobs, pools)
        self._graph(jobs)
        self.manifest_data = data

    # -- environment variables -------------------------------------------------

    def _missing_var(self, path: PathT, name: str) -> None:
        self.unresolved.add(path)
        if self.strict_env:
            self.add(
                path,
                f"environment variable {name} is not set (set it, or write ${{{name}:-default}})",
            )
        else:
            self.add(
                path,
                f"environment variable {name} is not set; the value is not checked "
                "(a run needs it)",
                severity="warning",
            )

    def _malformed_var(self, path: PathT, text: str) -> None:
        self.unresolved.add(path)
        self.add(path, "malformed '${': write ${NAME}, ${NAME:-default}, or $${ for a literal '${'")

    # -- JSON Schema -----------------------------------------------------------

    def _schema(self, data: dict[str, Any]) -> None:
        for issue in schema_issues(data, MANIFEST_SCHEMA):
            if not any(issue.path[: len(u)] == u for u in self.unresolved):
                self.add(issue.path, issue.message, key=issue.key)

    # -- what the schema can't say ---------------------------------------------

    def _connection(self, conn: Any) -> None:
        if not isinstance(conn, dict):
            return
        base = ("connection",)
        has_url = isinstance(conn.get("base_url"), str)
        if has_url and ("team" in conn or "realm" in conn):
            self.add(base, "give either base_url, or team and realm, not both")
        elif ("team" in conn) != ("realm" in conn):
            missing = "realm" if "team" in conn else "team"
            self.add(base, f"'team' and 'realm' go together: add '{missing}', or use base_url")
        if has_url and (*base, "base_url") not in self.unresolved:
            parts = urlsplit(conn["base_url"])
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.add((*base, "base_url"), f"not a URL: {conn['base_url']!r}")
            elif parts.scheme == "http" and not is_loopback(parts.hostname):
                self.add(
                    (*base, "base_url"),
                    "must use https:// (http:// only for 127.0.0.1, ::1 or localhost)",
                )
        auth = conn.get("auth")
        if isinstance(auth, dict) and auth.get("type") in ("api_key", "app_key"):
            for key in ("client_id_env", "client_secret_env", "scope"):
                if key in auth:
                    self.add(
                        (*base, "auth", key), f"'{key}' is only used with type: oauth", key=True
                    )
        if isinstance(auth, dict) and auth.get("type") == "oauth" and "key_env" in auth:
            self.add((*base, "auth", "key_env"), "'key_env' is not used with type: oauth", key=True)

    def _settings(self, settings: Any, path: PathT) -> None:
        if not isinstance(settings, dict):
            return
        for key in _DURATIONS:
            value = settings.get(key)
            if value is None or (*path, key) in self.unresolved:
                continue
            try:
                seconds = parse_duration(value)
            except ValueError:
                continue  # the schema already said so
            if seconds <= 0 and key != "expected_duration":
                self.add((*path, key), f"must be more than 0, got {value!r}")

    def _pools(self, pools: dict[str, Any]) -> None:
        seen: dict[str, str] = {}
        for name, pool in pools.items():
            if not isinstance(pool, dict) or not isinstance(pool.get("id"), str):
                continue
            if ("pools", name, "id") in self.unresolved:
                continue
            pool_id = pool["id"].lower()
            if pool_id in seen:
                self.add(
                    ("pools", name, "id"),
                    f"the same data pool as '{seen[pool_id]}'; declare a pool once",
                )
            else:
                seen[pool_id] = name

    def _jobs(self, jobs: dict[str, Any], pools: dict[str, Any]) -> None:
        declared: dict[tuple[str, str], str] = {}
        for name, job in jobs.items():
            if not isinstance(job, dict):
                continue
            self._settings(job, ("jobs", name))
            self._dependencies(name, job, jobs)
            ids = self._job_ids(name, job, pools)
            if ids is None:
                continue
            self.job_ids[name] = ids
            other = declared.setdefault(ids, name)
            if other != name:
                field_name = "url" if isinstance(job.get("url"), str) else "id"
                self.add(
                    ("jobs", name, field_name),
                    f"the same Celonis job as '{other}' (line {self.doc.position(('jobs', other))[0]}); "
                    "declare each data job once",
                )

    def _job_ids(
        self, name: str, job: dict[str, Any], pools: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(pool id, job id) of a job, from `pool` + `id` or from `url`; None if unknown."""
        pool_name = job.get("pool")
        pool_id: str | None = None
        if isinstance(pool_name, str):
            pool = pools.get(pool_name)
            if pool is None:
                self.add(
                    ("jobs", name, "pool"),
                    f"unknown pool '{pool_name}'{did_you_mean(pool_name, pools)}",
                )
            elif (
                isinstance(pool, dict)
                and isinstance(pool.get("id"), str)
                and ("pools", pool_name, "id") not in self.unresolved
            ):
                pool_id = pool["id"].lower()
        url = job.get("url")
        if isinstance(url, str) and "id" in job:
            self.add(("jobs", name), "give either 'id' (with 'pool') or 'url', not both")
            return None
        if isinstance(url, str):
            parsed = parse_job_url(url) if ("jobs", name, "url") not in self.unresolved else None
            if parsed is None:
                return None  # unresolved, or the schema's pattern reported it
            url_pool, job_id = parsed
            if pool_id is not None and url_pool != pool_id:
                self.add(
                    ("jobs", name, "pool"),
                    f"pool '{pool_name}' has id {pool_id}, but the job's url is in pool {url_pool}; "
                    "fix the pool, or the url",
                )
            if pool_name is None and not any(
                isinstance(p, dict) and str(p.get("id", "")).lower() == url_pool
                for p in pools.values()
            ):
                self.add(
                    ("jobs", name, "url"),
                    f"the url's pool {url_pool} is not declared under 'pools'; add it there",
                )
            return (pool_id or url_pool, job_id)
        if isinstance(job.get("id"), str):
            if pool_name is None:
                self.add(
                    ("jobs", name), "a job given by 'id' needs 'pool' (or give its 'url' instead)"
                )
            job_id = job["id"].lower()
            if pool_id and _UUID.match(job_id) and ("jobs", name, "id") not in self.unresolved:
                return (pool_id, job_id)
        return None

    def _dependencies(self, name: str, job: dict[str, Any], jobs: dict[str, Any]) -> None:
        deps = job.get("depends_on")
        if not isinstance(deps, list):
            return
        for i, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            if dep == name:
                self.add(("jobs", name, "depends_on", i), f"job '{name}' cannot depend on itself")
            elif dep not in jobs:
                self.add(
                    ("jobs", name, "depends_on", i), f"unknown job '{dep}'{did_you_mean(dep, jobs)}"
                )

    def _graph(self, jobs: dict[str, Any]) -> None:
        graph: dict[str, set[str]] = {}
        for name, job in jobs.items():
            deps = job.get("depends_on") if isinstance(job, dict) else None
            graph[name] = {
                d
                for d in (deps if isinstance(deps, list) else [])
                if isinstance(d, str) and d in jobs and d != name
            }
        for _ in range(_MAX_CYCLES_REPORTED):
            try:
                graphlib.TopologicalSorter(graph).prepare()
                return
            except graphlib.CycleError as exc:
                cycle = cast(list[str], exc.args[1])
                # graphlib gives [a, b, ..., a]: each one is a dependency of the next
                order = list(cycle)
                first = order[0]
                nxt = order[1]
                deps = jobs[nxt].get("depends_on", [])
                index = deps.index(first) if first in deps else 0
                self.add(
                    ("jobs", nxt, "depends_on", index),
                    f"dependency cycle: {' -> '.join(order)}; remove one of these dependencies",
                )
                graph[nxt].discard(first)


@dataclass(frozen=True)
class _Defaults:
    mode: Mode = DEFAULT_MODE
    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    expected_duration: float | None = None
    allow_failure: bool = False


def _duration(settings: Mapping[str, Any], key: str, fallback: float | None) -> float | None:
    value = settings.get(key)
    return fallback if value is None else parse_duration(value)


def _build(checker: _Checker, path: Path, text: str) -> Manifest:
    data = checker.manifest_data or {}
    raw_defaults: Mapping[str, Any] = data.get("defaults") or {}
    defaults = _Defaults(
        mode=raw_defaults.get("mode", DEFAULT_MODE),
        timeout=_duration(raw_defaults, "timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
        poll_interval=_duration(raw_defaults, "poll_interval", DEFAULT_POLL_INTERVAL)
        or DEFAULT_POLL_INTERVAL,
        max_poll_interval=_duration(raw_defaults, "max_poll_interval", DEFAULT_MAX_POLL_INTERVAL)
        or DEFAULT_MAX_POLL_INTERVAL,
        expected_duration=_duration(raw_defaults, "expected_duration", None),
        allow_failure=bool(raw_defaults.get("allow_failure", False)),
    )
    pools: dict[str, Pool] = {}
    for name, raw in data["pools"].items():
        pools[name] = Pool(
            name=name,
            pool_id=str(raw["id"]).lower(),
            max_parallel=raw.get("max_parallel"),
            line=checker.doc.position(("pools", name), key=True)[0],
        )
    by_pool_id = {p.pool_id: p.name for p in pools.values()}
    jobs: dict[str, Job] = {}
    for name, raw in data["jobs"].items():
        pool_id, job_id = checker.job_ids.get(name, ("", ""))
        pool_name = raw.get("pool") or by_pool_id.get(pool_id, pool_id)
        poll = _duration(raw, "poll_interval", defaults.poll_interval) or defaults.poll_interval
        jobs[name] = Job(
            name=name,
            pool=pool_name,
            pool_id=pool_id,
            job_id=job_id,
            mode=raw.get("mode", defaults.mode),
            depends_on=tuple(raw.get("depends_on", ())),
            allow_failure=bool(raw.get("allow_failure", defaults.allow_failure)),
            timeout=_duration(raw, "timeout", defaults.timeout) or defaults.timeout,
            poll_interval=poll,
            max_poll_interval=max(
                poll, _duration(raw, "max_poll_interval", defaults.max_poll_interval) or poll
            ),
            expected_duration=_duration(raw, "expected_duration", defaults.expected_duration),
            line=checker.doc.position(("jobs", name), key=True)[0],
        )
    raw_conn: Mapping[str, Any] = data.get("connection") or {}
    raw_auth: Mapping[str, Any] = raw_conn.get("auth") or {}
    auth = AuthConfig(**{k: v for k, v in raw_auth.items() if k in AuthConfig.__dataclass_fields__})
    connection = Connection(
        team=raw_conn.get("team"),
        realm=raw_conn.get("realm"),
        base_url=raw_conn.get("base_url"),
        auth=auth,
    )
    return Manifest(
        path=checker.doc.file,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        version=int(data["version"]),
        connection=connection,
        pools=pools,
        jobs=jobs,
    )
