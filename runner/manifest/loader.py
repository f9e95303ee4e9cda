"""Loading and checking `jobs.yaml`: YAML, JSON Schema, then what a schema can't say.

Every problem names its file, line, column and the path to the field, and
all of them are reported at once. Only a manifest without errors becomes a
`runner.manifest.model.Manifest`.
"""

from __future__ import annotations

import graphlib
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import SplitResult, parse_qs, urlsplit

from runner.durations import RANGE, DurationRangeError, parse_duration
from runner.errors import ManifestError
from runner.manifest import envsubst, yamlio
from runner.manifest.model import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MODE,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SETTLE_WINDOW,
    DEFAULT_TIMEOUT,
    Environment,
    Job,
    Manifest,
    Pool,
)
from runner.manifest.task_subset import shape_problems, subset_of
from runner.problems import (
    Problem,
    Suggestions,
    did_you_mean,
    errors_of,
    sort_problems,
)
from runner.schema import MANIFEST_SCHEMA, schema_issues
from runner.shared_types import AuthConfig, Connection, IfRunning, Mode
from runner.urls import is_loopback

_URL_PATH = re.compile(r"^/integration/ui/pools/([^/]+)/data-configuration/data-jobs/?$")
_DURATIONS = ("timeout", "poll_interval", "max_poll_interval", "settle_window", "expected_duration")
_MAX_CYCLES_REPORTED = 10
_URL_EXAMPLE = (
    "https://acme.eu-1.celonis.cloud/integration/ui/pools/<poolId>"
    "/data-configuration/data-jobs?jobId=<jobId>"
)
# Fields that are not text: a ${VAR} there would only ever be the text of a number or boolean
# (paths with '*' for any pool or job name).
_NO_VARIABLES = {
    ("version",): "the number 1",
    ("pools", "*", "max_parallel"): "a whole number",
    ("defaults", "allow_failure"): "true or false",
    ("jobs", "*", "allow_failure"): "true or false",
}
_VARIABLE_NAMES = {
    ("connection", "*", key) for key in ("key_env", "client_id_env", "client_secret_env")
}

PathT = tuple[str | int, ...]
_BASE_URL: PathT = ("connection", "base_url")


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
    environment: str | None = None,
    text: str | None = None,
) -> CheckResult:
    """Check one manifest file. `strict_env`: an unset variable is an error, not a warning.
    `environment`: the entry of `environments:` whose connection and defaults the model takes.
    `text`: the manifest's text already read (from stdin), instead of reading `path`."""
    shown = display if display is not None else str(path)
    result = CheckResult(shown)
    try:
        if text is None:
            text = yamlio.read_text(path, display=shown, max_bytes=max_bytes)
        else:
            yamlio.check_size(text, display=shown, max_bytes=max_bytes)
        doc = yamlio.parse(text, display=shown)
    except yamlio.YamlError as exc:
        result.problems = [exc.problem]
        return result
    with yamlio.gc_paused():  # the checks copy and index the whole document: see gc_paused
        checker = _Checker(doc, environ, strict_env, environment)
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
    environment: str | None = None,
) -> Manifest:
    """The model of a valid manifest; ManifestError with every problem otherwise."""
    result = check_manifest(
        path,
        environ,
        strict_env=strict_env,
        display=display,
        max_bytes=max_bytes,
        environment=environment,
    )
    if result.manifest is None:
        raise ManifestError(result.errors or result.problems)
    return result.manifest


def parse_job_url(url: str) -> tuple[str, str] | None:
    """(pool id, job id) from a data job page URL, or None."""
    parsed = _job_url(url)
    return parsed if isinstance(parsed, tuple) else None


def canonical_uuid(text: str) -> str | None:
    """The id in lower case when `text` is a UUID written the usual way (8-4-4-4-12), else None."""
    try:
        value = str(uuid.UUID(text))
    except ValueError:
        return None
    return value if value == text.lower() else None


def _job_url(url: str) -> tuple[str, str] | str:
    """(pool id, job id) from a data job page URL, or what is wrong with it."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return f"must be a data job page URL like {_URL_EXAMPLE}"
    match = _URL_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or not match:
        return f"must be a data job page URL like {_URL_EXAMPLE}"
    job_ids = parse_qs(parts.query, keep_blank_values=True).get("jobId", [])
    if len(job_ids) != 1:
        count = "no jobId" if not job_ids else f"jobId {len(job_ids)} times"
        return f"the url has {count}; copy the address of one data job's page ({_URL_EXAMPLE})"
    pool_id, job_id = canonical_uuid(match.group(1)), canonical_uuid(job_ids[0])
    if pool_id is None:
        return "the pool id in the url (after /pools/) is not a UUID; copy the address again"
    if job_id is None:
        return "the jobId in the url is not a UUID; copy the address again"
    return pool_id, job_id


class _Checker:
    def __init__(
        self,
        doc: yamlio.Document,
        environ: Mapping[str, str],
        strict_env: bool,
        environment: str | None = None,
    ) -> None:
        self.doc = doc
        self.environment = environment
        self.environ = environ
        self.strict_env = strict_env
        self.problems: list[Problem] = list(doc.problems)
        self.unresolved: set[PathT] = set()
        """Values not checked: a variable is unset, or the value was refused before checking."""
        self.reported: set[PathT] = set()
        self.from_env: dict[PathT, list[str]] = {}
        self.manifest_data: dict[str, Any] | None = None
        self.job_ids: dict[str, tuple[str, str]] = {}

    def add(self, path: PathT, message: str, *, key: bool = False, severity: str = "error") -> None:
        self.problems.append(self.doc.problem(path, message, key=key, severity=severity))
        if severity == "error":
            self.reported.add(path)

    def checked(self, path: PathT) -> bool:
        """True when the value at `path` is there to check: resolved and not refused already."""
        return path not in self.unresolved and path not in self.reported

    def shown(self, path: PathT, value: object) -> str:
        """How a value appears in a message: never a value read from the environment."""
        if path in self.from_env:
            names = ", ".join(f"${{{n}}}" for n in dict.fromkeys(self.from_env[path]))
            return f"the value of {names} (not shown)"
        if path and str(path[-1]).endswith("_env"):
            return "a value that is not a variable name (not shown: it may be a secret)"
        if isinstance(value, dict):
            return "a mapping"
        if isinstance(value, list):
            return "a list"
        return f"{value!r:.80}"

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
        self._refuse_variables(data)
        data = envsubst.substitute(
            data, self.environ, self._missing_var, self._malformed_var, on_used=self._used_var
        )
        pools, jobs = self._shape(data, "pools"), self._shape(data, "jobs")
        self._task_keys(jobs)
        self._schema(data)
        self._connection(data.get("connection"))
        self._settings(data.get("defaults"), ("defaults",))
        self._environments(data.get("environments"))
        self._pools(pools)
        self._jobs(jobs, pools)
        self._graph(jobs)
        self.manifest_data = data

    # -- environment variables -------------------------------------------------

    def _missing_var(self, path: PathT, name: str) -> None:
        if path in self.unresolved:
            return
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
        if path in self.unresolved:
            return
        self.unresolved.add(path)
        self.add(path, "malformed '${': write ${NAME}, ${NAME:-default}, or $${ for a literal '${'")

    def _used_var(self, path: PathT, name: str) -> None:
        self.from_env.setdefault(path, []).append(name)

    def _refuse_variables(self, data: dict[str, Any]) -> None:
        """${VAR} where the runner can't take one: numbers, booleans, the names of variables."""
        for path, value in _values(data):
            if not (isinstance(value, str) and envsubst.has_reference(value)):
                continue
            last = str(path[-1])
            pattern = tuple(str(p) for p in (path if len(path) < 3 else (path[0], "*", *path[2:])))
            if pattern in _NO_VARIABLES:
                message = f"${{VAR}} is not supported in '{last}': write {_NO_VARIABLES[pattern]}"
            elif pattern in _VARIABLE_NAMES:
                message = (
                    f"give the NAME of the variable, without ${{...}}: "
                    f"{last}: {_variable_names(value)} (the runner reads its value when it runs)"
                )
            else:
                continue
            self.add(path, message)
            self.unresolved.add(path)

    # -- shape and JSON Schema -------------------------------------------------

    def _shape(self, data: dict[str, Any], section: str) -> dict[str, Any]:
        """The pools or jobs mapping; one clear error (and no follow-on errors) when not a mapping."""
        value = data.get(section)
        if value is None or isinstance(value, dict):
            return value or {}
        kind = "a list" if isinstance(value, list) else f"{value!r:.40}"
        self.add(
            (section,),
            f"'{section}' must be a mapping from names to {section}, not {kind}: "
            f"write each name as 'name:' under '{section}:', without a '-' before it",
        )
        self.unresolved.add((section,))
        return {}

    def _schema(self, data: dict[str, Any]) -> None:
        for issue in schema_issues(data, MANIFEST_SCHEMA, resolved=True, shown=self.shown):
            if any(issue.path[: len(u)] == u for u in self.unresolved):
                continue
            if issue.path[-2:] == _BASE_URL and self._base_url_refused(data, issue.path):
                continue  # _base_url's message is more precise (the schema's is for editors)
            self.add(issue.path, issue.message, key=issue.key)

    def _base_url_refused(self, data: dict[str, Any], path: PathT) -> bool:
        """Whether _base_url refuses the text at `path` (a connection's, top-level or an
        environment's), saying why; False leaves the schema's message to say it."""
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            return False
        before = len(self.problems)
        self._base_url(value, path)
        return len(self.problems) > before

    # -- what the schema can't say ---------------------------------------------

    def _environments(self, envs: Any) -> None:
        """Each environment's connection and defaults; the one chosen must be there."""
        known = envs if isinstance(envs, dict) else {}
        for name, env in known.items():
            if isinstance(env, dict):
                self._connection(env.get("connection"), ("environments", name, "connection"))
                self._settings(env.get("defaults"), ("environments", name, "defaults"))
        if self.environment is None or self.environment in known:
            return
        where: PathT = ("environments",) if known else ()
        listed = (
            f"; the manifest has {', '.join(sorted(known))}"
            if known
            else ("; the manifest has no 'environments:'")
        )
        self.add(
            where,
            f"no environment {self.environment!r} (chosen by --env or $CELONIS_RUNNER_ENV)"
            f"{did_you_mean(self.environment, known)}{listed}",
            key=bool(known),
        )

    def _connection(self, conn: Any, base: PathT = ("connection",)) -> None:
        if not isinstance(conn, dict):
            return
        has_url = isinstance(conn.get("base_url"), str)
        if has_url and ("team" in conn or "realm" in conn):
            self.add(base, "give either base_url, or team and realm, not both")
        elif ("team" in conn) != ("realm" in conn):
            missing = "realm" if "team" in conn else "team"
            self.add(base, f"'team' and 'realm' go together: add '{missing}', or use base_url")
        if has_url and self.checked((*base, "base_url")):
            self._base_url(conn["base_url"], (*base, "base_url"))
        self._auth(conn.get("auth"), (*base, "auth"))

    def _base_url(self, url: str, path: PathT) -> None:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            self.add(path, f"not a URL: {self.shown(path, url)}")
            return
        problem = _base_url_problem(parts, host)
        if problem is not None:
            self.add(path, problem)

    def _auth(self, auth: Any, base: PathT) -> None:
        if not isinstance(auth, dict):
            return
        if auth.get("type") in ("api_key", "app_key"):
            for key in ("client_id_env", "client_secret_env", "scope"):
                if key in auth:
                    self.add((*base, key), f"'{key}' is only used with type: oauth", key=True)
        if auth.get("type") == "oauth" and "key_env" in auth:
            self.add((*base, "key_env"), "'key_env' is not used with type: oauth", key=True)

    def _settings(self, settings: Any, path: PathT) -> None:
        if not isinstance(settings, dict):
            return
        for key in _DURATIONS:
            value = settings.get(key)
            if value is None or not self.checked((*path, key)):
                continue
            where = (*path, key)
            try:
                seconds = parse_duration(value)
            except DurationRangeError:
                self.add(where, f"must be a duration {RANGE}, got {self.shown(where, value)}")
                continue
            except ValueError:
                continue  # the schema already said so
            if seconds <= 0 and key != "expected_duration":
                self.add(where, f"must be more than 0, got {self.shown(where, value)}")

    def _pools(self, pools: dict[str, Any]) -> None:
        seen: dict[str, str] = {}
        named: dict[str, str] = {}
        for name, pool in pools.items():
            celonis_name = pool.get("celonis_name") if isinstance(pool, dict) else None
            if isinstance(celonis_name, str) and self.checked(("pools", name, "celonis_name")):
                other = named.setdefault(celonis_name, name)
                if other != name:
                    self.add(
                        ("pools", name, "celonis_name"),
                        f"the same data pool name as '{other}'; declare a pool once",
                    )
            if not isinstance(pool, dict) or not isinstance(pool.get("id"), str):
                continue
            if not self.checked(("pools", name, "id")):
                continue
            pool_id = pool["id"].lower()
            if pool_id in seen:
                self.add(
                    ("pools", name, "id"),
                    f"the same data pool as '{seen[pool_id]}'; declare a pool once",
                )
            else:
                seen[pool_id] = name

    def _task_keys(self, jobs: dict[str, Any]) -> None:
        """The task keys (`extractions`, `transformations`, `data_models`): precise messages where the schema would be vague (those
        paths are then not checked by the schema again). The schema refuses an empty job."""
        for name, job in jobs.items():
            if not isinstance(job, dict):
                continue
            for where, message in shape_problems(job):
                path = ("jobs", name, *where)
                if self.checked(path):
                    self.add(path, message)
                    # the schema would only repeat it, vaguely, on the whole key
                    self.unresolved.add(("jobs", name, where[0]))

    def _jobs(self, jobs: dict[str, Any], pools: dict[str, Any]) -> None:
        declared: dict[str, str] = {}
        named: dict[tuple[str, str], str] = {}
        known = Suggestions(jobs)
        for name, job in jobs.items():
            if not isinstance(job, dict):
                continue
            self._settings(job, ("jobs", name))
            self._dependencies(name, job, jobs, known)
            self._job_name(name, job, named)
            ids = self._job_ids(name, job, pools)
            if ids is None:
                continue
            self.job_ids[name] = ids
            other = declared.setdefault(ids[1], name)
            if other != name:
                self._same_job(name, job, other)

    def _job_name(self, name: str, job: dict[str, Any], named: dict[tuple[str, str], str]) -> None:
        """A job by `celonis_name` needs its pool; a name is declared once per pool."""
        celonis_name = job.get("celonis_name")
        path = ("jobs", name, "celonis_name")
        if not isinstance(celonis_name, str) or not self.checked(path):
            return
        pool = job.get("pool")
        if not isinstance(pool, str):
            if not isinstance(job.get("url"), str):
                self.add(("jobs", name), "a job given by 'celonis_name' needs 'pool'")
            return
        other = named.setdefault((pool, celonis_name), name)
        if other != name:
            line = self.doc.position(("jobs", other))[0]
            self.add(
                path,
                f"the same data job name in pool '{pool}' as '{other}' (line {line});"
                " declare each data job once",
            )

    def _same_job(self, name: str, job: dict[str, Any], other: str) -> None:
        field_name = "url" if isinstance(job.get("url"), str) else "id"
        line = self.doc.position(("jobs", other))[0]
        if self.job_ids[other][0] == self.job_ids[name][0]:
            message = f"the same Celonis job as '{other}' (line {line}); declare each data job once"
        else:
            message = (
                f"the same data job id as '{other}' (line {line}), which is in another pool; "
                "a data job belongs to one pool: fix the id or the pool"
            )
        self.add(("jobs", name, field_name), message)

    def _job_ids(
        self, name: str, job: dict[str, Any], pools: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(pool id, job id) of a job, from `pool` + `id` or from `url`; None if the job id is
        unknown, "" for a pool id that is not known."""
        pool_name = job.get("pool")
        pool_id = self._pool_id(name, pool_name, pools)
        url = job.get("url")
        if isinstance(url, str) and "id" in job:
            self.add(("jobs", name), "give either 'id' (with 'pool') or 'url', not both")
            return None
        if isinstance(url, str):
            return self._url_ids(name, url, pool_name, pool_id, pools)
        if isinstance(job.get("id"), str):
            if pool_name is None:
                self.add(
                    ("jobs", name), "a job given by 'id' needs 'pool' (or give its 'url' instead)"
                )
            job_id = canonical_uuid(job["id"])
            if job_id and self.checked(("jobs", name, "id")):
                return (pool_id or "", job_id)  # no pool id: reported already, still compared
        return None

    def _pool_id(self, job: str, pool_name: object, pools: dict[str, Any]) -> str | None:
        """The id of the job's `pool`; reports a pool that is not declared."""
        if not isinstance(pool_name, str) or ("pools",) in self.unresolved:
            return None
        pool = pools.get(pool_name)
        if pool is None:
            path = ("jobs", job, "pool")
            if self.checked(path):
                shown = self.shown(path, pool_name)
                self.add(path, f"unknown pool {shown}{did_you_mean(pool_name, pools)}")
            return None
        if not (isinstance(pool, dict) and isinstance(pool.get("id"), str)):
            return None
        return canonical_uuid(pool["id"]) if self.checked(("pools", pool_name, "id")) else None

    def _url_ids(
        self,
        name: str,
        url: str,
        pool_name: object,
        pool_id: str | None,
        pools: dict[str, Any],
    ) -> tuple[str, str] | None:
        path = ("jobs", name, "url")
        if not self.checked(path):
            return None
        parsed = _job_url(url)
        if isinstance(parsed, str):
            self.add(path, parsed)
            return None
        url_pool, job_id = parsed
        if pool_id is not None and url_pool != pool_id:
            self.add(
                ("jobs", name, "pool"),
                f"pool '{pool_name}' has id {pool_id}, but the job's url is in pool {url_pool}; "
                "fix the pool, or the url",
            )
        if pool_name is None and not self._pool_declared(url_pool, pools):
            self.add(path, f"the url's pool {url_pool} is not declared under 'pools'; add it there")
        return (pool_id or url_pool, job_id)

    def _pool_declared(self, pool_id: str, pools: dict[str, Any]) -> bool:
        """A pool of this id is under `pools` (or `pools` is a variable not resolved)."""
        if ("pools",) in self.unresolved:
            return True
        return any(
            isinstance(p, dict) and str(p.get("id", "")).lower() == pool_id for p in pools.values()
        )

    def _dependencies(
        self, name: str, job: dict[str, Any], jobs: dict[str, Any], known: Suggestions
    ) -> None:
        deps = job.get("depends_on")
        if not isinstance(deps, list):
            return
        for i, dep in enumerate(deps):
            path = ("jobs", name, "depends_on", i)
            if not isinstance(dep, str) or not self.checked(path):
                continue
            if dep == name:
                self.add(path, f"job '{name}' cannot depend on itself")
            elif dep not in jobs:
                self.add(path, f"unknown job {self.shown(path, dep)}{known.hint(dep)}")

    def _graph(self, jobs: dict[str, Any]) -> None:
        graph = {name: _known_dependencies(name, job, jobs) for name, job in jobs.items()}
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


def _known_dependencies(name: str, job: object, jobs: Mapping[str, Any]) -> set[str]:
    """The declared jobs `job` depends on (itself and unknown names left out)."""
    deps = job.get("depends_on") if isinstance(job, dict) else None
    listed = deps if isinstance(deps, list) else []
    return {d for d in listed if isinstance(d, str) and d in jobs and d != name}


def _values(data: Any, path: PathT = ()) -> list[tuple[PathT, Any]]:
    """Every (path, value) of the sections that hold settings, up to a job's fields."""
    found: list[tuple[PathT, Any]] = []
    if isinstance(data, dict) and len(path) < 3:
        for key, value in data.items():
            found.extend(_values(value, (*path, str(key))))
    elif path:
        found.append((path, data))
    return found


def _variable_names(text: str) -> str:
    names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)
    return names[0] if names else "NAME"


@dataclass(frozen=True)
class _Defaults:
    mode: Mode = DEFAULT_MODE
    timeout: float = DEFAULT_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    settle_window: float = DEFAULT_SETTLE_WINDOW
    expected_duration: float | None = None
    allow_failure: bool = False
    if_running: IfRunning = "wait"


class _Durations:
    """Durations for the model; a value not checked (its variable unset) counts as not given."""

    def __init__(self, checker: _Checker) -> None:
        self.unresolved = checker.unresolved

    def get(
        self, settings: Mapping[str, Any], path: PathT, key: str, fallback: float | None
    ) -> float | None:
        value = settings.get(key)
        if value is None or (*path, key) in self.unresolved:
            return fallback
        return parse_duration(value)


def _defaults(
    raw: Mapping[str, Any],
    durations: _Durations,
    path: PathT = ("defaults",),
    base: _Defaults = _Defaults(),
) -> _Defaults:
    """The defaults at `path` (`raw`), falling back to `base` (an environment's over the
    top-level ones)."""
    return _Defaults(
        mode=raw.get("mode", base.mode),
        timeout=durations.get(raw, path, "timeout", base.timeout) or base.timeout,
        poll_interval=durations.get(raw, path, "poll_interval", base.poll_interval)
        or base.poll_interval,
        max_poll_interval=durations.get(raw, path, "max_poll_interval", base.max_poll_interval)
        or base.max_poll_interval,
        settle_window=durations.get(raw, path, "settle_window", base.settle_window)
        or base.settle_window,
        expected_duration=durations.get(raw, path, "expected_duration", base.expected_duration),
        allow_failure=raw.get("allow_failure", base.allow_failure) is True,
        if_running=raw.get("if_running", base.if_running),
    )


def _job(
    checker: _Checker,
    name: str,
    raw: Mapping[str, Any],
    defaults: _Defaults,
    pool_name: str,
    pool_ids: Mapping[str, str],
) -> Job:
    durations = _Durations(checker)
    path = ("jobs", name)
    pool_id, job_id = checker.job_ids.get(name, (pool_ids.get(pool_name, ""), ""))
    poll = durations.get(raw, path, "poll_interval", defaults.poll_interval)
    poll = poll or defaults.poll_interval
    longest = durations.get(raw, path, "max_poll_interval", defaults.max_poll_interval)
    return Job(
        name=name,
        pool=pool_name,
        pool_id=pool_id,
        job_id=job_id,
        mode=raw.get("mode", defaults.mode),
        depends_on=tuple(raw.get("depends_on", ())),
        allow_failure=raw.get("allow_failure", defaults.allow_failure) is True,
        timeout=durations.get(raw, path, "timeout", defaults.timeout) or defaults.timeout,
        poll_interval=poll,
        max_poll_interval=max(poll, longest or poll),
        settle_window=durations.get(raw, path, "settle_window", defaults.settle_window)
        or defaults.settle_window,
        expected_duration=durations.get(raw, path, "expected_duration", defaults.expected_duration),
        line=checker.doc.position(path, key=True)[0],
        if_running=raw.get("if_running", defaults.if_running),
        tasks=subset_of(raw),
        celonis_name=raw.get("celonis_name"),
    )


def _build(checker: _Checker, path: Path, text: str) -> Manifest:
    data = checker.manifest_data or {}
    environments = _environments(checker, data.get("environments") or {})
    defaults, connection = _chosen(checker, data, environments)
    chosen = checker.environment
    pools = {name: _pool(checker, name, raw) for name, raw in data["pools"].items()}
    pool_ids = {p.name: p.pool_id for p in pools.values()}
    by_pool_id = {p.pool_id: p.name for p in pools.values() if p.pool_id}
    jobs: dict[str, Job] = {}
    for name, raw in data["jobs"].items():
        pool_id = checker.job_ids.get(name, ("", ""))[0]
        pool_name = raw.get("pool") or by_pool_id.get(pool_id, pool_id)
        jobs[name] = _job(checker, name, raw, defaults, pool_name, pool_ids)
    return Manifest(
        path=checker.doc.file,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        version=int(data["version"]),
        connection=connection,
        pools=pools,
        jobs=jobs,
        environments=environments,
        environment=chosen,
    )


def _chosen(
    checker: _Checker, data: Mapping[str, Any], environments: Mapping[str, Environment]
) -> tuple[_Defaults, Connection]:
    """The defaults and connection of the chosen environment (the top-level ones without)."""
    defaults = _defaults(data.get("defaults") or {}, _Durations(checker))
    chosen = checker.environment
    if chosen is None:
        return defaults, _connection(data.get("connection") or {})
    env_defaults = data["environments"][chosen].get("defaults") or {}
    env_path = ("environments", chosen, "defaults")
    defaults = _defaults(env_defaults, _Durations(checker), env_path, defaults)
    return defaults, environments[chosen].connection


def _pool(checker: _Checker, name: str, raw: Mapping[str, Any]) -> Pool:
    return Pool(
        name=name,
        pool_id=str(raw.get("id", "")).lower(),
        max_parallel=raw.get("max_parallel"),
        line=checker.doc.position(("pools", name), key=True)[0],
        celonis_name=raw.get("celonis_name"),
    )


def _environments(checker: _Checker, raw: Mapping[str, Any]) -> dict[str, Environment]:
    return {
        name: Environment(
            name=name,
            connection=_connection(env.get("connection") or {}),
            line=checker.doc.position(("environments", name), key=True)[0],
        )
        for name, env in raw.items()
    }


def _connection(raw_conn: Mapping[str, Any]) -> Connection:
    raw_auth: Mapping[str, Any] = raw_conn.get("auth") or {}
    auth = AuthConfig(**{k: v for k, v in raw_auth.items() if k in AuthConfig.__dataclass_fields__})
    return Connection(
        team=raw_conn.get("team"),
        realm=raw_conn.get("realm"),
        base_url=raw_conn.get("base_url"),
        auth=auth,
    )


def _base_url_problem(parts: SplitResult, host: str) -> str | None:
    """What is wrong with a base URL that is a URL (never echoing it: it may hold a password)."""
    if parts.scheme == "http" and not is_loopback(host):
        return "must use https:// (http:// only for 127.0.0.1, ::1 or localhost)"
    if "@" in parts.netloc:
        return (
            "must be the team's address only, like https://acme.eu-1.celonis.cloud, with no"
            " user or password (user:password@): the key comes from auth's environment variable"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        return (
            "must be the team's address only, like https://acme.eu-1.celonis.cloud: "
            "remove the path and query after the host"
        )
    return None
