"""Shared fixtures: manifests written to a temporary folder, and the CLI run in-process."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.cli import main

AIRFLOW_EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "examples" / "airflow" / "dags"


def pytest_configure(config: pytest.Config) -> None:
    """Airflow reads its settings once, when first imported (by a test module, at collection):
    every process of the session (each xdist worker too) gets its own AIRFLOW_HOME, SQLite
    metadata DB and DAG folder before that. The deployment test starts its own Airflow."""
    home = Path(tempfile.mkdtemp(prefix="airflow-home-"))
    shutil.copytree(AIRFLOW_EXAMPLE_DAGS, home / "dags")  # dag.test() runs only DAGs found here
    config.stash[_AIRFLOW_HOME] = home
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        }
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_AIRFLOW_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


_AIRFLOW_HOME = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def airflow_home(pytestconfig: pytest.Config) -> Path:
    """The session's AIRFLOW_HOME with a fresh metadata DB; skips when Airflow cannot be
    imported (`pip install -e '.[airflow]'`)."""
    try:
        import airflow  # noqa: F401
    except ImportError as error:
        pytest.skip(f"Airflow is not installed ({error}): pip install -e '.[airflow]'")
    from airflow.utils import db

    db.resetdb()
    return pytestconfig.stash[_AIRFLOW_HOME]


POOL_A = "3f6c1a3e-0d4b-4b8e-9a43-2a4d2f0e9c11"
POOL_B = "7a1d9e40-5b2c-4f8a-8e13-6c0b2d9f4a77"
JOB_1 = "8d0f5c2a-7e61-4c3b-b1a0-5f2e9d7c4b33"
JOB_2 = "5b2e7a91-3c44-4f0d-8e2b-9c1d6a7f0e55"
JOB_3 = "0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "jobs.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """The CLI in-process, with its own environment (run state goes to a temporary folder)."""

    def run(*argv: str, environ: Mapping[str, str] | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        env = {"CELONIS_RUNNER_STATE_DIR": str(tmp_path / "runs"), **(environ or {})}
        code = main(list(argv), environ=env, stdout=out, stderr=err)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests talk only to servers they start on loopback."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "::1", "localhost")
            and self.family
            in (
                socket.AF_INET,
                socket.AF_INET6,
            )
        ):
            raise AssertionError(f"test tried to reach {host!r}; tests talk only to 127.0.0.1")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield
