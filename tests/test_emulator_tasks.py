"""A job's tasks in the emulator: declared tasks, subset executes, task items and detail logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulator_fixtures import JOB, POOL, WALL_START, Client, FakeClock, pool_scenario

from runner.emulator import Emulator, Scenario, ScenarioError

KEY = "tasks-test-key"
BASE = f"/integration/api/pools/{POOL}"
FAILURE = "ORA-00942: table or view does not exist"


def tasks_job(**customers: Any) -> dict[str, Any]:
    return {
        "id": JOB,
        "name": "Refresh orders",
        "tasks": [
            {
                "name": "SAP orders",
                "type": "extraction",
                "tables": ["VBAK", "VBAP"],
                "duration": 20,
            },
            {"name": "SAP customers", "type": "extraction", "tables": ["KNA1"], "duration": 30}
            | customers,
            {"name": "Create O2C", "type": "transformation", "duration": 40},
            {"name": "Old SQL", "type": "transformation", "duration": 5, "disabled": True},
            {"name": "O2C", "type": "data_model_load", "tables": ["VBAK"], "duration": 50},
        ],
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu_for(clock: FakeClock) -> Iterator[Any]:
    started: list[Emulator] = []

    def make(job: dict[str, Any]) -> Emulator:
        scenario = Scenario.from_dict(pool_scenario(job, queued_for="1s"))
        emulator = Emulator(scenario, clock=clock, api_keys=[KEY])
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def api(emu: Emulator) -> Client:
    return Client(emu.base_url, f"Bearer {KEY}")


def tasks_by_name(client: Client) -> dict[str, dict[str, Any]]:
    answer = client.get(f"{BASE}/jobs/{JOB}/tasks/")
    assert answer.status_code == 200
    return {task["name"]: task for task in answer.json()}


def body(**subset: Any) -> dict[str, Any]:
    return {
        "poolId": POOL,
        "jobId": JOB,
        "mode": "DELTA",
        "executeOnlySubsetOfTransformations": False,
        "transformations": [],
        "executeOnlySubsetOfExtractions": False,
        "extractions": [],
        "loadOnlySubsetOfDataModels": False,
        "dataModels": [],
        **subset,
    }


def task_items(client: Client) -> list[dict[str, Any]]:
    execution_id = client.job()["currentExecutionId"]
    answer = client.get(
        f"{BASE}/logs/executions", params={"executionId": execution_id, "type": "TASK", "id": JOB}
    )
    assert answer.status_code == 200
    items: list[dict[str, Any]] = answer.json()
    return items


def ms(t: float) -> int:
    return round((WALL_START + t) * 1000)


def test_a_subset_execute_runs_only_the_chosen_tasks_each_for_its_own_time(
    emu_for: Any, clock: FakeClock
) -> None:
    emu = emu_for(tasks_job())
    client = api(emu)
    tasks = tasks_by_name(client)
    orders, transform = tasks["SAP orders"]["id"], tasks["Create O2C"]["id"]
    extraction = {"extractionId": orders, "loadOnlySubsetOfTables": True, "tables": ["VBAK"]}
    subset = body(
        executeOnlySubsetOfExtractions=True,
        extractions=[extraction],
        executeOnlySubsetOfTransformations=True,
        transformations=[transform],
    )
    t0 = clock.now
    assert client.post(f"{BASE}/jobs/{JOB}/execute", json=subset).status_code == 200
    # data model loads were not limited: the enabled load runs too; the disabled task never
    clock.advance(1 + 20 + 40 + 49)
    items = task_items(client)
    assert [(i["name"], i["status"]) for i in items] == [
        ("SAP orders", "SUCCESS"),
        ("Create O2C", "SUCCESS"),
        ("O2C", "RUNNING"),
    ]
    assert [(i["startDate"], i["endDate"]) for i in items[:2]] == [
        (ms(t0 + 1), ms(t0 + 21)),
        (ms(t0 + 21), ms(t0 + 61)),
    ]
    assert client.status() == "RUNNING"
    clock.advance(1)
    assert client.status() == "SUCCESS"
    [started] = emu.executions(JOB)
    assert started["subset"] == {
        "extractions": [{"id": orders, "tables": ["VBAK"]}],
        "transformations": [transform],
        "tasks": [orders, transform, tasks["O2C"]["id"]],
    }


def test_a_job_failing_in_its_second_extraction_skips_the_later_tasks(
    emu_for: Any, clock: FakeClock
) -> None:
    emu = emu_for(tasks_job(outcome="FAIL", message=FAILURE))
    client = api(emu)
    t0 = clock.now
    assert client.execute().status_code == 200  # the public endpoint: the whole job
    clock.advance(1 + 20 + 29)
    assert client.status() == "RUNNING"
    clock.advance(1)
    assert client.status() == "FAIL"
    items = task_items(client)
    assert [(i["name"], i["status"]) for i in items] == [
        ("SAP orders", "SUCCESS"),
        ("SAP customers", "FAIL"),
        ("Create O2C", "SKIPPED"),
        ("O2C", "SKIPPED"),
    ]
    assert items[1]["endDate"] == ms(t0 + 51)
    assert [i["startDate"] for i in items[2:]] == [None, None]
    detail = client.get(
        f"{BASE}/logs/executions/detail",
        params={"executionId": items[1]["executionId"], "id": items[1]["taskId"], "type": "TASK"},
    ).json()
    assert detail["logMessages"][0] == detail["logMessages"][0] | {
        "level": "ERROR",
        "logMessage": FAILURE,
    }
    assert len(detail["logMessages"]) == 3  # ERROR, then started and finished in order
    skipped = client.get(
        f"{BASE}/logs/executions/detail",
        params={"executionId": items[1]["executionId"], "id": items[2]["id"], "type": "TASK"},
    ).json()
    assert [m["logMessage"] for m in skipped["logMessages"]] == ["Task 'Create O2C' skipped"]


def test_a_subset_naming_what_the_job_does_not_have_is_refused(
    emu_for: Any, clock: FakeClock
) -> None:
    emu = emu_for(tasks_job())
    client = api(emu)
    tasks = tasks_by_name(client)
    wrong = [
        body(executeOnlySubsetOfTransformations=True, transformations=[JOB]),
        body(executeOnlySubsetOfExtractions=True, extractions=[{"extractionId": "nope"}]),
        body(
            executeOnlySubsetOfExtractions=True,
            extractions=[
                {
                    "extractionId": tasks["SAP orders"]["id"],
                    "loadOnlySubsetOfTables": True,
                    "tables": ["KNA1"],
                }
            ],
        ),
        body(executeOnlySubsetOfTransformations=True, transformations="all"),
    ]
    for payload in wrong:
        answer = client.post(f"{BASE}/jobs/{JOB}/execute", json=payload)
        assert answer.status_code == 400, payload
        assert answer.json()["errorCode"] == "BAD_REQUEST"
    assert emu.executions(JOB) == []


def test_a_cancel_ends_the_running_task_and_skips_the_rest(emu_for: Any, clock: FakeClock) -> None:
    emu = emu_for(tasks_job())
    client = api(emu)
    client.execute()
    clock.advance(30)
    client.cancel()
    assert [(i["name"], i["status"]) for i in task_items(client)] == [
        ("SAP orders", "SUCCESS"),
        ("SAP customers", "CANCEL"),
        ("Create O2C", "SKIPPED"),
        ("O2C", "SKIPPED"),
    ]
    assert client.status() == "CANCEL"


def test_jobs_without_tasks_get_an_extraction_and_a_transformation(
    emu_for: Any, clock: FakeClock
) -> None:
    emu = emu_for({"id": JOB, "name": "Load", "duration": 61, "outcome": "FAIL"})
    client = api(emu)
    tasks = client.get(f"{BASE}/jobs/{JOB}/tasks").json()
    assert [(t["taskType"], t["name"], t["executionOrder"]) for t in tasks] == [
        ("EXTRACTION", "Load extraction", 0),
        ("TRANSFORMATION", "Load transformation", 1),
    ]
    expanded = client.get(f"{BASE}/jobs/{JOB}/extractions/{tasks[0]['id']}/expanded").json()
    assert [t["tableName"] for t in expanded["tables"]] == ["DATA"]
    assert client.get(f"{BASE}/jobs/{JOB}/extractions/{tasks[1]['id']}/expanded").status_code == 404
    assert client.get(f"{BASE}/jobs/{JOB}/loads").json() == []
    client.execute()
    clock.advance(61)
    assert [(i["status"], i["endDate"]) for i in task_items(client)] == [
        ("SUCCESS", ms(clock.now - 30)),
        ("FAIL", ms(clock.now)),
    ]


@pytest.mark.parametrize(
    ("task", "job", "message"),
    [
        ({"tables": ["X"]}, {}, "a transformation has no tables"),
        ({}, {"duration": "5m"}, "'duration' goes on each task"),
        ({"outcome": "FAIL", "outcomes": ["FAIL"]}, {}, "either 'outcome' or 'outcomes'"),
    ],
)
def test_task_declarations_are_checked(
    task: dict[str, Any], job: dict[str, Any], message: str
) -> None:
    declared = {"id": JOB, **job, "tasks": [{"name": "T", "type": "transformation", **task}]}
    with pytest.raises(ScenarioError) as raised:
        Scenario.from_dict(pool_scenario(declared))
    assert message in str(raised.value)


def test_two_tasks_cannot_share_a_name_of_a_kind_or_an_id() -> None:
    tasks = [
        {"name": "T", "type": "transformation", "id": JOB},
        {"name": "T", "type": "transformation"},
        {"name": "E", "type": "extraction", "id": JOB.upper()},
    ]
    with pytest.raises(ScenarioError) as raised:
        Scenario.from_dict(pool_scenario({"id": POOL, "tasks": tasks}))
    text = str(raised.value)
    assert "the job already has a transformation named 'T'" in text
    assert f"task id {JOB} is already used" in text
