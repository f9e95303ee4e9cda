"""Helpers for emulator tests: a fake clock moved by hand, ids, and a small API client."""

from __future__ import annotations

import threading
from typing import Any

import requests

POOL = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
POOL_2 = "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77"
JOB = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
JOB_2 = "5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55"
JOB_3 = "0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349"
UNKNOWN = "00000000-0000-4000-8000-000000000000"

WALL_START = 1_700_000_000.0


class FakeClock:
    """Virtual time that moves only when told to (`advance`, `sleep`, `wait`); records sleeps.

    One fake clock for every test that injects time (emulator, client, executor, state).
    """

    def __init__(self, start: float = 1000.0, wall_start: float = WALL_START) -> None:
        self.now = start
        self.wall_start = wall_start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def time(self) -> float:
        """Epoch seconds: wall_start + monotonic()."""
        return self.wall_start + self.monotonic()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()


def pool_scenario(*jobs: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A scenario mapping with one pool (POOL) holding `jobs`."""
    return {"pools": [{"id": POOL, "name": "SAP ECC", "jobs": list(jobs)}], **settings}


class Client:
    """Just enough of a Celonis client to drive the emulator over loopback."""

    def __init__(self, base_url: str, authorization: str | None, timeout: float = 5.0) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if authorization is not None:
            self.session.headers["Authorization"] = authorization
        self.timeout = timeout

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(self.base_url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(self.base_url + path, **kwargs)

    def execute(self, pool: str = POOL, job: str = JOB, mode: str = "DELTA") -> requests.Response:
        return self.post(
            f"/integration/api/v2/data-pools/{pool}/data-jobs/{job}/execute?mode={mode}"
        )

    def job(self, pool: str = POOL, job: str = JOB) -> dict[str, Any]:
        response = self.get(f"/integration/api/pools/{pool}/jobs/{job}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def status(self, pool: str = POOL, job: str = JOB) -> str | None:
        value = self.job(pool, job)["status"]
        return None if value is None else str(value)

    def cancel(self, pool: str = POOL, job: str = JOB) -> requests.Response:
        return self.post(f"/integration/api/pools/{pool}/jobs/{job}/cancel")
