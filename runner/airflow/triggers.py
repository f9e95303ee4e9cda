"""The deferred wait: polls a job's status in the triggerer until it ends, then yields one event.

The event is `{"outcome": Outcome, "message": str | None, "wait": Wait}`; the
operator's `execute_complete` turns it into success or a failure. The trigger
never executes a job; when the task is killed while deferred (marked failed,
cleared), `on_kill` cancels our run in Celonis. The blocking client runs in a
thread so the triggerer's event loop never waits on HTTP.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from runner.airflow.credentials import ApiSettings, make_client, make_clock
from runner.airflow.hooks import alookup_connection, endpoint_for
from runner.airflow.watch import Outcome, Wait
from runner.api import CelonisClient
from runner.errors import RunnerError
from runner.lifecycle import HISTORY_LIMIT


class CelonisJobTrigger(BaseTrigger):
    """Waits for one Celonis job (`wait`, a `Wait.to_dict()`); `settings` name the credentials."""

    def __init__(self, wait: dict[str, Any], settings: dict[str, Any]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.wait = wait
        self.settings = settings
        self._client: CelonisClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "runner.airflow.triggers.CelonisJobTrigger",
            {"wait": self.wait, "settings": self.settings},
        )

    async def _get_client(self) -> CelonisClient:
        if self._client is None:
            settings = ApiSettings.from_dict(self.settings)
            connection = await alookup_connection(settings.conn_id)
            endpoint = endpoint_for(settings, connection, os.environ)
            self._client = make_client(endpoint, make_clock(os.environ), os.environ)
        return self._client

    async def run(self) -> AsyncIterator[TriggerEvent]:
        wait = Wait.from_dict(self.wait)
        try:
            client = await self._get_client()
            while not wait.timed_out(time.time()):
                statuses = await asyncio.to_thread(
                    client.pool_statuses, wait.pool_id, [wait.job_id]
                )
                step = wait.observe(statuses[wait.job_id], time.time())
                if step.read_history:
                    history = await asyncio.to_thread(
                        client.execution_history, wait.pool_id, wait.job_id, HISTORY_LIMIT
                    )
                    step = wait.observe_history(history, time.time())
                wait = step.wait
                if step.outcome is not None:
                    yield _event(step.outcome, wait)
                    return
                await asyncio.sleep(step.sleep)
            yield _event(Outcome.TIMEOUT, wait)
        except RunnerError as error:  # ApiError and UsageError: the message names the cause
            yield _event(Outcome.ERROR, wait, str(error))

    async def on_kill(self) -> None:
        """The task was killed while deferred: cancel our run (never one someone else started)."""
        wait = Wait.from_dict(self.wait)
        if wait.kind != "ours":
            return
        client = await self._get_client()
        await asyncio.to_thread(client.cancel, wait.pool_id, wait.job_id)
        self.log.info("cancelled job %s of pool %s in Celonis", wait.job_id, wait.pool_id)


def _event(outcome: Outcome, wait: Wait, message: str | None = None) -> TriggerEvent:
    # Airflow's TriggerEvent.__init__ has no annotations.
    return TriggerEvent(  # type: ignore[no-untyped-call]
        {"outcome": outcome.value, "message": message, "wait": wait.to_dict()}
    )
