"""The Celonis API emulator, over real HTTP on 127.0.0.1, with a hand-moved clock."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from emulator_fixtures import (
    JOB,
    JOB_2,
    JOB_3,
    POOL,
    POOL_2,
    UNKNOWN,
    WALL_START,
    Client,
    FakeClock,
    pool_scenario,
)

from runner.clock import ScaledClock
from runner.emulator import Emulator, Scenario, ScenarioError, load_scenario
from runner.emulator import command as emulator_command
from runner.errors import UsageError
from runner.manifest.model import Job, Manifest, Pool
from runner.shared_types import Connection

REPO = Path(__file__).resolve().parent.parent
KEY = "test-api-key-5d1c"
APP_KEY = "test-app-key-9e2f"
CLIENT_ID = "runner-ci"
CLIENT_SECRET = "s3cret-oauth-7a4b"

Serve = Callable[..., Emulator]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def serve(clock: FakeClock) -> Iterator[Serve]:
    started: list[Emulator] = []

    def make(scenario: dict[str, Any] | Scenario, **kwargs: Any) -> Emulator:
        if not isinstance(scenario, Scenario):
            scenario = Scenario.from_dict(scenario)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("api_keys", [KEY])
        emulator = Emulator(scenario, **kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def bearer(emu: Emulator, timeout: float = 5.0) -> Client:
    return Client(emu.base_url, f"Bearer {emu.api_key}", timeout)


def statuses(emu: Emulator, execution_id: str | None = None) -> list[tuple[float, str]]:
    return [
        (e["t"], e["status"])
        for e in emu.journal()
        if e["type"] == "execution"
        and e["event"] == "status"
        and execution_id in (None, e["execution_id"])
    ]


def requests_of(emu: Emulator) -> list[dict[str, Any]]:
    return [e for e in emu.journal() if e["type"] == "request"]


# -- one execution, start to end ----------------------------------------------------------


def test_status_is_null_before_the_first_run_then_queued_running_and_the_outcome(
    serve: Serve, clock: FakeClock
) -> None:
    emu = serve(pool_scenario({"id": JOB, "name": "Extract SAP", "duration": "5m"}, queued_for=2))
    api = bearer(emu)
    before = api.job()
    assert before == {
        "id": JOB,
        "name": "Extract SAP",
        "dataPoolId": POOL,
        "dataSourceId": None,
        "timeStamp": before["timeStamp"],
        "status": None,
        "currentExecutionId": None,
        "dagBasedExecutionEnabled": False,
        "latestExecutionItemId": None,
    }
    t0 = clock.now
    response = api.execute()
    assert (response.status_code, response.content) == (200, b"")
    queued = api.job()
    assert queued["status"] == "QUEUED"
    assert queued["currentExecutionId"] and queued["latestExecutionItemId"]
    clock.advance(2)
    assert api.status() == "RUNNING"
    clock.advance(297.5)
    assert api.status() == "RUNNING"
    clock.advance(5)  # noticed late: the journal still says when it happened
    assert api.status() == "SUCCESS"
    execution_id = queued["currentExecutionId"]
    assert statuses(emu, execution_id) == [
        (t0, "QUEUED"),
        (t0 + 2, "RUNNING"),
        (t0 + 300, "SUCCESS"),
    ]
    [started] = emu.executions(JOB)
    assert started | {"seq": 0} == {
        "seq": 0,
        "t": t0,
        "type": "execution",
        "event": "started",
        "pool_id": POOL,
        "job_id": JOB,
        "execution_id": execution_id,
        "mode": "DELTA",
        "by": "api",
    }


def test_each_execution_gets_new_markers_and_the_pool_status_shows_its_start(
    serve: Serve, clock: FakeClock
) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 10}, queued_for=0))
    api = bearer(emu)
    api.execute()
    first = api.job()
    clock.advance(20)
    t1 = clock.now
    api.execute(mode="FULL")
    second = api.job()
    assert second["currentExecutionId"] != first["currentExecutionId"]
    assert second["latestExecutionItemId"] != first["latestExecutionItemId"]
    statuses_ = api.get(f"/integration/api/pools/{POOL}/logs/status").json()
    assert statuses_ == [
        {
            "id": JOB,
            "jobId": JOB,
            "status": "RUNNING",
            "lastExecutionStartDate": round((WALL_START + t1) * 1000),
        }
    ]
    assert [e["mode"] for e in emu.executions()] == ["DELTA", "FULL"]


def test_fail_reason_is_reachable_through_executions_task_and_detail(
    serve: Serve, clock: FakeClock
) -> None:
    message = "Table VBAK: source system timed out"
    emu = serve(
        pool_scenario(
            {
                "id": JOB,
                "name": "Extract SAP",
                "duration": 60,
                "outcome": "FAIL",
                "message": message,
            }
        )
    )
    api = bearer(emu)
    api.execute()
    clock.advance(61)
    assert api.status() == "FAIL"
    history = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()
    assert history["numOfPages"] == 1
    [item] = history["executionItems"]
    assert item["status"] == "FAIL" and item["type"] == "JOB" and item["endDate"] is not None
    tasks = api.get(
        f"/integration/api/pools/{POOL}/logs/executions",
        params={"executionId": item["executionId"], "type": "TASK", "id": item["id"]},
    ).json()
    extraction, task = tasks
    assert extraction["name"] == "Extract SAP extraction" and extraction["status"] == "SUCCESS"
    assert task["name"] == "Extract SAP transformation"
    assert task["status"] == "FAIL"
    assert set(task) == {
        "id",
        "poolId",
        "executionId",
        "jobId",
        "taskId",
        "name",
        "status",
        "startDate",
        "endDate",
        "type",
        "mode",
        "executionOrder",
    }
    detail = api.get(
        f"/integration/api/pools/{POOL}/logs/executions/detail",
        params={"executionId": item["executionId"], "id": task["id"], "type": "TASK"},
    ).json()
    errors = [m for m in detail["logMessages"] if m["level"] == "ERROR"]
    assert [m["logMessage"] for m in errors] == [message]
    assert {m["level"] for m in detail["logMessages"]} == {"INFO", "ERROR"}
    assert detail["numOfPages"] == 1


def test_a_failure_without_a_message_names_the_task(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "name": "Load", "duration": 5, "outcome": "FAIL"}))
    api = bearer(emu)
    api.execute()
    clock.advance(5)
    execution_id = api.job()["currentExecutionId"]
    detail = api.get(
        f"/integration/api/pools/{POOL}/logs/executions/detail",
        params={"executionId": execution_id, "type": "TASK"},
    ).json()
    assert "Task 'Load transformation' failed" in [m["logMessage"] for m in detail["logMessages"]]


def test_execution_items_by_type(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 5}))
    api = bearer(emu)
    api.execute()
    execution_id = api.job()["currentExecutionId"]
    path = f"/integration/api/pools/{POOL}/logs/executions"
    both = api.get(path, params={"executionId": execution_id}).json()
    assert [i["type"] for i in both] == ["JOB", "TASK", "TASK"]
    assert api.get(path, params={"executionId": execution_id, "type": "STEP"}).json() == []
    assert api.get(path, params={"executionId": UNKNOWN, "type": "JOB"}).json() == []
    assert api.get(path, params={"executionId": execution_id, "type": "NOPE"}).status_code == 400
    assert api.get(path).status_code == 400


def test_outcomes_are_used_in_order_and_the_last_repeats(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 5, "outcomes": ["FAIL", "SUCCESS"]}))
    api = bearer(emu)
    seen = []
    for _ in range(3):
        api.execute()
        clock.advance(6)
        seen.append(api.status())
    assert seen == ["FAIL", "SUCCESS", "SUCCESS"]


def test_history_is_newest_first_and_paged(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 5, "outcomes": ["FAIL", "SUCCESS"]}))
    api = bearer(emu)
    for _ in range(2):
        api.execute()
        clock.advance(6)
    path = f"/integration/api/pools/{POOL}/logs/{JOB}/executions"
    page0 = api.get(path, params={"limit": 1, "page": 0}).json()
    page1 = api.get(path, params={"limit": 1, "page": 1}).json()
    assert (page0["numOfPages"], page1["numOfPages"]) == (2, 2)
    assert page0["executionItems"][0]["status"] == "SUCCESS"
    assert page1["executionItems"][0]["status"] == "FAIL"
    assert api.get(path, params={"limit": 0}).status_code == 400


def test_pools_and_jobs_lists(serve: Serve) -> None:
    emu = serve(
        {
            "pools": [
                {"id": POOL, "name": "SAP ECC", "jobs": [{"id": JOB, "name": "A"}]},
                {"id": POOL_2, "name": "CRM", "jobs": [{"id": JOB_2}, {"id": JOB_3}]},
            ]
        }
    )
    api = bearer(emu)
    pools = api.get("/integration/api/pools").json()
    assert [{"id": p["id"], "name": p["name"]} for p in pools] == [
        {"id": POOL, "name": "SAP ECC"},
        {"id": POOL_2, "name": "CRM"},
    ]
    jobs = api.get(f"/integration/api/pools/{POOL_2}/jobs").json()
    assert [(j["id"], j["name"], j["status"]) for j in jobs] == [
        (JOB_2, JOB_2, None),
        (JOB_3, JOB_3, None),
    ]
    assert api.get(f"/integration/api/pools/{POOL_2}/jobs/{JOB}").status_code == 404


# -- cancel --------------------------------------------------------------------------------


def test_cancel_ends_a_running_execution_as_cancel_now(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": "10m"}))
    api = bearer(emu)
    api.execute()
    clock.advance(30)
    t_cancel = clock.now
    response = api.cancel()
    assert (response.status_code, response.content) == (200, b"")
    assert api.status() == "CANCEL"
    clock.advance(3600)
    assert api.status() == "CANCEL"
    execution_id = api.job()["currentExecutionId"]
    assert statuses(emu, execution_id)[-1] == (t_cancel, "CANCEL")
    [requested] = [e for e in emu.journal() if e.get("event") == "cancel_requested"]
    assert requested["execution_id"] == execution_id and requested["t"] == t_cancel
    history = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()
    assert history["executionItems"][0]["endDate"] == round((WALL_START + t_cancel) * 1000)


def test_cancel_with_nothing_running_changes_nothing(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    api = bearer(emu)
    assert api.cancel().status_code == 200
    assert api.status() is None
    [requested] = [e for e in emu.journal() if e.get("event") == "cancel_requested"]
    assert requested["execution_id"] is None


# -- auth and errors -------------------------------------------------------------------------


def test_missing_or_bad_key_is_401(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    for authorization in (None, "Bearer wrong", f"Token {KEY}", "Bearer ", f"AppKey {KEY}"):
        response = Client(emu.base_url, authorization).get(f"/integration/api/pools/{POOL}/jobs")
        assert response.status_code == 401, authorization
        assert response.json() == {"error": "Unauthorized"}
    assert Client(emu.base_url, None).execute().status_code == 401
    assert emu.executions() == []


def test_api_cloud_answers_200_for_a_valid_key(serve: Serve) -> None:
    emu = serve(pool_scenario())
    assert bearer(emu).get("/api/cloud").status_code == 200
    assert Client(emu.base_url, "Bearer nope").get("/api/cloud").status_code == 401


def test_app_key_is_accepted(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}), app_keys=[APP_KEY])
    api = Client(emu.base_url, f"AppKey {APP_KEY}")
    assert api.status() is None
    assert [r["auth"] for r in requests_of(emu)] == ["appkey"]
    assert Client(emu.base_url, f"Bearer {APP_KEY}").get("/api/cloud").status_code == 401


def test_a_random_key_is_made_when_none_is_given(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}), api_keys=None)
    assert len(emu.api_key) >= 20
    assert bearer(emu).status() is None


def _token(emu: Emulator, **kwargs: Any) -> requests.Response:
    return requests.post(emu.base_url + "/oauth2/token", timeout=5, **kwargs)


def test_token_lifetimes_are_real_seconds_whatever_the_time_scale() -> None:
    scale = 300.0
    clock = ScaledClock(scale)
    scenario = Scenario.from_dict(pool_scenario({"id": JOB}, token_lifetime="60s"))
    with Emulator(scenario, clock=clock, oauth_clients={CLIENT_ID: CLIENT_SECRET}) as emu:
        body = _token(
            emu, auth=(CLIENT_ID, CLIENT_SECRET), data={"grant_type": "client_credentials"}
        ).json()
        assert body["expires_in"] == 60
        api = Client(emu.base_url, f"Bearer {body['access_token']}")
        # 2 real seconds pass: 600 virtual seconds, ten token lifetimes of virtual time
        clock._real_start -= 2.0
        assert api.get(f"/integration/api/pools/{POOL}/jobs/{JOB}").status_code == 200
        # 61 real seconds: the token has expired
        clock._real_start -= 59.0
        assert api.get(f"/integration/api/pools/{POOL}/jobs/{JOB}").status_code == 401


def test_oauth_token_by_basic_auth_works_until_it_expires(serve: Serve, clock: FakeClock) -> None:
    emu = serve(
        pool_scenario({"id": JOB}, token_lifetime="10m"),
        oauth_clients={CLIENT_ID: CLIENT_SECRET},
    )
    response = _token(
        emu,
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials", "scope": "integration.data-pools"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "integration.data-pools"
    api = Client(emu.base_url, f"Bearer {body['access_token']}")
    assert api.status() is None
    clock.advance(599)
    assert api.status() is None
    clock.advance(1)
    expired = api.get(f"/integration/api/pools/{POOL}/jobs/{JOB}")
    assert (expired.status_code, expired.json()) == (401, {"error": "Unauthorized"})


def test_oauth_token_by_form_and_bad_clients(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}), oauth_clients={CLIENT_ID: CLIENT_SECRET})
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID}
    good = _token(emu, data={**form, "client_secret": CLIENT_SECRET})
    assert good.status_code == 200
    assert good.json()["scope"] == "integration.data-pools"
    for bad in (
        _token(emu, data={**form, "client_secret": "wrong"}),
        _token(emu, auth=("someone", CLIENT_SECRET), data={"grant_type": "client_credentials"}),
        _token(
            emu, headers={"Authorization": "Basic !!!"}, data={"grant_type": "client_credentials"}
        ),
        _token(emu, data={"grant_type": "client_credentials"}),
    ):
        assert (bad.status_code, bad.json()) == (401, {"error": "invalid_client"})
    wrong_grant = _token(emu, auth=(CLIENT_ID, CLIENT_SECRET), data={"grant_type": "password"})
    assert wrong_grant.status_code == 400
    assert [r["auth"] for r in requests_of(emu)][:3] == ["none", "none", "basic"]


def test_forbidden_pool_is_403_and_unknown_pool_or_job_is_404(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}, forbidden_pools=[POOL_2]))
    api = bearer(emu)
    forbidden = api.get(f"/integration/api/pools/{POOL_2}/jobs")
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "title": "Access Denied.",
        "status": 403,
        "errorCode": "ADMIN_ACCESS_ERROR",
    }
    assert api.execute(pool=POOL_2).status_code == 403
    unknown_pool = api.get(f"/integration/api/pools/{UNKNOWN}/jobs/{JOB}")
    assert unknown_pool.status_code == 404
    assert unknown_pool.json() == {
        "title": f"Data pool {UNKNOWN} not found.",
        "status": 404,
        "errorCode": "NOT_FOUND",
    }
    unknown_job = api.execute(job=UNKNOWN)
    assert unknown_job.status_code == 404
    assert unknown_job.json()["errorCode"] == "NOT_FOUND"
    assert api.get("/integration/api/nothing-here").status_code == 404
    wrong_method = api.get(f"/integration/api/v2/data-pools/{POOL}/data-jobs/{JOB}/execute")
    assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")
    assert emu.executions() == []


def test_logs_status_can_be_made_unavailable(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}, logs_status_unavailable=True))
    api = bearer(emu)
    assert api.get(f"/integration/api/pools/{POOL}/logs/status").status_code == 404
    assert api.status() is None


def test_execute_needs_a_valid_mode(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    api = bearer(emu)
    base = f"/integration/api/v2/data-pools/{POOL}/data-jobs/{JOB}/execute"
    assert api.post(base).status_code == 400
    bad = api.post(base + "?mode=delta")
    assert bad.status_code == 400
    assert bad.json()["title"] == "Invalid execution mode 'delta': use FULL or DELTA."
    assert emu.executions() == []


def test_internal_execute_takes_the_sdk_body(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    api = bearer(emu)
    path = f"/integration/api/pools/{POOL}/jobs/{JOB}/execute"
    body = {
        "poolId": POOL,
        "jobId": JOB,
        "mode": "FULL",
        "executeOnlySubsetOfTransformations": False,
        "transformations": [],
        "executeOnlySubsetOfExtractions": False,
        "extractions": [],
        "loadOnlySubsetOfDataModels": False,
        "dataModels": [],
    }
    assert api.post(path, json=body).status_code == 200
    assert api.post(path, data=b"{not json").status_code == 400
    assert api.post(path, json={"mode": "SOME"}).status_code == 400
    assert [e["mode"] for e in emu.executions()] == ["FULL"]


# -- the stale status trap ------------------------------------------------------------------


def test_status_endpoints_show_the_previous_run_for_stale_status_for(
    serve: Serve, clock: FakeClock
) -> None:
    emu = serve(
        pool_scenario(
            {"id": JOB, "duration": "5m", "last_run": "SUCCESS"},
            stale_status_for="30s",
            queued_for=1,
        )
    )
    api = bearer(emu)
    before = api.job()
    status_before = api.get(f"/integration/api/pools/{POOL}/logs/status").json()
    history_before = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()
    assert before["status"] == "SUCCESS" and before["currentExecutionId"]
    assert api.execute().status_code == 200
    clock.advance(29)
    assert api.job() == before
    assert api.get(f"/integration/api/pools/{POOL}/logs/status").json() == status_before
    assert api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json() == history_before
    assert api.get(f"/integration/api/pools/{POOL}/jobs").json() == [before]
    clock.advance(1)
    after = api.job()
    assert after["status"] == "RUNNING"
    assert after["currentExecutionId"] != before["currentExecutionId"]
    assert after["latestExecutionItemId"] != before["latestExecutionItemId"]
    # the journal is never stale
    assert [s for _, s in statuses(emu)] == ["QUEUED", "RUNNING"]


# -- on_execute_while_running ----------------------------------------------------------------


def test_execute_while_running_is_rejected_by_default(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    api = bearer(emu)
    api.execute()
    second = api.execute()
    assert second.status_code == 409
    assert second.json()["errorCode"] == "JOB_ALREADY_RUNNING"
    assert len(emu.executions()) == 1


def test_execute_while_running_can_be_ignored(serve: Serve) -> None:
    emu = serve(pool_scenario({"id": JOB}, on_execute_while_running="ignore"))
    api = bearer(emu)
    api.execute()
    assert api.execute().status_code == 200
    assert len(emu.executions()) == 1


def test_execute_while_running_can_queue_behind_the_current_run(
    serve: Serve, clock: FakeClock
) -> None:
    emu = serve(
        pool_scenario({"id": JOB, "duration": 100}, on_execute_while_running="queue", queued_for=0)
    )
    api = bearer(emu)
    t0 = clock.now
    api.execute()
    clock.advance(10)
    assert api.execute(mode="FULL").status_code == 200
    assert len(emu.executions()) == 1
    clock.advance(150)  # the first ends at t0+100, the queued one starts right then
    first, second = emu.executions()
    assert (second["t"], second["mode"]) == (t0 + 100, "FULL")
    assert statuses(emu, second["execution_id"]) == [(t0 + 100, "QUEUED"), (t0 + 100, "RUNNING")]
    assert statuses(emu, first["execution_id"])[-1] == (t0 + 100, "SUCCESS")
    assert api.job()["currentExecutionId"] == second["execution_id"]
    clock.advance(50)
    assert api.status() == "SUCCESS"


# -- what exists at start ---------------------------------------------------------------------


def test_running_at_start_and_last_run(serve: Serve, clock: FakeClock) -> None:
    start = clock.now
    emu = serve(
        pool_scenario(
            {"id": JOB, "duration": "10m", "running_at_start": "3m", "last_run": "FAIL"},
            {"id": JOB_2, "last_run": "SUCCESS"},
        )
    )
    api = bearer(emu)
    running = api.job()
    assert running["status"] == "RUNNING"
    [started] = emu.executions()
    assert (started["by"], started["t"], started["job_id"]) == ("scenario", start, JOB)
    assert started["execution_id"] == running["currentExecutionId"]
    history = api.get(f"/integration/api/pools/{POOL}/logs/{JOB}/executions").json()
    assert [i["status"] for i in history["executionItems"]] == ["RUNNING", "FAIL"]
    [entry] = [
        e for e in api.get(f"/integration/api/pools/{POOL}/logs/status").json() if e["id"] == JOB
    ]
    assert entry["lastExecutionStartDate"] == round((WALL_START + start - 420) * 1000)
    assert api.status(job=JOB_2) == "SUCCESS"
    clock.advance(180)
    assert api.status() == "SUCCESS"
    assert statuses(emu) == [(start, "RUNNING"), (start + 180, "SUCCESS")]


def test_odd_status_is_shown_while_running(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 60, "odd_status": "PROCESSING"}))
    api = bearer(emu)
    api.execute()
    assert api.status() == "QUEUED"
    clock.advance(2)
    assert api.status() == "PROCESSING"
    assert api.get(f"/integration/api/pools/{POOL}/logs/status").json()[0]["status"] == (
        "PROCESSING"
    )
    assert [s for _, s in statuses(emu)] == ["QUEUED", "RUNNING"]
    clock.advance(60)
    assert api.status() == "SUCCESS"


# -- faults ------------------------------------------------------------------------------------

EXECUTE_GLOB = "/integration/api/v2/data-pools/*/data-jobs/*/execute"


def test_status_fault_answers_with_its_headers_and_the_request_takes_no_effect(
    serve: Serve,
) -> None:
    fault = {
        "method": "POST",
        "path": EXECUTE_GLOB,
        "action": "status",
        "status": 429,
        "headers": {"x-ratelimit-reset": 2, "Retry-After": "3"},
        "times": 1,
    }
    emu = serve(pool_scenario({"id": JOB}, faults=[fault]))
    api = bearer(emu)
    limited = api.execute()
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-reset"] == "2"
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["errorCode"] == "LIMIT_RATE_EXCEEDED"
    assert emu.executions() == []
    assert api.execute().status_code == 200
    assert len(emu.executions()) == 1
    assert [(r["status"], r["fault"]) for r in requests_of(emu)] == [(429, "status"), (200, None)]


def test_status_fault_with_a_text_body(serve: Serve) -> None:
    fault = {
        "path": "/integration/*",
        "action": "status",
        "status": 502,
        "body": "<html>bad</html>",
    }
    emu = serve(pool_scenario({"id": JOB}, faults=[fault]))
    response = bearer(emu).get(f"/integration/api/pools/{POOL}/jobs")
    assert (response.status_code, response.text) == (502, "<html>bad</html>")
    assert response.headers["Content-Type"] == "text/plain"


def test_delay_fault_waits_in_real_time_then_answers(serve: Serve) -> None:
    fault = {"method": "GET", "path": "/api/cloud", "action": "delay", "delay": "0.3s", "times": 2}
    emu = serve(pool_scenario(faults=[fault]))
    with pytest.raises(requests.exceptions.ReadTimeout):
        bearer(emu, timeout=0.05).get("/api/cloud")
    started = time.monotonic()
    assert bearer(emu).get("/api/cloud").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert bearer(emu).get("/api/cloud").status_code == 200
    assert time.monotonic() - started < 0.25
    assert [r["fault"] for r in requests_of(emu)][-1] is None


def test_drop_before_closes_the_connection_and_nothing_starts(serve: Serve) -> None:
    fault = {"method": "POST", "path": EXECUTE_GLOB, "action": "drop_before", "times": 1}
    emu = serve(pool_scenario({"id": JOB}, faults=[fault]))
    api = bearer(emu)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.execute()
    assert emu.executions() == []
    assert api.status() is None
    [dropped, _] = requests_of(emu)
    assert (dropped["status"], dropped["fault"]) == (None, "drop_before")


def test_drop_after_starts_the_job_then_closes_the_connection(serve: Serve) -> None:
    fault = {"method": "POST", "path": EXECUTE_GLOB, "action": "drop_after", "times": 1}
    emu = serve(pool_scenario({"id": JOB}, faults=[fault]))
    api = bearer(emu)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.execute()
    assert len(emu.executions()) == 1
    assert api.status() == "QUEUED"
    assert requests_of(emu)[0]["fault"] == "drop_after"
    assert requests_of(emu)[0]["status"] is None


def test_faults_skip_then_hit_times(serve: Serve) -> None:
    fault = {"path": "/api/cloud", "action": "status", "status": 503, "skip": 1, "times": 2}
    emu = serve(pool_scenario(faults=[fault]))
    api = bearer(emu)
    codes = [api.get("/api/cloud").status_code for _ in range(5)]
    assert codes == [200, 503, 503, 200, 200]


def test_faults_are_checked_in_order_and_filtered_by_method(serve: Serve) -> None:
    faults = [
        {"method": "POST", "path": "/api/cloud", "action": "status", "status": 500},
        {"path": "/api/*", "action": "status", "status": 504, "times": 1},
        {"path": "/api/cloud", "action": "status", "status": 502},
    ]
    emu = serve(pool_scenario(faults=faults))
    api = bearer(emu)
    assert [api.get("/api/cloud").status_code for _ in range(2)] == [504, 502]


def _probability_pattern(serve: Serve, seed: int) -> list[int]:
    fault = {
        "path": "/api/cloud",
        "action": "status",
        "status": 500,
        "probability": 0.3,
        "seed": seed,
    }
    emu = serve(pool_scenario(faults=[fault]))
    api = bearer(emu)
    return [api.get("/api/cloud").status_code for _ in range(30)]


def test_probability_faults_are_reproducible_with_a_seed(serve: Serve) -> None:
    first = _probability_pattern(serve, 7)
    assert first == _probability_pattern(serve, 7)
    assert 0 < first.count(500) < 30
    assert first != _probability_pattern(serve, 8)


# -- rate limit --------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_reset_and_counts_on_every_answer(
    serve: Serve, clock: FakeClock
) -> None:
    emu = serve(pool_scenario({"id": JOB}, rate_limit={"requests": 3, "per": "10s"}))
    api = bearer(emu)
    answers = [api.get("/api/cloud") for _ in range(3)]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    clock.advance(4)
    limited = api.get("/api/cloud")
    assert limited.status_code == 429
    assert limited.json()["errorCode"] == "LIMIT_RATE_EXCEEDED"
    assert limited.headers["x-ratelimit-reset"] == "6"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert api.execute().status_code == 429
    assert emu.executions() == []
    clock.advance(6)
    again = api.get("/api/cloud")
    assert (again.status_code, again.headers["x-ratelimit-remaining"]) == (200, "2")


# -- journal -------------------------------------------------------------------------------------


def test_the_journal_never_holds_a_key_token_or_secret(
    serve: Serve, clock: FakeClock, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.jsonl"
    emu = serve(
        pool_scenario({"id": JOB, "duration": 5}),
        app_keys=[APP_KEY],
        oauth_clients={CLIENT_ID: CLIENT_SECRET},
        journal_path=journal,
    )
    token = _token(
        emu, auth=(CLIENT_ID, CLIENT_SECRET), data={"grant_type": "client_credentials"}
    ).json()["access_token"]
    _token(
        emu,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    Client(emu.base_url, f"Bearer {token}").execute()
    Client(emu.base_url, f"AppKey {APP_KEY}").job()
    bearer(emu).get("/api/cloud", params={"access_token": token})
    clock.advance(10)
    in_memory = emu.journal()
    emu.stop()
    on_disk = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert on_disk == in_memory
    text = journal.read_text(encoding="utf-8")
    tokens = emu.issued_tokens()
    assert token in tokens and len(tokens) == 2
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (KEY, APP_KEY, CLIENT_SECRET, basic, *tokens):
        assert secret not in text
    assert [e["seq"] for e in in_memory] == list(range(1, len(in_memory) + 1))
    assert {e["auth"] for e in in_memory if e["type"] == "request"} == {
        "basic",
        "none",
        "bearer",
        "appkey",
    }


def test_journal_times_are_in_order_across_jobs(serve: Serve, clock: FakeClock) -> None:
    emu = serve(
        pool_scenario({"id": JOB, "duration": 50}, {"id": JOB_2, "duration": 20}, queued_for=5)
    )
    api = bearer(emu)
    api.execute(job=JOB)
    clock.advance(1)
    api.execute(job=JOB_2)
    clock.advance(100)
    times = [e["t"] for e in emu.journal()]
    assert times == sorted(times)


def test_stop_closes_keep_alive_connections(serve: Serve) -> None:
    emu = serve(pool_scenario())
    api = bearer(emu)
    assert api.get("/api/cloud").status_code == 200
    emu.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get("/api/cloud")
    emu.stop()  # twice is fine


def test_stop_journals_what_happened_until_then(serve: Serve, clock: FakeClock) -> None:
    emu = serve(pool_scenario({"id": JOB, "duration": 60}, queued_for=0))
    t0 = clock.now
    bearer(emu).execute()
    clock.advance(100)
    emu.stop()
    clock.advance(100)
    assert statuses(emu)[-1] == (t0 + 60, "SUCCESS")
    assert emu.journal() == emu.journal()


def test_an_emulator_bug_answers_500_and_keeps_serving(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = serve(pool_scenario({"id": JOB}))
    api = bearer(emu)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(emu._api, "routes", [(p, {"GET": broken}) for p, _ in emu._api.routes])
    response = api.get("/integration/api/pools")
    assert response.status_code == 500
    assert "RuntimeError: boom" in capsys.readouterr().err
    monkeypatch.undo()
    assert api.get("/api/cloud").status_code == 200


def test_scaled_clock_runs_a_job_in_real_milliseconds() -> None:
    scenario = Scenario.from_dict(pool_scenario({"id": JOB, "duration": "1m"}, time_scale=6000))
    with Emulator(scenario, api_keys=[KEY]) as emu:
        assert isinstance(emu.clock, ScaledClock)
        api = bearer(emu)
        api.execute()
        threading.Event().wait(0.02)  # 120 virtual seconds; nothing polls, the state is lazy
        assert api.status() == "SUCCESS"


# -- scenario validation --------------------------------------------------------------------------


def _error(data: object) -> str:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data)
    return str(caught.value)


def test_scenario_errors_name_the_field_word_for_word() -> None:
    assert _error(pool_scenario({"id": JOB, "outcome": "MAYBE"})) == (
        "scenario: pools[0].jobs[0].outcome: must be one of SUCCESS, FAIL, CANCEL, SKIPPED, "
        "got 'MAYBE'"
    )
    assert _error({"time_scal": 600}) == (
        "scenario: time_scal: unknown key 'time_scal' (did you mean 'time_scale'?)"
    )
    assert _error({"default_duration": "soon"}) == (
        "scenario: default_duration: must be a duration: a number of seconds or units like "
        "'90s', '30m', '2h', '1h30m', '500ms', got 'soon'"
    )
    assert _error({"faults": [{"path": "/api/cloud", "action": "status"}]}) == (
        "scenario: faults[0]: action 'status' needs 'status': the HTTP status to answer with"
    )


def test_scenario_errors_are_all_reported() -> None:
    message = _error(
        {
            "time_scale": 0,
            "pools": [
                {"id": "pool-a", "jobs": [{"id": JOB, "outcome": "FAIL", "outcomes": ["FAIL"]}]}
            ],
        }
    )
    lines = message.splitlines()
    assert len(lines) == 2
    assert "pools[0].id: must be a UUID" in message
    assert "time_scale:" in message


def test_scenario_semantic_errors() -> None:
    assert _error(pool_scenario({"id": JOB, "outcome": "FAIL", "outcomes": ["FAIL"]})) == (
        "scenario: pools[0].jobs[0].outcomes: give either 'outcome' or 'outcomes', not both"
    )
    assert _error(pool_scenario({"id": JOB}, {"id": JOB.upper()})) == (
        f"scenario: pools[0].jobs[1].id: job id {JOB} is already used by pools[0].jobs[0]"
    )
    assert _error({"token_lifetime": 0}) == "scenario: token_lifetime: must be more than 0, got 0"
    assert _error({"faults": [{"path": "api/*", "action": "drop_before", "delay": 1}]}) == (
        "scenario: faults[0].delay: 'delay' is only used with action: delay\n"
        "scenario: faults[0].path: must start with '/' (it is matched against the request path), "
        "got 'api/*'"
    )
    assert _error([1, 2]) == "scenario: the scenario must be a mapping of fields, not a list"
    assert issubclass(ScenarioError, UsageError)


def test_scenario_defaults() -> None:
    scenario = Scenario.from_dict(pool_scenario({"id": JOB.upper()}))
    assert scenario.time_scale == 1
    assert scenario.default_duration == 60
    assert scenario.queued_for == 1
    assert scenario.stale_status_for == 0
    assert scenario.on_execute_while_running == "reject"
    assert scenario.token_lifetime == 3600
    assert scenario.rate_limit is None
    [job] = scenario.pools[0].jobs
    assert (job.id, job.name, job.outcomes, job.duration) == (JOB, JOB, ("SUCCESS",), None)


def test_load_scenario_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"pools:\n  - id: {POOL}\n    jobs:\n      - id: {JOB}\n        duraton: 5m\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, display="s.yaml")
    assert str(caught.value) == (
        "s.yaml:5:9: pools[0].jobs[0].duraton: unknown key 'duraton' (did you mean 'duration'?)"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"- a\n- b\n", "s.yaml:1:1: the scenario must be a mapping of fields, not a list"),
        (b"", "s.yaml: the file is empty; a scenario is a mapping of fields"),
        (b"pools: [\n", "s.yaml:2:1: YAML syntax error"),
        (b"time_scale: 1\nname: \xff\n", "s.yaml:2:7: not valid UTF-8 (byte 0xff)"),
    ],
)
def test_load_scenario_refuses_bad_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, display="s.yaml")
    assert str(caught.value).startswith(expected)


def test_load_scenario_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_the_scenario_schema_is_a_valid_json_schema() -> None:
    schema = json.loads((REPO / "schema" / "scenario.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("description"), name


@pytest.mark.parametrize(
    "path", sorted((REPO / "examples" / "scenarios").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_scenarios_load(path: Path) -> None:
    load_scenario(path)


def test_the_readme_documents_every_field() -> None:
    readme = (REPO / "runner" / "emulator" / "README.md").read_text(encoding="utf-8")
    schema = json.loads((REPO / "schema" / "scenario.schema.json").read_text(encoding="utf-8"))
    fields = set(schema["properties"])
    for definition in ("job", "pool", "fault"):
        fields |= set(schema["$defs"][definition]["properties"])
    fields |= set(schema["properties"]["rate_limit"]["properties"])
    missing = [f for f in sorted(fields) if f"`{f}`" not in readme]
    assert missing == []


# -- from_manifest ----------------------------------------------------------------------------------


def _manifest() -> Manifest:
    pools = {
        "sap": Pool(name="sap", pool_id=POOL),
        "crm": Pool(name="crm", pool_id=POOL_2),
    }
    jobs = {
        "extract": Job(name="extract", pool="sap", pool_id=POOL, job_id=JOB),
        "transform": Job(name="transform", pool="sap", pool_id=POOL, job_id=JOB_2),
        "crm": Job(
            name="crm", pool="crm", pool_id=POOL_2, job_id=JOB_3.upper(), expected_duration=900.0
        ),
    }
    return Manifest("jobs.yaml", "0" * 64, 1, Connection(), pools, jobs)


def test_from_manifest_serves_its_pools_and_jobs() -> None:
    scenario = Scenario.from_manifest(_manifest())
    assert [(p.id, p.name, [j.id for j in p.jobs]) for p in scenario.pools] == [
        (POOL, "sap", [JOB, JOB_2]),
        (POOL_2, "crm", [JOB_3]),
    ]
    job = scenario.pools[0].jobs[0]
    assert (job.name, job.outcomes, scenario.duration_of(job)) == ("extract", ("SUCCESS",), 60)
    assert (
        scenario.duration_of(scenario.pools[1].jobs[0]) == 900
    )  # the manifest's expected_duration


def test_from_manifest_keeps_the_base_settings_and_jobs() -> None:
    base = Scenario.from_dict(
        {
            "default_duration": "2m",
            "queued_for": 0,
            "pools": [
                {"id": POOL, "name": "SAP ECC", "jobs": [{"id": JOB_2, "outcome": "FAIL"}]},
            ],
            "faults": [{"path": "/api/cloud", "action": "drop_before"}],
        }
    )
    scenario = Scenario.from_manifest(_manifest(), base=base)
    assert (scenario.default_duration, scenario.queued_for, scenario.faults) == (
        120,
        0,
        base.faults,
    )
    sap = scenario.pools[0]
    assert sap.name == "SAP ECC"
    by_id = {j.id: j for j in sap.jobs}
    assert by_id[JOB_2].outcomes == ("FAIL",)
    assert by_id[JOB].outcomes == ("SUCCESS",)
    assert scenario.duration_of(by_id[JOB]) == 120


# -- the CLI command ----------------------------------------------------------------------------------


def _scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        f"time_scale: 600\npools:\n  - id: {POOL}\n    name: SAP\n    jobs:\n      - id: {JOB}\n",
        encoding="utf-8",
    )
    return path


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emulator_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CELONIS_API_KEY": KEY}
    env.pop("CELONIS_APP_KEY", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner.emulator",
            "--port",
            "0",
            "--scenario",
            str(_scenario_file(tmp_path)),
            "--journal",
            str(journal),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        api = Client(match.group(1), f"Bearer {KEY}")
        assert api.execute().status_code == 200
        assert api.status() in ("QUEUED", "RUNNING", "SUCCESS")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "emulator stopped" in out
    assert KEY not in out
    kinds = [json.loads(line)["type"] for line in journal.read_text(encoding="utf-8").splitlines()]
    assert "request" in kinds and "execution" in kinds


def _run_in_thread(args: argparse.Namespace, environ: dict[str, str]) -> tuple[str, int]:
    out = io.StringIO()
    stop = threading.Event()
    result: list[int] = []

    def target() -> None:
        result.append(emulator_command.main(args, environ, out, stop=stop))

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 5
    while "listening" not in out.getvalue() and time.monotonic() < deadline and thread.is_alive():
        threading.Event().wait(0.01)
    text = out.getvalue()
    try:
        url = re.search(r"emulator listening on (\S+)", text)
        assert url, text
        assert Client(url.group(1), None).get("/api/cloud").status_code == 401
        return text, 0
    finally:
        stop.set()
        thread.join(timeout=5)
        assert result == [0]


def test_cli_makes_and_prints_a_throwaway_key_when_none_is_set(tmp_path: Path) -> None:
    text, _ = _run_in_thread(_args("--port", "0", "--scenario", str(_scenario_file(tmp_path))), {})
    key = re.search(r"emulator API key \(throwaway, made up for this run\): (\S+)", text)
    assert key and len(key.group(1)) >= 20


def test_cli_serves_a_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        "version: 1\n"
        "connection:\n  base_url: http://127.0.0.1:8080\n"
        f"pools:\n  sap:\n    name: SAP\n    id: {POOL}\n"
        f"jobs:\n  extract:\n    pool: sap\n    id: {JOB}\n",
        encoding="utf-8",
    )
    args = _args("--port", "0", "--manifest", str(manifest), "--time-scale", "600")
    scenario = emulator_command.build_scenario(args, {})
    assert scenario.time_scale == 600
    assert [j.name for j in scenario.pools[0].jobs] == ["extract"]
    text, _ = _run_in_thread(args, {"CELONIS_API_KEY": KEY})
    assert KEY not in text


def test_cli_refuses_half_an_oauth_client(tmp_path: Path) -> None:
    args = _args("--port", "0")
    with pytest.raises(UsageError, match="OAuth needs both CELONIS_CLIENT_ID and"):
        emulator_command.main(args, {"CELONIS_CLIENT_ID": "x"}, io.StringIO())


def test_cli_reports_a_port_in_use(serve: Serve) -> None:
    emu = serve(pool_scenario())
    args = _args("--port", str(emu.port))
    with pytest.raises(UsageError, match=r"cannot listen on 127\.0\.0\.1"):
        emulator_command.main(args, {}, io.StringIO())


def test_the_runner_command_of_an_emulator_on_every_address_names_loopback() -> None:
    """`--host 0.0.0.0`: the runner refuses http:// off loopback, and 0.0.0.0 is no address."""
    from types import SimpleNamespace

    from runner.emulator.command import DEFAULT_PORT, _reachable

    assert DEFAULT_PORT != 8080  # Airflow's api-server answers there
    for url, shown in (
        ("http://0.0.0.0:8491", "http://127.0.0.1:8491"),
        ("http://[::]:8491", "http://[::1]:8491"),
        ("https://10.0.0.5:8491", "https://10.0.0.5:8491"),
    ):
        assert _reachable(SimpleNamespace(base_url=url)) == shown  # type: ignore[arg-type]
