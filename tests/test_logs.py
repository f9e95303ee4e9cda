"""Log set-up, the secret redactor and the progress line."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import structlog

from runner import logs
from runner.execution.executor import Executor
from runner.execution.progress import ProgressLine
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from tests.conftest import CliResult
from tests.e2e import Pipeline
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


def test_console_on_a_terminal_json_otherwise() -> None:
    assert logs.choose_format(None, Terminal()) == "console"
    assert logs.choose_format(None, io.StringIO()) == "json"
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
    progress = ProgressLine(terminal, enabled=True)
    progress.update(state, state.jobs["a"])
    assert terminal.getvalue().endswith("0/2 done, 0 running, 2 waiting, 0 failed, 0 skipped")
    progress.stream.write("a log line\n")
    assert terminal.getvalue().endswith(
        "\r\x1b[Ka log line\n[0s] 0/2 done, 0 running, 2 waiting, 0 failed, 0 skipped"
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
