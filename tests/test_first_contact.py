"""A base URL where another server answers (Airflow's api-server on 8080, a web page) stops
`run`, `plan --check-remote` and `status` at their first request: one message naming the URL,
the status and the media type, exit 3, no state file and no resume hint (issue 22 #12)."""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runner.api.errors import NotCelonisError
from runner.api.first_contact import first_contact
from tests.conftest import CliResult
from tests.e2e import Journal, Pipeline, emulator_for, job_uuid, pool_uuid
from tests.test_api_answers import client_for, local_server

Cli = Callable[..., CliResult]
KEY = "test-key-0123456789"
BODY_MARKER = "airflow-body-7f3e"
"""In every body the fake server sends: a message must never quote a body."""


def _send(
    status: int, kind: str, body: bytes
) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def _json(status: int, body: object) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    return _send(status, "application/json", json.dumps(body).encode())


HTML = f"<!doctype html><html><title>Airflow</title><body>{BODY_MARKER}</body></html>".encode()

# What an Airflow api-server (or another web server) answers at /integration/api/pools.
NOT_CELONIS = {
    "json 200 detail": (
        _json(200, {"detail": f"Not Found {BODY_MARKER}"}),
        "HTTP 200 (application/json)",
    ),
    "json 200 status": (_json(200, {"status": BODY_MARKER}), "HTTP 200 (application/json)"),
    "json 200 list of other things": (
        _json(200, [{"name": BODY_MARKER}]),
        "HTTP 200 (application/json)",
    ),
    "html 200": (_send(200, "text/html; charset=utf-8", HTML), "HTTP 200 (text/html)"),
    "json 404": (_json(404, {"detail": f"Not Found {BODY_MARKER}"}), "HTTP 404 (application/json)"),
    "html 404": (_send(404, "text/html", HTML), "HTTP 404 (text/html)"),
    "html 401": (_send(401, "text/html", HTML), "HTTP 401 (text/html)"),
    "redirect": (_send(302, "text/html", HTML), "HTTP 302 (text/html)"),
}


@contextmanager
def airflow_like(
    handle: Callable[[http.server.BaseHTTPRequestHandler], None],
) -> Iterator[tuple[str, list[str]]]:
    """A server answering every request with `handle`; (base URL, the paths it was asked)."""
    seen: list[str] = []

    def record(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(f"{h.command} {h.path}")
        handle(h)

    with local_server(record) as url:
        yield url, seen


def _pipeline(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path)
    p.pool("sap")
    p.job("extract", "sap")
    p.job("transform", "sap", "extract")
    p.write()
    return p


def _env(p: Pipeline) -> dict[str, str]:
    return {
        "CELONIS_API_KEY": KEY,
        "CELONIS_RUNNER_TIME_SCALE": "3000",
        "CELONIS_RUNNER_STATE_DIR": str(p.folder / "runs"),
    }


def _assert_told(result: CliResult, url: str, answered: str) -> None:
    assert result.code == 3, result.err
    message = result.err.strip().splitlines()[-1]
    assert message.startswith(f"celonis-runner: error: {url} does not answer like Celonis: ")
    assert f"GET /integration/api/pools got {answered}" in message
    assert (
        "Is CELONIS_BASE_URL / --base-url / connection.base_url the team's Celonis URL" in message
    )
    everything = result.out + result.err
    assert BODY_MARKER not in everything
    assert KEY not in everything


@pytest.mark.parametrize("case", list(NOT_CELONIS))
def test_run_stops_before_anything_when_another_server_answers(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    handle, answered = NOT_CELONIS[case]
    p = _pipeline(tmp_path)
    with airflow_like(handle) as (url, seen):
        result = cli("run", str(p.folder / "jobs.yaml"), "--base-url", url, environ=_env(p))
    _assert_told(result, url, answered)
    assert seen == ["GET /integration/api/pools"]  # nothing else asked, nothing executed
    assert "--resume" not in result.out + result.err
    assert "State saved" not in result.out + result.err
    runs = p.folder / "runs"
    left = sorted(f.name for f in runs.iterdir()) if runs.exists() else []
    # only the manifest's run lock (taken before the target is opened), no state, no run id
    assert [n for n in left if not n.startswith(".lock-") or n.startswith(".lock-run-")] == []


@pytest.mark.parametrize("case", ["json 200 detail", "html 200", "json 404"])
@pytest.mark.parametrize("command", [("plan", "--check-remote"), ("status",)])
def test_check_remote_and_status_say_the_same(
    cli: Cli, tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    handle, answered = NOT_CELONIS[case]
    p = _pipeline(tmp_path)
    with airflow_like(handle) as (url, seen):
        result = cli(*command, str(p.folder / "jobs.yaml"), "--base-url", url, environ=_env(p))
    _assert_told(result, url, answered)
    assert seen == ["GET /integration/api/pools"]


def test_the_emulator_still_runs_with_one_pool_list_for_names(cli: Cli, tmp_path: Path) -> None:
    """The standalone emulator answers like Celonis; with names to look up, the first read's
    pool list is the one they are looked up in (no second request)."""
    p = _pipeline(tmp_path)
    with emulator_for(p, KEY) as emu:  # (which writes the pipeline's files again)
        manifest = p.folder / "jobs.yaml"
        text = manifest.read_text().replace(f"id: {pool_uuid('sap')}", "celonis_name: sap")
        text = text.replace(f"id: {job_uuid('extract')}", "celonis_name: extract")
        manifest.write_text(text)
        result = cli(
            "run",
            str(manifest),
            "--base-url",
            emu.base_url,
            "--log-format",
            "json",
            environ=_env(p),
        )
        journal = Journal(emu.journal())
    assert result.code == 0, result.err
    assert '"event": "names_resolved"' in result.err
    pool_lists = [r for r in journal.requests("GET") if r["path"] == "/integration/api/pools"]
    assert len(pool_lists) == 1
    assert list((p.folder / "runs").glob("*.json"))  # a run against Celonis keeps its state


def test_first_contact_reads_celonis_answers_as_celonis() -> None:
    with airflow_like(_json(200, [{"id": "p1", "name": "SAP"}, {"id": "p2"}])) as (url, _):
        pools = first_contact(client_for(url))
    assert [(p.id, p.name) for p in pools or []] == [("p1", "SAP"), ("p2", None)]
    with airflow_like(_json(200, [])) as (url, _):
        assert first_contact(client_for(url)) == []
    forbidden = {"title": "Access Denied.", "status": 403, "errorCode": "ADMIN_ACCESS_ERROR"}
    with airflow_like(_json(403, forbidden)) as (url, _):
        assert first_contact(client_for(url)) is None  # the key may not list pools: go on
    with airflow_like(_json(401, {"error": "Unauthorized"})) as (url, _):
        assert first_contact(client_for(url)) is None  # refused: met where it was before
    with (
        airflow_like(_json(405, {"detail": "Method Not Allowed"})) as (url, _),
        pytest.raises(NotCelonisError, match=r"HTTP 405 \(application/json\)"),
    ):
        first_contact(client_for(url))
