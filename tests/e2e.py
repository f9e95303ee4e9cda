"""Helpers for end-to-end tests: manifests and scenarios built in code, the emulator's journal read back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def job_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"job:{name}"))


def pool_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pool:{name}"))


@dataclass
class Pipeline:
    """A manifest and a matching emulator scenario, written to a folder."""

    folder: Path
    pools: dict[str, int | None] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    behaviour: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(
        default_factory=lambda: {"poll_interval": "10s", "timeout": "2h"}
    )

    def pool(self, name: str, max_parallel: int | None = None) -> Pipeline:
        self.pools[name] = max_parallel
        return self

    def job(
        self,
        name: str,
        pool: str,
        *deps: str,
        behaviour: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Pipeline:
        self.jobs[name] = {
            "pool": pool,
            "id": job_uuid(name),
            **({"depends_on": list(deps)} if deps else {}),
            **options,
        }
        self.behaviour[name] = {"duration": "5m", **(behaviour or {})}
        return self

    def write(self) -> tuple[Path, Path]:
        manifest = {
            "version": 1,
            "defaults": self.defaults,
            "pools": {
                name: {"id": pool_uuid(name), **({"max_parallel": limit} if limit else {})}
                for name, limit in self.pools.items()
            },
            "jobs": self.jobs,
        }
        scenario = {
            "time_scale": 3000,
            "queued_for": "5s",
            **self.settings,
            "pools": [
                {
                    "id": pool_uuid(pool),
                    "name": pool,
                    "jobs": [
                        {"id": job_uuid(name), "name": name, **self.behaviour[name]}
                        for name, spec in self.jobs.items()
                        if spec["pool"] == pool
                    ],
                }
                for pool in self.pools
            ],
        }
        manifest_path = self.folder / "jobs.yaml"
        scenario_path = self.folder / "scenario.yaml"
        manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        scenario_path.write_text(yaml.safe_dump(scenario, sort_keys=False))
        return manifest_path, scenario_path


@dataclass
class Journal:
    entries: list[dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> Journal:
        return cls([json.loads(line) for line in path.read_text().splitlines() if line.strip()])

    def executions(self, name: str) -> list[dict[str, Any]]:
        jid = job_uuid(name)
        return [
            e
            for e in self.entries
            if e.get("type") == "execution"
            and e.get("event") == "started"
            and e["job_id"] == jid
            and e.get("by") == "api"
        ]

    def statuses(self, name: str) -> list[tuple[float, str]]:
        jid = job_uuid(name)
        return [
            (e["t"], e["status"])
            for e in self.entries
            if e.get("type") == "execution" and e.get("event") == "status" and e["job_id"] == jid
        ]

    def success_time(self, name: str) -> float | None:
        return next((t for t, s in self.statuses(name) if s == "SUCCESS"), None)

    def requests(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        return [
            e
            for e in self.entries
            if e.get("type") == "request"
            and (method is None or e["method"] == method)
            and contains in e["path"]
        ]

    def intervals(self, names: Iterable[str]) -> list[tuple[float, float, str]]:
        """(start, end, name) of every execution the API started, end at its final status."""
        out = []
        for name in names:
            for execution in self.executions(name):
                ends = [
                    e["t"]
                    for e in self.entries
                    if e.get("type") == "execution"
                    and e.get("event") == "status"
                    and e.get("execution_id") == execution["execution_id"]
                    and e["status"] in ("SUCCESS", "FAIL", "CANCEL")
                ]
                out.append((execution["t"], min(ends) if ends else float("inf"), name))
        return out

    def max_concurrent(self, names: Iterable[str]) -> int:
        points = []
        for start, end, _ in self.intervals(names):
            points += [(start, 1), (end, -1)]
        current = best = 0
        for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
            current += delta
            best = max(best, current)
        return best

    def assert_order(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        """No job's execute before every one of its dependencies' SUCCESS."""
        for name, spec in jobs.items():
            for execution in self.executions(name):
                for dep in spec.get("depends_on", []):
                    done = self.success_time(dep)
                    assert done is not None and done <= execution["t"], (
                        f"{name} executed at {execution['t']:.1f} before {dep} succeeded ({done})"
                    )


def emulator_for(pipeline: Pipeline, key: str) -> Any:
    """An in-process emulator playing the pipeline's scenario (start it with `with`)."""
    from runner.clock import ScaledClock
    from runner.emulator import Emulator, Scenario

    _, scenario_path = pipeline.write()
    scenario = Scenario.from_dict(yaml.safe_load(scenario_path.read_text()))
    return Emulator(scenario, clock=ScaledClock(scenario.time_scale), api_keys=[key])


def run_pipeline(
    cli: Callable[..., Any],
    pipeline: Pipeline,
    *extra: str,
    environ: Mapping[str, str] | None = None,
) -> tuple[Any, Journal, dict[str, Any]]:
    """`run --emulator` on the pipeline: the CLI's result, the emulator's journal, the report (or {})."""
    manifest, scenario = pipeline.write()
    journal = pipeline.folder / "journal.jsonl"
    report = pipeline.folder / "report.json"
    result = cli(
        "run",
        str(manifest),
        "--emulator",
        "--scenario",
        str(scenario),
        "--emulator-journal",
        str(journal),
        "--report",
        str(report),
        "--log-format",
        "json",
        "--state-dir",
        str(pipeline.folder / "runs"),
        *extra,
        environ=environ,
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result, Journal.read(journal), data
