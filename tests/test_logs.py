"""Log set-up, the secret redactor and the progress line."""

from __future__ import annotations

import gc
import io
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from runner import logs
from runner.execution.executor import Executor
from runner.execution.progress import ProgressLine
from runner.execution.runstate import JobState
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from tests.conftest import CliResult
from tests.e2e import Pipeline, run_pipeline
from tests.test_state import FakeClock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def emit(
    stream: io.StringIO, log_format: str, environ: dict[str, str], secrets: tuple[str, ...] = ()
) -> str:
    logs.configure(
        log_format=log_format,
        verbosity=0,
        stream=stream,
        environ=environ,
        redactor=logs.Redactor(secrets),
    )
    structlog.get_logger("t").info("job_failed", job="a", reason="boom")
    return stream.getvalue()


def test_console_on_a_terminal_and_in_ci() -> None:
    assert logs.choose_format(None, Terminal()) == "console"
    assert logs.choose_format(None, io.StringIO()) == "console"  # CI logs are read in a browser
    assert logs.choose_format("json", Terminal()) == "json"


def test_no_color_is_honoured() -> None:
    assert "\x1b[" in emit(Terminal(), "console", {})
    plain = emit(Terminal(), "console", {"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "job_failed" in plain and "job=a" in plain


def test_json_lines_carry_the_bound_fields() -> None:
    [line] = emit(io.StringIO(), "json", {}).splitlines()
    event = json.loads(line)
    assert event["event"] == "job_failed" and event["job"] == "a" and event["level"] == "info"


def test_redactor_scrubs_every_field_and_nesting() -> None:
    redactor = logs.Redactor(["s3cr3t-value", "x"])  # too short to redact safely: ignored
    event = redactor(
        None,
        "info",
        {
            "event": "e",
            "error": "key s3cr3t-value refused",
            "nested": {"h": ["s3cr3t-value"]},
            "exc": ValueError("got s3cr3t-value"),
        },
    )
    assert "s3cr3t-value" not in json.dumps(event)
    assert event["error"] == "key *** refused" and event["exc"] == "ValueError: got ***"
    assert "x" in redactor.scrub("x")


def test_progress_line_draws_clears_and_redraws(tmp_path: Path) -> None:
    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap")
    p.job("b", "sap", "a")
    manifest, _ = p.write()
    state = Executor(build_plan(load_manifest(manifest, {})), api=None, clock=FakeClock()).state  # type: ignore[arg-type]
    terminal = Terminal()
    now = [100.0]
    progress = ProgressLine(terminal, enabled=True, monotonic=lambda: now[0])
    progress.update(state, state.jobs["a"])
    assert terminal.getvalue().endswith("0/2 done, 0 running, 2 waiting, 0 failed, 0 skipped")
    progress.stream.write("a log line\n")
    assert terminal.getvalue().endswith(
        "\r\x1b[Ka log line\n[0s] 0/2 done, 0 running, 2 waiting, 0 failed, 0 skipped"
    )
    now[0] += 95.4  # the line shows whole seconds of real elapsed time
    progress.update(state, state.jobs["a"])
    assert terminal.getvalue().endswith(
        "\r\x1b[K[1m35s] 0/2 done, 0 running, 2 waiting, 0 failed, 0 skipped"
    )
    progress.close()
    assert terminal.getvalue().endswith("\r\x1b[K")

    ci = io.StringIO()
    quiet = ProgressLine(ci, enabled=False)
    quiet.update(state, state.jobs["a"])
    quiet.close()
    assert ci.getvalue() == ""


def test_error_messages_never_show_a_credential_from_the_environment(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    # A key pasted by mistake where a URL belongs ends up in an error message: it is masked.
    key = "sk-live-9f8e7d6c5b4a3210"
    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap")
    manifest, _ = p.write()
    result = cli("run", str(manifest), "--base-url", key, environ={"CELONIS_API_KEY": key})
    assert result.code == 2
    assert key not in result.err and "***" in result.err
    assert logs.secret_like_values(
        {"MY_TOKEN": "abcdefgh", "PATH": "/usr/bin:/bin", "KEY": "short"}
    ) == ["abcdefgh"]


def _emitted_event_names() -> set[str]:
    import re

    from runner.execution.runstate import JobState

    root = Path(__file__).parent.parent / "runner"
    call = re.compile(
        r'\.(?:debug|info|warning|error|exception|critical)\(\s*"([a-z_]+(?:\.[a-z_]+)?)"'
    )
    names = {f"job_{state}" for state in JobState}  # the executor logs f"job_{job.state}"
    for path in root.rglob("*.py"):
        if "emulator" not in path.parts:
            names |= set(call.findall(path.read_text()))
    return names


def test_every_event_name_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| `")]
    names = _emitted_event_names()
    assert {"run_started", "job_failed", "api.retry"} <= names
    missing = sorted(n for n in names if not any(f"`{n}`" in row for row in table))
    assert not missing, f"events not in the README's event table: {missing}"


def console_line(
    environ: dict[str, str], stream: io.StringIO, verbosity: int = 0, **fields: object
) -> str:
    logs.configure(
        log_format="console",
        verbosity=verbosity,
        stream=stream,
        environ=environ,
        redactor=logs.Redactor(["s3cr3t-value-0123"]),
    )
    structlog.get_logger("t").warning("job_failed", **fields)
    return stream.getvalue()


def test_console_lines_are_for_people() -> None:
    import re

    reason = "FAIL: " + "x" * 150 + " s3cr3t-value-0123"
    line = console_line(
        {},
        io.StringIO(),
        job="a",
        pool="p",
        status="failed",
        elapsed=90.0,
        attempt=1,
        error=None,
        reason=reason,
    )
    assert line.endswith("\n") and line.count("\n") == 1
    assert re.match(
        r"^\d\d:\d\d:\d\d \+0s +WARN job_failed job=a pool=p elapsed=1m30s reason=", line
    )
    assert "None" not in line and "status=" not in line and "attempt" not in line
    assert len(line.rstrip("\n")) <= logs.CONSOLE_WIDTH and "…" in line and "s3cr3t" not in line
    whole = console_line({}, io.StringIO(), verbosity=1, job="a", reason=reason)
    assert "x" * 150 + " ***" in whole  # -v: nothing shortened; redacted before any cut


def test_colour_on_a_terminal_only_and_no_color_respected() -> None:
    coloured = console_line({}, Terminal(), job="a")
    assert "\x1b[31mWARN job_failed" in coloured or "\x1b[31m" in coloured
    assert "\x1b[" not in console_line({"NO_COLOR": "1"}, Terminal(), job="a")
    assert "\x1b[" not in console_line({}, io.StringIO(), job="a")


def test_default_log_format_is_console_and_json_when_asked() -> None:
    assert logs.choose_format(None, io.StringIO(), {}) == "console"
    assert logs.choose_format(None, io.StringIO(), {"CELONIS_RUNNER_LOG_FORMAT": "json"}) == "json"
    assert (
        logs.choose_format("console", io.StringIO(), {"CELONIS_RUNNER_LOG_FORMAT": "json"})
        == "console"
    )


def test_summary_table_is_coloured_on_a_terminal_only(tmp_path: Path) -> None:
    from runner.execution.runstate import JobState, run_result
    from runner.reports.report import write_summary

    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap")
    p.job("b", "sap", "a")
    manifest, _ = p.write()
    state = Executor(build_plan(load_manifest(manifest, {})), api=None, clock=FakeClock()).state  # type: ignore[arg-type]
    state.jobs["a"].state, state.jobs["a"].error = JobState.FAILED, "FAIL: boom"
    state.jobs["b"].state = JobState.SKIPPED
    state.status = "failed"
    coloured, plain = io.StringIO(), io.StringIO()
    write_summary(run_result(state), coloured, colour=True)
    write_summary(run_result(state), plain)
    assert "\x1b[31mfailed" in coloured.getvalue() and "\x1b[33mskipped" in coloured.getvalue()
    assert "\x1b[31mRun failed\x1b[0m" in coloured.getvalue()
    assert "\x1b[" not in plain.getvalue()
    assert "\x1b" not in coloured.getvalue().replace("\x1b[0m", "").replace("\x1b[31m", "").replace(
        "\x1b[33m", ""
    )


class ThreadRecordingStream(io.StringIO):
    """Records which thread wrote each piece of text."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []

    def write(self, text: str) -> int:
        self.writers.append(threading.current_thread().name)
        return super().write(text)


def test_background_writer_keeps_writes_off_the_logging_thread_and_in_order() -> None:
    target = ThreadRecordingStream()
    writer = logs.BackgroundWriter(target)
    for n in range(200):
        writer.write(f"line {n}\n")
        writer.flush()
    writer.close()  # what was pending is written before close returns
    assert target.getvalue() == "".join(f"line {n}\n" for n in range(200))
    # the thread that logs (the scheduler) never waited on a write itself
    assert threading.current_thread().name not in target.writers
    writer.write("after close\n")  # later writes go straight through
    writer.close()  # a second close does nothing
    assert target.getvalue().endswith("line 199\nafter close\n")
    assert target.writers[-1] == threading.current_thread().name


def test_progress_line_counts_changes_without_counting_every_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = Pipeline(tmp_path).pool("sap")
    for name in "abc":
        p.job(name, "sap")
    manifest, _ = p.write()
    state = Executor(build_plan(load_manifest(manifest, {})), api=None, clock=FakeClock()).state  # type: ignore[arg-type]
    terminal = Terminal()
    progress = ProgressLine(terminal, enabled=True)
    progress.update(state, state.jobs["a"])
    full_counts = []
    monkeypatch.setattr(type(state), "counts", lambda s: full_counts.append(1) or {})
    state.jobs["a"].state = JobState.RUNNING
    progress.update(state, state.jobs["a"])
    state.jobs["a"].state = JobState.SUCCEEDED
    progress.update(state, state.jobs["a"])
    state.jobs["b"].state = JobState.FAILED
    progress._drawn_at = None  # past the redraw interval
    progress.update(state, state.jobs["b"])
    progress.close()
    assert full_counts == []  # a change costs the same in a run of any size
    assert "1/3 done, 0 running, 1 waiting, 1 failed, 0 skipped" in terminal.getvalue()


def test_progress_line_in_the_background_writes_every_line_by_close() -> None:
    terminal = Terminal()
    progress = ProgressLine(terminal, enabled=True, background=True)
    progress.stream.write("a log line\n")
    progress.close()
    assert terminal.getvalue() == "a log line\n"


def test_run_keeps_the_collector_off_the_plan_while_it_runs(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[int] = []
    real_run = Executor.run

    def run(self: Executor) -> Any:
        frozen.append(gc.get_freeze_count())
        return real_run(self)

    monkeypatch.setattr(Executor, "run", run)
    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap")
    result, _, _ = run_pipeline(cli, p)
    assert result.code == 0, result.err
    assert frozen and frozen[0] > 0  # the plan and the run's data were frozen
    assert gc.get_freeze_count() == 0  # and released when the run ended
    assert '"event": "run_finished"' in result.err  # every log line was written by the end


def test_debug_enabled_says_false_only_under_the_info_level_configuration_it_made() -> None:
    def configure(verbosity: int) -> None:
        logs.configure(
            log_format="json",
            verbosity=verbosity,
            stream=io.StringIO(),
            environ={},
            redactor=logs.Redactor(),
        )

    configure(0)
    assert not logs.debug_enabled()
    configure(1)
    assert logs.debug_enabled()
    configure(0)
    # Configured again elsewhere (a host application): unsure, so debug fields are built.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    assert logs.debug_enabled()


def test_a_debug_run_still_logs_each_api_response_with_redacted_headers() -> None:
    import http.server

    import requests

    from runner.api import KeyAuth, RetryPolicy, Secret, Transport
    from tests.emulator_fixtures import FakeClock
    from tests.test_api_answers import local_server

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Set-Cookie", "session=abcdef0123")
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    for verbosity in (1, 0):
        stream = io.StringIO()
        logs.configure(
            log_format="json",
            verbosity=verbosity,
            stream=stream,
            environ={},
            redactor=logs.Redactor(),
        )
        with local_server(handle) as url:
            transport = Transport(
                url,
                KeyAuth("Bearer", Secret("k" * 40), "CELONIS_API_KEY"),
                requests.Session(),
                FakeClock(),
                retry=RetryPolicy(max_attempts=1),
            )
            assert transport.get_json("/integration/api/pools") == {}
        events = [json.loads(line) for line in stream.getvalue().splitlines()]
        responses = [e for e in events if e["event"] == "api.response"]
        if verbosity:
            assert len(responses) == 1 and responses[0]["status"] == 200
            assert responses[0]["headers"]["Set-Cookie"] == "<redacted>"
        else:
            assert responses == []


def test_a_list_field_reads_as_its_items_not_a_python_repr() -> None:
    """Issue 22 #14: `jobs=['a', 'b']` read as Python; now `jobs=a,b`."""
    from runner.logs import ConsoleLine

    line = ConsoleLine(colour=False, width=None)(
        None, "info", {"event": "plan_ready", "jobs": ["a", "b"], "names": ("x y",)}
    )
    assert " jobs=a,b" in line and "['a'" not in line, line
    assert " names='x y'" in line, line
