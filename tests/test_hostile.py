"""Hostile and broken input: never a traceback, always exit 2 with a message that names the place."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import time
import unicodedata
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from runner.cli import main
from runner.durations import MAX_SECONDS
from runner.emulator import ScenarioError, load_scenario
from runner.errors import ManifestError, UsageError
from runner.execution.statefile import load_saved
from runner.manifest.loader import load_manifest
from tests.conftest import CliResult
from tests.e2e import Pipeline, emulator_for

ROOT = Path(__file__).parent.parent
EXAMPLE = (ROOT / "jobs.yaml").read_text()
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(\d+:\d+:)? ")
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def validate(path: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", str(path), *extra], environ={}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def check_clean_failure(path: Path, code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        lines = out.splitlines()
        assert re.fullmatch(r"\d+ problems?( and \d+ warnings?)?", lines[-1]), out
        for line in lines[:-1]:
            assert line.startswith(str(path)), line


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


@FAST
@given(content=st.binary(max_size=400))
def test_random_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "jobs.yaml"
    path.write_bytes(content)
    check_clean_failure(path, *validate(path))


@FAST
@given(data=yaml_values)
def test_random_yaml_documents(tmp_path_factory: pytest.TempPathFactory, data: object) -> None:
    path = tmp_path_factory.mktemp("yaml") / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out, err = validate(path)
    check_clean_failure(path, code, out, err)
    assert code == 2


@FAST
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(EXAMPLE) - 1),
            st.sampled_from(["delete", "insert", "duplicate-line", "tab"]),
            st.text(alphabet=" :-[]{}&*!|>'\"#\t\nabc0123xyz_$", min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_manifest(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, str, str]]
) -> None:
    text = EXAMPLE
    for position, action, insert in edits:
        position %= max(len(text), 1)
        if action == "delete":
            text = text[:position] + text[position + len(insert) :]
        elif action == "insert":
            text = text[:position] + insert + text[position:]
        elif action == "tab":
            text = text[:position] + "\t" + text[position:]
        else:
            start = text.rfind("\n", 0, position) + 1
            end = text.find("\n", position) + 1 or len(text)
            text = text[:end] + text[start:end] + text[end:]
    path = tmp_path_factory.mktemp("mutated") / "jobs.yaml"
    path.write_text(text)
    check_clean_failure(path, *validate(path))
    _, out, err = validate(path, "--format", "json")
    assert "Traceback" not in err
    for problem in json.loads(out):
        assert set(problem) == {"file", "line", "column", "path", "message", "severity"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 9)}]\n"
                for i in range(12)
            ),
            "alias bomb",
        ),
        ("version: &v\n  self: *v\n", "an alias refers to a node that contains it"),
        ("version: 1\njobs:\n\tx: 1\n", "YAML syntax error"),
        ("version: 1\nname: " + "x" * 200_000 + "\n", "unknown key 'name'"),
        # libyaml's own depth limit (newer wheels) or ours (PyYAML 6.0's) refuses it first
        (
            "version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n",
            ("YAML syntax error", "nested deeper than 64"),
        ),
        ("version: 1\nx: " + "{a: " * 80 + "1" + "}" * 80 + "\n", "nested deeper than"),
    ],
    ids=["billion-laughs", "self-reference", "tab-indent", "long-string", "deep-flow", "deep-maps"],
)
def test_known_hostile_documents(
    tmp_path: Path, content: str, expected: str | tuple[str, ...]
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(content)
    started = time.perf_counter()
    code, out, err = validate(path)
    assert time.perf_counter() - started < 10
    wanted = (expected,) if isinstance(expected, str) else expected
    assert code == 2 and any(e in out for e in wanted) and "Traceback" not in out + err


def test_size_limit_option(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(EXAMPLE)
    code, out, _ = validate(path, "--max-size", "100")
    assert code == 2 and "over the limit of 100 bytes (raise it with --max-size" in out
    assert validate(path)[0] == 0


@FAST
@given(data=yaml_values)
def test_random_scenarios_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, data: object
) -> None:
    path = tmp_path_factory.mktemp("scenario") / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert str(path) in str(exc) or any(p.file == str(path) for p in exc.problems)


@FAST
@given(content=st.binary(max_size=300))
def test_random_scenario_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("scenario") / "scenario.yaml"
    path.write_bytes(content)
    with contextlib.suppress(ScenarioError):
        load_scenario(path)


@FAST
@given(cut=st.integers(min_value=0, max_value=2000), noise=st.binary(max_size=20))
def test_truncated_or_corrupt_state_files(
    tmp_path_factory: pytest.TempPathFactory, cut: int, noise: bytes
) -> None:
    good = json.dumps(
        {
            "state_version": 1,
            "run_id": "r",
            "status": "running",
            "selection": {"select": [], "exclude": []},
            "fingerprint": {},
            "jobs": {"a": {"state": "running", "handle": {"before": {}}, "intent_at": 1.0}},
        },
        indent=2,
    ).encode()
    path = tmp_path_factory.mktemp("state") / "run.json"
    path.write_bytes(good[: cut % (len(good) + 1)] + noise)
    try:
        load_saved(path)
    except UsageError as exc:
        assert str(exc).startswith(f"cannot resume from {path}: ")


# -- durations, urls, ids and ${VAR} in every field (issue 16) ------------------------------------

POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
SECRET = "SECRETvalue42"
FIELDS = [
    ("connection", "team"),
    ("connection", "realm"),
    ("connection", "auth", "type"),
    ("connection", "auth", "key_env"),
    ("defaults", "mode"),
    ("defaults", "timeout"),
    ("defaults", "poll_interval"),
    ("defaults", "allow_failure"),
    ("pools", "sap", "id"),
    ("pools", "sap", "max_parallel"),
    ("pools", "sap", "name"),
    ("jobs", "a", "pool"),
    ("jobs", "a", "id"),
    ("jobs", "a", "mode"),
    ("jobs", "a", "timeout"),
    ("jobs", "a", "max_poll_interval"),
    ("jobs", "a", "expected_duration"),
    ("jobs", "a", "allow_failure"),
    ("jobs", "a", "description"),
    ("jobs", "a", "extractions"),
    ("jobs", "a", "transformations"),
    ("jobs", "a", "data_models"),
    ("jobs", "b", "url"),
    ("jobs", "b", "depends_on", 0),
    ("version",),
]


def manifest_with(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    data: dict[str, object] = {
        "version": 1,
        "connection": {"team": "acme", "realm": "eu-1", "auth": {"type": "api_key"}},
        "defaults": {"mode": "DELTA"},
        "pools": {"sap": {"id": POOL}},
        "jobs": {
            "a": {"pool": "sap", "id": JOB},
            "b": {
                "url": f"https://acme.eu-1.celonis.cloud/integration/ui/pools/{POOL}"
                "/data-configuration/data-jobs?jobId=5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55",
                "depends_on": ["a"],
            },
        },
    }
    node: object = data
    for part in path[:-1]:
        node = node[part]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return data


def run_validate(data: object, tmp: Path, environ: dict[str, str]) -> tuple[int, str]:
    path = tmp / "jobs.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    outputs = []
    for fmt in ("text", "json", "github"):
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["validate", str(path), "--format", fmt], environ=environ, stdout=out, stderr=err
        )
        assert "Traceback" not in out.getvalue() + err.getvalue()
        assert code in (0, 2), (code, out.getvalue(), err.getvalue())
        outputs.append(out.getvalue() + err.getvalue())
    return code, "\n".join(outputs)


durations = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.text(alphabet="0123456789.hms ", max_size=12)
    | st.from_regex(r"\A(?:\d{1,5}(?:\.\d{1,3})?(?:ms|h|m|s)){1,3}\Z")
)


@FAST
@given(
    field=st.sampled_from(["timeout", "poll_interval", "max_poll_interval", "expected_duration"]),
    value=durations,
    where=st.sampled_from([("defaults",), ("jobs", "a")]),
)
def test_random_durations_are_finite_and_in_range(
    tmp_path_factory: pytest.TempPathFactory, field: str, value: object, where: tuple[str, ...]
) -> None:
    tmp = tmp_path_factory.mktemp("duration")
    code, _ = run_validate(manifest_with((*where, field), value), tmp, {})
    if code == 0:
        manifest = load_manifest(tmp / "jobs.yaml", {}, strict_env=True)
        seconds = getattr(manifest.jobs["a"], field)
        assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS)


uuid_like = st.uuids().map(str) | st.text(alphabet="0123456789abcdefABCDEF-{}xz &=?", max_size=40)


@FAST
@given(pool=uuid_like, job=uuid_like, extra=st.sampled_from(["", "&jobId=" + JOB, "&x=1", "#f"]))
def test_random_job_urls_and_ids_give_real_ids_or_a_problem(
    tmp_path_factory: pytest.TempPathFactory, pool: str, job: str, extra: str
) -> None:
    tmp = tmp_path_factory.mktemp("ids")
    url = (
        f"https://acme.eu-1.celonis.cloud/integration/ui/pools/{pool}"
        f"/data-configuration/data-jobs?jobId={job}{extra}"
    )
    data = manifest_with(("jobs", "b", "url"), url)
    data["pools"] = {"sap": {"id": pool}}
    data["jobs"]["a"]["id"] = job  # type: ignore[index]
    code, out = run_validate(data, tmp, {})
    if code == 0:
        manifest = load_manifest(tmp / "jobs.yaml", {}, strict_env=True)
        for parsed in manifest.jobs.values():
            assert str(uuid.UUID(parsed.pool_id)) == parsed.pool_id
            assert str(uuid.UUID(parsed.job_id)) == parsed.job_id
    else:
        assert re.search(r"jobs\.(a|b)\.(id|url)|pools\.sap\.id", out), out


@FAST
@given(
    field=st.sampled_from(FIELDS),
    value=st.text(max_size=12),
    default=st.none() | st.text(alphabet="abcFULDET0123456789hms-", max_size=10),
    is_set=st.booleans(),
)
def test_a_variable_in_any_field_never_crashes_and_is_never_shown(
    tmp_path_factory: pytest.TempPathFactory,
    field: tuple[str | int, ...],
    value: str,
    default: str | None,
    is_set: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("var")
    reference = "${V}" if default is None else f"${{V:-{default}}}"
    environ = {"V": SECRET + value} if is_set else {}
    _, out = run_validate(manifest_with(field, reference), tmp, environ)
    assert SECRET not in out
    for strict in (True, False):  # plan/run (strict) and validate/--emulator (not strict)
        try:
            load_manifest(tmp / "jobs.yaml", environ, strict_env=strict)
        except ManifestError as exc:
            assert SECRET not in str(exc)


subset_values = (
    yaml_values
    | st.sampled_from(["all", "none", [], {}, ["${V}", "${V}"], {"${V}": ["${V}"]}])
    | st.lists(st.text(max_size=8), max_size=4)
    | st.dictionaries(
        st.text(max_size=8),
        st.sampled_from(["all", "none", [], None]) | st.lists(st.text(max_size=6), max_size=3),
        max_size=3,
    )
)


@FAST
@given(
    extractions=st.none() | subset_values,
    transformations=st.none() | subset_values,
    data_models=st.none() | subset_values,
)
def test_random_subset_keys_give_a_model_or_a_placed_problem(
    tmp_path_factory: pytest.TempPathFactory,
    extractions: object,
    transformations: object,
    data_models: object,
) -> None:
    """Issue 12: whatever the subset keys hold, validate exits 0 or 2 with problems at a place,
    never shows a value from the environment, and a valid job's subset names something."""
    tmp = tmp_path_factory.mktemp("subset")
    data = manifest_with(("jobs", "a", "mode"), "FULL")
    job = data["jobs"]["a"]  # type: ignore[index]
    for key, value in (
        ("extractions", extractions),
        ("transformations", transformations),
        ("data_models", data_models),
    ):
        if value is not None:
            job[key] = value
    code, out = run_validate(data, tmp, {"V": SECRET})
    assert SECRET not in out
    if code == 2:
        assert re.search(r"jobs\.a", out), out
        return
    subset = load_manifest(tmp / "jobs.yaml", {"V": SECRET}, strict_env=True).jobs["a"].tasks
    assert subset is None or not subset.is_empty


@FAST
@given(option=st.text(alphabet="ab:;=,[] |_-xyzextractionsdata_modelsall", max_size=40))
def test_random_tasks_options_never_crash(
    tmp_path_factory: pytest.TempPathFactory, option: str
) -> None:
    path = tmp_path_factory.mktemp("tasks") / "jobs.yaml"
    path.write_text(yaml.safe_dump(manifest_with(("jobs", "a", "mode"), "FULL")))
    out, err = io.StringIO(), io.StringIO()
    code = main(["plan", str(path), "--tasks", option], environ={}, stdout=out, stderr=err)
    assert code in (0, 2) and "Traceback" not in out.getvalue() + err.getvalue()


# -- text from Celonis is data, never a command nor a crash (issue 25) ---------------------------

FORGED = "\n::error title=forged::annotation\r\n  ::stop-commands::x"
TERMINAL = "\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b\u202e"
OURS = re.compile(r"::(error|warning) (file=[^,:]*,)?(line=\d+,)?title=celonis-runner%3A [^:]*::")
ALLOWED_CONTROLS = {"\n", "\t"}
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
API_KEY = "apikey-Hostile7Text3Key9"


def strict_cli(tmp_path: Path, *argv: str, environ: dict[str, str] | None = None) -> CliResult:
    """The CLI with stdout and stderr encoding UTF-8 strictly, as a real console does."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    env = {"CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"), **(environ or {})}
    code = main(list(argv), environ=env, stdout=out, stderr=err)
    texts = [s.buffer.getvalue().decode("utf-8") for s in (out, err)]  # type: ignore[attr-defined]
    return CliResult(code, *texts)


def _unsafe(char: str) -> bool:
    """A control (C0, C1), a surrogate, a line separator or a bidi override: never shown raw."""
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI


def check_inert(name: str, text: str) -> None:
    """No control character, no lone surrogate, no line that GitHub would take as a workflow
    command unless it is one of the runner's own annotations."""
    bad = {c for c in text if _unsafe(c) and c not in ALLOWED_CONTROLS}
    assert not bad, f"{name}: {sorted(bad)!r}"
    for line in text.splitlines():
        if line.lstrip().startswith("::"):
            assert OURS.match(line), f"{name}: {line!r}"


def hostile_pipeline(tmp_path: Path, text: str) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap")
    tasks = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "task:load")),
            "name": f"Load{text}",
            "type": "extraction",
            "tables": ["VBAK"],
            "duration": "1m",
        },
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "task:model")),
            "name": f"Model{text}",
            "type": "transformation",
            "duration": "1m",
            "outcome": "FAIL",
            "message": f"ORA-1{text}",
        },
    ]
    p.job("tasks", "sap", behaviour={"tasks": tasks})
    del p.behaviour["tasks"]["duration"]
    p.job("whole", "sap", behaviour={"outcome": "FAIL", "message": f"refused{text}"})
    return p


def outputs_of_every_command(tmp_path: Path, p: Pipeline) -> dict[str, str]:
    """`run` with every output, `report` in every format, `logs` in both: name -> text."""
    manifest, _ = p.write()
    files = {"--report": "report.json", "--junit-xml": "junit.xml", "--html": "run.html"}
    env = {
        "CELONIS_API_KEY": API_KEY,
        "CELONIS_RUNNER_TIME_SCALE": "3000",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    outputs = [arg for option, name in files.items() for arg in (option, str(tmp_path / name))]
    with emulator_for(p, API_KEY) as emu:
        common = ("--base-url", emu.base_url)
        results = {
            "run": strict_cli(
                tmp_path, "run", str(manifest), *common, "--github", *outputs, environ=env
            )
        }
        for job in ("tasks", "whole"):
            for fmt in ("text", "json"):
                results[f"logs {job} {fmt}"] = strict_cli(
                    tmp_path, "logs", job, str(manifest), "--format", fmt, *common, environ=env
                )
    for fmt in ("text", "json", "gantt", "html"):
        results[f"report {fmt}"] = strict_cli(tmp_path, "report", "latest", "--format", fmt)
    for name, result in results.items():
        assert result.code == (1 if name == "run" else 0), (name, result.err)
    written = {name: r.out + r.err for name, r in results.items()}
    for path in (tmp_path / "runs").glob("*"):
        written[path.name] = path.read_text(encoding="utf-8")
    for name in [*files.values(), "summary.md"]:
        written[name] = (tmp_path / name).read_text(encoding="utf-8")
    return written


def test_celonis_text_forges_no_workflow_command_and_no_terminal_escape(tmp_path: Path) -> None:
    """Issue 25 (4): task names and ERROR lines with line breaks put `::error ...` and
    `::stop-commands::` at the start of stdout lines; ESC/BEL sequences reached stdout, the
    annotation, `report` and the step summary."""
    written = outputs_of_every_command(tmp_path, hostile_pipeline(tmp_path, FORGED + TERMINAL))
    for name, text in written.items():
        check_inert(name, text)
    assert "ORA-1" in written["run"] and "ORA-1" in written["summary.md"]


def test_a_lone_surrogate_from_celonis_crashes_no_command(tmp_path: Path) -> None:
    """Issue 25 (5): a lone surrogate in an ERROR line made `run` exit 3 (UnicodeEncodeError)
    without JUnit, HTML or summary; `report` and `logs --format json` crashed the same way."""
    written = outputs_of_every_command(tmp_path, hostile_pipeline(tmp_path, " \ud800 \udfff"))
    for name, text in written.items():
        check_inert(name, text)
    assert "refused" in written["junit.xml"] and "ORA-1" in written["summary.md"]


# -- state files with absurd times (issue 25) -----------------------------------------------------

RUN_ID = "20260101T120000Z-abc123"
T0 = 1_767_268_800.0
TIME_PATHS: list[tuple[str | int, ...]] = [
    ("started_at",),
    ("updated_at",),
    *(("jobs", "a", key) for key in ("started_at", "finished_at", "intent_at", "sent_at")),
    *(("jobs", "a", "tasks", 0, key) for key in ("started_at", "finished_at", "duration_seconds")),
]
ABSURD = [1e20, 1e300, -1e300, -62_167_219_200.0, 253_402_300_800.0, 10**30, -1]


def saved_state(manifest: Path) -> dict[str, object]:
    """A state file as `run` writes it: job a failed in its second task."""
    task = {"id": JOB, "name": "T1", "status": "FAIL", "error": "boom", "type": "EXTRACTION"}
    return {
        "state_version": 2,
        "run_id": RUN_ID,
        "status": "failed",
        "started_at": T0,
        "updated_at": T0 + 300,
        "target": "emulator",
        "manifest": {"path": str(manifest), "sha256": "0" * 64},
        "selection": {"select": [], "exclude": []},
        "fingerprint": {},
        "jobs": {
            "a": {
                "state": "failed",
                "pool_id": POOL,
                "job_id": JOB,
                "attempts": 1,
                "started_at": T0 + 10,
                "finished_at": T0 + 200,
                "intent_at": T0 + 5,
                "sent_at": T0 + 6,
                "error": "FAIL: boom",
                "handle": None,
                "tasks": [
                    {**task, "started_at": T0 + 11, "finished_at": T0 + 70, "duration_seconds": 59}
                ],
            }
        },
    }


def with_time(manifest: Path, where: tuple[str | int, ...], value: object) -> dict[str, object]:
    data = saved_state(manifest)
    node: object = data
    for part in where[:-1]:
        node = node[part]  # type: ignore[index]
    node[where[-1]] = value  # type: ignore[index]
    return data


def report_every_format(tmp: Path, data: dict[str, object]) -> list[CliResult]:
    runs = tmp / "runs"
    runs.mkdir(exist_ok=True)
    (runs / f"{RUN_ID}.json").write_text(json.dumps(data))
    return [
        strict_cli(tmp, "report", RUN_ID, "--format", fmt)
        for fmt in ("text", "json", "gantt", "html")
    ]


def check_damaged_or_shown(result: CliResult, command: str) -> None:
    assert result.code in (0, 2), (result.code, result.err)
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    if result.code == 2:
        assert "the state file is damaged" in result.err, result.err
        assert "resume" not in result.err and command in result.err, result.err


@pytest.mark.parametrize("value", ABSURD, ids=str)
@pytest.mark.parametrize("where", TIME_PATHS, ids=lambda w: ".".join(map(str, w)))
def test_absurd_times_in_a_state_file_are_damage_for_report(
    tmp_path: Path, where: tuple[str | int, ...], value: float
) -> None:
    """Issue 25 (6): times that pass the schema but no calendar (1e20, +/-1e300, year 0 or
    10000) ended `report` in OverflowError/ValueError; the message said "cannot resume"."""
    for result in report_every_format(tmp_path, with_time(tmp_path / "jobs.yaml", where, value)):
        check_damaged_or_shown(result, "report")
        assert result.code == 2


@pytest.mark.parametrize("value", [1e20, 1e300, -1e300, 253_402_300_800.0])
def test_absurd_times_in_a_state_file_are_damage_for_logs(tmp_path: Path, value: float) -> None:
    p = Pipeline(tmp_path).pool("sap").job("a", "sap")
    manifest, _ = p.write()
    runs = tmp_path / "runs"
    runs.mkdir()
    data = with_time(manifest, ("jobs", "a", "sent_at"), value)
    (runs / f"{RUN_ID}.json").write_text(json.dumps(data))
    result = strict_cli(tmp_path, "logs", "a", str(manifest), "--run", RUN_ID, "--emulator")
    assert result.code == 2, result.err
    check_damaged_or_shown(result, "logs")


times = (
    st.floats(allow_nan=False)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from(ABSURD)
)


@settings(max_examples=60, deadline=None)
@given(where=st.sampled_from(TIME_PATHS), value=times)
def test_random_times_in_a_state_file(
    tmp_path_factory: pytest.TempPathFactory, where: tuple[str | int, ...], value: float
) -> None:
    tmp = tmp_path_factory.mktemp("times")
    for result in report_every_format(tmp, with_time(tmp / "jobs.yaml", where, value)):
        check_damaged_or_shown(result, "report")


@pytest.mark.parametrize("command", ["report", "logs"])
def test_a_run_id_too_long_for_a_file_name_is_a_usage_error(tmp_path: Path, command: str) -> None:
    """Issue 25 (9): `report` with a 5,000-character run id ended in `OSError: File name too
    long` (an internal error, exit 3)."""
    manifest, _ = Pipeline(tmp_path).pool("sap").job("a", "sap").write()
    run_id = "1" * 5000
    argv = ["report", run_id] if command == "report" else ["logs", "a", str(manifest)]
    result = strict_cli(tmp_path, *argv, *(["--run", run_id] if command == "logs" else []))
    assert result.code == 2, result.err
    assert "not a run id" in result.err and "5000 characters" in result.err
    assert len(result.err) < 300


# -- hypothesis: hostile keys and texts over the shared escaping and the offline outputs ---------

hostile_text = st.text(
    st.characters(codec=None, categories=None)
    | st.sampled_from(["\n", "\r", "\x1b", "\x07", "\x9b", "\u202e", "\ud800", "\udfff", ":"]),
    max_size=30,
) | st.sampled_from([FORGED, TERMINAL, "::error::x", "  ::stop-commands::t\n::warning::y"])
keys = st.builds(
    lambda pad, key, tail: pad + key + tail,
    st.sampled_from(["", " ", "\t", "  "]),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from(" é😀"),
        min_size=8,
        max_size=20,
    ).filter(lambda k: k.strip() == k),
    st.sampled_from(["", "\n", " \n", "\r\n"]),
)


@settings(max_examples=200, deadline=None)
@given(key=keys, before=hostile_text, after=hostile_text)
def test_random_keys_are_redacted_in_every_form(key: str, before: str, after: str) -> None:
    from runner.logs import REDACTED, Redactor, secret_like_values

    redactor = Redactor(secret_like_values({"CELONIS_API_KEY": key}))
    sent = key.strip()
    for form in (sent, json.dumps(sent)[1:-1], json.dumps(sent, ensure_ascii=False)[1:-1]):
        assume(sent[:4] not in before + after)
        scrubbed = str(redactor.scrub(before + form + after))
        assert form not in scrubbed and REDACTED in scrubbed, (form, scrubbed)


@settings(max_examples=300, deadline=None)
@given(text=hostile_text)
@example(text="\ud800\udfff")  # two lone surrogates that JSON reads as one character
def test_shared_escaping_leaves_no_control_character_and_no_command(text: str) -> None:
    from runner.text import inert, inert_lines, json_safe, replaced

    for name, shown in (
        ("inert", inert(text)),
        ("inert_lines", inert_lines(text)),
        ("replaced", replaced(text)),
        ("json", json_safe(json.dumps({"t": text}, ensure_ascii=False, indent=1))),
    ):
        check_inert(name, shown)
        shown.encode("utf-8")
    assert "\n" not in inert(text)
    # JSON reads two escaped surrogates that make a pair as the one character they encode
    paired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    assert json.loads(json_safe(json.dumps(text, ensure_ascii=False))) == paired


@settings(max_examples=40, deadline=None)
@given(error=hostile_text, task=hostile_text, status=hostile_text)
def test_random_celonis_texts_in_a_saved_run(
    tmp_path_factory: pytest.TempPathFactory, error: str, task: str, status: str
) -> None:
    """`report` in every format shows whatever Celonis wrote as data: exit 0, no control
    character, no workflow command, no lone surrogate."""
    tmp = tmp_path_factory.mktemp("texts")
    data = saved_state(tmp / "jobs.yaml")
    job = data["jobs"]["a"]  # type: ignore[index]
    job["error"] = error
    job["tasks"][0].update(name=task, status=status, error=error)
    for result in report_every_format(tmp, data):
        assert result.code == 0, result.err
        check_inert("report", result.out + result.err)


def test_status_shows_a_celonis_status_as_data(tmp_path: Path) -> None:
    """Issue 25 (4): `status` printed Celonis' status word as it came."""
    from runner.commands.status import JobRow, write_table

    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(manifest_with(("version",), 1)))
    job = load_manifest(path, {}, strict_env=True).jobs["a"]
    out = io.StringIO()
    write_table([JobRow(job, "RUNNING" + FORGED + TERMINAL)], out)
    check_inert("status", out.getvalue())
