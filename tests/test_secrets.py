"""No key, secret or token appears anywhere: stdout, stderr, logs, report, state file, emulator journal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runner.clock import ScaledClock
from runner.emulator import Emulator, Scenario
from tests.conftest import CliResult
from tests.e2e import Pipeline

Cli = Callable[..., CliResult]

API_KEY = "apikey-Zq8ZfV2mJ7pWc4Lr9TnX"
APP_KEY = "appkey-Hk3Dq9Lm2Vb8Xw5Rt7Ys"
CLIENT_ID = "client-Ny6Pq1Ws4Ez7Ud0Tg"
CLIENT_SECRET = "secret-Bv5Cx8Zl3Mk6Jh9Gf2Ds"
STATUS_READS = "/integration/api/pools/*/logs/status"
EXECUTE = "/integration/api/v2/data-pools/*/data-jobs/*/execute"


def pipeline(tmp_path: Path, auth: str) -> Pipeline:
    p = Pipeline(tmp_path).pool("sap")
    p.job("extract", "sap", behaviour={"duration": "3m"})
    p.job(
        "broken", "sap", behaviour={"outcome": "FAIL", "message": "source system refused the login"}
    )
    p.job("after", "sap", "broken")
    p.settings["token_lifetime"] = "2m"
    p.settings["faults"] = [
        {
            "method": "GET",
            "path": STATUS_READS,
            "action": "status",
            "status": 503,
            "skip": 4,
            "times": 2,
        },
        {"method": "POST", "path": EXECUTE, "action": "drop_after", "times": 1},
    ]
    if auth == "oauth":  # a token can be refreshed after a 401; a refused static key cannot
        p.settings["faults"].insert(
            0,
            {
                "method": "GET",
                "path": STATUS_READS,
                "action": "status",
                "status": 401,
                "skip": 2,
                "times": 1,
            },
        )
    manifest, _ = p.write()
    block = {
        "api_key": "    type: api_key\n",
        "app_key": "    type: app_key\n    key_env: CELONIS_APP_KEY\n",
        "oauth": "    type: oauth\n",
    }[auth]
    manifest.write_text(
        manifest.read_text().replace(
            "version: 1\n", f"version: 1\nconnection:\n  auth:\n{block}", 1
        )
    )
    return p


def everything_written(tmp_path: Path, *results: CliResult) -> str:
    texts = [r.out + r.err for r in results]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".xml", ".md", ".txt"):
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


@pytest.mark.parametrize("auth", ["api_key", "app_key", "oauth"])
def test_no_secret_anywhere(cli: Cli, tmp_path: Path, auth: str) -> None:
    p = pipeline(tmp_path, auth)
    manifest = p.folder / "jobs.yaml"
    scenario = Scenario.from_dict(yaml.safe_load((p.folder / "scenario.yaml").read_text()))
    env = {
        "CELONIS_API_KEY": API_KEY,
        "CELONIS_APP_KEY": APP_KEY,
        "CELONIS_CLIENT_ID": CLIENT_ID,
        "CELONIS_CLIENT_SECRET": CLIENT_SECRET,
        "CELONIS_RUNNER_TIME_SCALE": "3000",
        "CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"),
    }
    journal = tmp_path / "journal.jsonl"
    with Emulator(
        scenario,
        clock=ScaledClock(3000),
        api_keys=[API_KEY],
        app_keys=[APP_KEY],
        oauth_clients={CLIENT_ID: CLIENT_SECRET},
        journal_path=journal,
    ) as emu:
        common = ("--base-url", emu.base_url, "-v", "--log-format", "json")
        run = cli(
            "run", str(manifest), *common, "--report", str(tmp_path / "report.json"), environ=env
        )
        resumed = cli("run", str(manifest), *common, "--resume", environ=env)
        wrong = cli(
            "run",
            str(manifest),
            *common,
            environ={
                **env,
                "CELONIS_API_KEY": API_KEY + "x",
                "CELONIS_APP_KEY": APP_KEY + "x",
                "CELONIS_CLIENT_SECRET": CLIENT_SECRET + "x",
            },
        )
        validate = cli("validate", str(manifest), environ=env)
        plan = cli("plan", str(manifest), environ=env)
        tokens = emu.issued_tokens()
    assert run.code == 1, run.err  # "broken" failed; the faults were survived
    assert "source system refused the login" in run.out
    assert wrong.code == 3 and "401" in wrong.err
    assert validate.code == 0 and plan.code == 0
    assert '"level": "debug"' in run.err  # the highest verbosity was on
    if auth == "oauth":
        assert tokens
    written = everything_written(tmp_path, run, resumed, wrong, validate, plan)
    for secret in [API_KEY, APP_KEY, CLIENT_SECRET, *tokens]:
        assert secret not in written, f"a secret ({secret[:6]}...) leaked"
    assert "Authorization" not in written.replace('"auth": ', "")


def test_celonis_error_echoing_the_key_is_scrubbed_in_every_output(
    cli: Cli, tmp_path: Path
) -> None:
    """Only stderr was redacted: a reason from Celonis holding the key reached stdout, the report,
    JUnit and the GitHub outputs. One redactor now scrubs the run's texts before any output (and
    before the step summary cuts long reasons)."""
    p = Pipeline(tmp_path).pool("sap")
    message = "x" * 190 + f" key {API_KEY} refused\n::error::injected"
    p.job("broken", "sap", behaviour={"outcome": "FAIL", "message": message, "duration": "1m"})
    manifest, scenario = p.write()
    step_summary = tmp_path / "summary.md"
    result = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--report",
        str(tmp_path / "report.json"),
        "--junit-xml",
        str(tmp_path / "junit.xml"),
        "--github",
        environ={"CELONIS_API_KEY": API_KEY, "GITHUB_STEP_SUMMARY": str(step_summary)},
    )
    assert result.code == 1, result.err
    assert "refused" in result.out and "***" in result.out
    # the state file (runs/) is scrubbed by StateStore's own redactor (runner/execution/statefile.py)
    outputs = [tmp_path / name for name in ("report.json", "junit.xml", "summary.md")]
    written = "\n".join([result.out, result.err, *(path.read_text() for path in outputs)])
    assert API_KEY not in written and API_KEY[:12] not in written
    assert all(path.read_text().count("***") for path in outputs)
    assert not [line for line in result.out.splitlines() if line.lstrip().startswith("::")]


def test_secrets_stay_out_of_the_subset_keys_and_the_task_results(cli: Cli, tmp_path: Path) -> None:
    """Issue 12: a task name in the manifest taken from a credential's variable, and a
    Celonis ERROR line that echoes the key, never show it: not in the problems `run` and
    `plan --check-remote` print, not in the report, state file, JUnit or step summary."""
    p = Pipeline(tmp_path).pool("sap")
    task_list = [
        {"name": "SAP orders", "type": "extraction", "tables": ["VBAK"], "duration": "1m"},
        {
            "name": "Create O2C",
            "type": "transformation",
            "duration": "1m",
            "outcome": "FAIL",
            "message": f"login with key {API_KEY} refused",
        },
    ]
    p.job("refresh", "sap", behaviour={"tasks": task_list})
    del p.behaviour["refresh"]["duration"]
    p.job("leaky", "sap", transformations=["${CELONIS_API_KEY}"], extractions="none")
    manifest, scenario_path = p.write()
    scenario = Scenario.from_dict(yaml.safe_load(scenario_path.read_text()))
    env = {
        "CELONIS_API_KEY": API_KEY,
        "CELONIS_RUNNER_TIME_SCALE": "3000",
        "CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_ACTIONS": "true",
    }
    with Emulator(scenario, clock=ScaledClock(3000), api_keys=[API_KEY]) as emu:
        common = ("--base-url", emu.base_url, "-v", "--log-format", "json")
        refused = cli("run", str(manifest), *common, environ=env)
        check = cli("plan", str(manifest), "--check-remote", *common[:2], environ=env)
        failed = cli(
            "run",
            str(manifest),
            *common,
            "--select",
            "refresh",
            "--report",
            str(tmp_path / "report.json"),
            "--junit-xml",
            str(tmp_path / "junit.xml"),
            environ=env,
        )
    assert refused.code == 2 and "jobs.leaky.transformations[0]" in refused.err, refused.err
    assert check.code == 2 and "jobs.leaky.transformations[0]" in check.err, check.err
    assert failed.code == 1, failed.err
    assert "login with key" in (tmp_path / "report.json").read_text()
    written = everything_written(tmp_path, refused, check, failed)
    assert API_KEY not in written


# -- issue 25: keys as CI sets them (whitespace around, quotes, backslashes) ----------------------

ODD_KEY = 'apikey-"Zq8\\ZfV2 mJ7pWc4'
"""A key with a quote, a backslash and a space: valid in a header, escaped by JSON."""


def _forms(secret: str) -> list[str]:
    stripped = secret.strip()
    return [stripped, json.dumps(stripped)[1:-1], stripped.replace("\\", "\\\\")]


def _every_output(cli: Cli, tmp_path: Path, env: dict[str, str], common: tuple[str, ...]) -> str:
    """`run` with every output on, then `report` in every format and `logs` in both: all of
    it, files included."""
    manifest = tmp_path / "jobs.yaml"
    outputs = {"--report": "report.json", "--junit-xml": "junit.xml", "--html": "run.html"}
    run = cli(
        "run",
        str(manifest),
        *common,
        *(arg for option, name in outputs.items() for arg in (option, str(tmp_path / name))),
        "--github",
        environ={**env, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")},
    )
    assert run.code == 1, run.err
    results = [run]
    for fmt in ("text", "json", "gantt", "html"):
        results.append(cli("report", "latest", "--format", fmt, environ=env))
        assert results[-1].code == 0, results[-1].err
    for fmt in ("text", "json"):
        results.append(cli("logs", "broken", str(manifest), "--format", fmt, *common, environ=env))
        assert results[-1].code == 0, results[-1].err
    assert "refused" in results[-1].out  # the log line itself is shown
    return everything_written(tmp_path, *results) + "".join(
        p.read_text() for p in tmp_path.rglob("*.html")
    )


@pytest.mark.parametrize("auth", ["api_key", "oauth"])
def test_a_key_with_whitespace_quotes_and_backslashes_is_redacted_as_sent(
    cli: Cli, tmp_path: Path, auth: str
) -> None:
    """Issue 25 (1, 2): the credential code strips the environment's value before sending it;
    the redactor kept the raw value, so a key set with a trailing newline (or an OAuth secret
    with spaces around it) echoed by Celonis showed everywhere. And `logs --format json`
    scrubbed its rendered text, where a key with `"` or `\\` is escaped."""
    sent = ODD_KEY
    p = Pipeline(tmp_path).pool("sap")
    echoed = f"login with {sent} refused; body {json.dumps({'key': sent})}"
    p.job("broken", "sap", behaviour={"outcome": "FAIL", "message": echoed, "duration": "1m"})
    manifest, scenario_path = p.write()
    if auth == "oauth":
        manifest.write_text(
            manifest.read_text().replace(
                "version: 1\n", "version: 1\nconnection:\n  auth:\n    type: oauth\n", 1
            )
        )
    scenario = Scenario.from_dict(yaml.safe_load(scenario_path.read_text()))
    env = {
        "CELONIS_API_KEY": f"  {sent}\n",
        "CELONIS_CLIENT_ID": CLIENT_ID,
        "CELONIS_CLIENT_SECRET": f" {sent} \n",
        "CELONIS_RUNNER_TIME_SCALE": "3000",
    }
    with Emulator(
        scenario, clock=ScaledClock(3000), api_keys=[sent], oauth_clients={CLIENT_ID: sent}
    ) as emu:
        written = _every_output(cli, tmp_path, env, ("--base-url", emu.base_url))
    assert "login with *** refused" in written
    for form in _forms(sent):
        assert form not in written, f"the key leaked as {form!r}"
    assert "Zq8" not in written, [written[max(0, i - 80) : i + 40] for i in _at(written, "Zq8")]


def _at(text: str, part: str) -> list[int]:
    return [i for i in range(len(text)) if text.startswith(part, i)][:5]
