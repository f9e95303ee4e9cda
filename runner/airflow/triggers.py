"""The deferred wait: a task's `Wait` handed to its pool's shared poller in the triggerer.

The event is `{"outcome": Outcome, "message": str | None, "wait": Wait}`; the
operator's `execute_complete` turns it into success or a failure. The trigger
never executes a job. Every trigger of a pool in one triggerer process shares
one `PoolPoller` (`runner.airflow.poller`): one `logs/status` read per round
for all of them, on request threads of its own, never on the event loop.

When a user acts on the deferred task, `on_kill` reads the task's state and
decides by `watch.after_kill`: marked failed cancels our run in Celonis; marked
success leaves it alone; cleared leaves it to the newer try, which adopts it.
A run someone else started is never cancelled. A triggerer restart or a
trigger moved to another triggerer cancels nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from runner.airflow.credentials import ApiSettings, Endpoint, make_client, make_clock
from runner.airflow.hooks import alookup_connection, endpoint_for
from runner.airflow.poller import Pollers, pollers
from runner.airflow.watch import AfterKill, Outcome, Wait, after_kill
from runner.api import CelonisClient
from runner.errors import RunnerError

_LEFT_ALONE = {
    AfterKill.MARKED_SUCCESS: "the task was marked success: job %s of pool %s is left running in Celonis (not cancelled)",
    AfterKill.NEWER_TRY: "the task was cleared: job %s of pool %s is left running in Celonis for the newer try, which waits for it",
    AfterKill.UNKNOWN: "the task was stopped but its state could not be read: job %s of pool %s is left running in Celonis; cancel it there if it must stop",
}


STATE_SETTLE = 15.0
"""Seconds on_kill waits for the task's state to show the user's action: under load a mark
failed showed as "deferred" for more than 3 s, was taken for a clear, and the job was not
cancelled. (A cleared task's state can read "deferred" again once its newer try defers: then
the decision, to leave the job alone, comes at the end of the wait and may be logged in the
newer try's log.)"""
STATE_POLL = 0.5

_KILLS: set[asyncio.Task[None]] = set()
"""on_kill work under way (a reference, so that a shielded task is not collected)."""


class CelonisJobTrigger(BaseTrigger):
    """Waits for one Celonis job (`wait`, a `Wait.to_dict()`); `settings` name the credentials."""

    def __init__(self, wait: dict[str, Any], settings: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.wait = wait
        self.settings = settings

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "runner.airflow.triggers.CelonisJobTrigger",
            {"wait": self.wait, "settings": self.settings},
        )

    async def _connect(self, shared: Pollers) -> tuple[Endpoint, CelonisClient]:
        settings = ApiSettings.from_dict(self.settings)
        connection = await alookup_connection(settings.conn_id)
        endpoint = endpoint_for(settings, connection, os.environ)
        client = shared.client(
            endpoint, lambda: make_client(endpoint, make_clock(os.environ), os.environ)
        )
        return endpoint, client

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wait = Wait.from_dict(self.wait)
        try:
            shared = pollers()
            endpoint, client = await self._connect(shared)
            ended = await shared.poller(endpoint, wait.pool_id, client).wait_for(wait)
        except RunnerError as error:  # ApiError and UsageError: the message names the cause
            yield _event(Outcome.ERROR, wait, str(error))
            return
        yield _event(ended.outcome, ended.wait, ended.message)

    async def on_kill(self) -> None:
        """A user acted on the deferred task (mark failed, mark success, clear): cancel our run
        only when the task was stopped (`watch.after_kill`); never one someone else started.

        Shielded: the triggerer may cancel the trigger's task again while this runs (seen on
        Airflow 3.3 a few seconds after the first cancel), and the cancel must still go out."""
        task = asyncio.get_running_loop().create_task(self._on_kill())
        _KILLS.add(task)
        task.add_done_callback(_KILLS.discard)
        await asyncio.shield(task)

    async def _on_kill(self) -> None:
        wait = Wait.from_dict(self.wait)
        if wait.kind != "ours":
            return
        state, known = await self._settled_task_state()
        action = after_kill(state, known=known)
        if action is not AfterKill.CANCEL:
            self.log.warning(_LEFT_ALONE[action], wait.job_id, wait.pool_id)
            return
        shared = pollers()
        _, client = await self._connect(shared)
        await shared.cancel(client, wait.pool_id, wait.job_id)
        self.log.warning(
            "the task was marked failed: cancelled job %s of pool %s in Celonis",
            wait.job_id,
            wait.pool_id,
        )

    async def _settled_task_state(self) -> tuple[str | None, bool]:
        """The task's state once the user's action shows in it: the trigger may be cancelled
        before Airflow has written "failed" (seen under load: a mark failed read as still
        deferred, then taken for a clear, and nothing cancelled). A state that stays
        "deferred" for STATE_SETTLE seconds is a trigger moved or restarted: nothing to do."""
        deadline = asyncio.get_running_loop().time() + STATE_SETTLE
        while True:
            state, known = await self._task_state()
            if not (known and state == "deferred"):
                return state, known
            if asyncio.get_running_loop().time() >= deadline:
                return state, known
            await asyncio.sleep(STATE_POLL)

    async def _task_state(self) -> tuple[str | None, bool]:
        """The task instance's state now (after the user's action), and whether it was read."""
        ti = self.task_instance
        if ti is None:
            return None, False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = await asyncio.to_thread(
                RuntimeTaskInstance.get_task_states,
                dag_id=ti.dag_id,
                task_ids=[ti.task_id],
                run_ids=[ti.run_id],
                map_index=ti.map_index,
            )
        except Exception as error:  # no supervisor to ask (e.g. dag.test), or it failed
            self.log.error("could not read the state of task %s: %s", ti.task_id, error)
            return None, False
        key = (
            ti.task_id
            if ti.map_index is None or ti.map_index < 0
            else f"{ti.task_id}_{ti.map_index}"
        )
        run = states.get(ti.run_id) or {}
        if key not in run:
            return None, False
        state = run[key]
        return (None if state is None else str(state)), True


def _event(outcome: Outcome, wait: Wait, message: str | None = None) -> TriggerEvent:
    # Airflow's TriggerEvent.__init__ has no annotations.
    return TriggerEvent(  # type: ignore[no-untyped-call]
        {"outcome": outcome.value, "message": message, "wait": wait.to_dict()}
    )
