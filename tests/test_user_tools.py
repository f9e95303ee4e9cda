"""What users' own tools make of our outputs, checked with the tools themselves (issue 22):
the editor's YAML language server against `validate`, mermaid-cli on every chart, the JUnit
readers on the JUnit XML, headless Chromium on the HTML report.

Marked `tools`: `make test-tools` installs the clients (.tools/, pip) and runs these; without a
client its tests skip."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.manifest.loader import check_manifest
from tests.test_schema_agreement import (
    ENVIRONMENT,
    EVERY_VARIABLE,
    JOB,
    POOL,
    manifests_in_the_repository,
)
from tests.user_tools import SCHEMA, LanguageServer

pytestmark = pytest.mark.tools


@pytest.fixture(scope="module")
def language_server() -> Iterator[LanguageServer]:
    server = LanguageServer()
    try:
        yield server
    finally:
        server.close()


def _beside_the_schema(tmp_path: Path, name: str, text: str) -> Path:
    """`text` as a file whose modeline names the repository's schema (as `init` writes one)."""
    modeline = f"# yaml-language-server: $schema={SCHEMA}\n"
    lines = [line for line in text.splitlines(keepends=True) if "$schema=" not in line]
    path = tmp_path / name
    path.write_text(modeline + "".join(lines), encoding="utf-8")
    return path


def test_the_editor_accepts_every_manifest_validate_accepts(
    language_server: LanguageServer, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    files = [*manifests_in_the_repository(tmp_path / "docs"), None]
    for number, source in enumerate(files):
        text = EVERY_VARIABLE if source is None else source.read_text("utf-8")
        path = _beside_the_schema(tmp_path, f"m{number}.yaml", text)
        assert check_manifest(path, ENVIRONMENT, strict_env=True).problems == [], source
        assert language_server.diagnostics(path) == [], source


HEAD = f"version: 1\npools:\n  sap:\n    id: {POOL}\njobs:\n  a:\n    pool: sap\n    id: {JOB}\n"
BROKEN = {
    "yes": "    allow_failure: yes\n",
    "off": "    allow_failure: off\n",
    "sexagesimal": "    timeout: 1:30\n",
    "underscore": "    timeout: 1_000\n",
    "zero": "    timeout: 0s\n",
    "zero-number": "    poll_interval: 0\n",
    "uuid-default": "    id: ${X:-not-a-uuid}\n",
    "unanchored": f"    id: xx-${{S:-{POOL}}}-yy\n",
    "if_running": "    if_running: sometimes\n",
    "if_running-default": "    if_running: ${IF:-sometimes}\n",
    "mode": "    mode: full\n",
    "unknown-key": "    timout: 2h\n",
    "too-long-number": "    timeout: 2592001\n",
    "tables": "    extractions:\n      SAP: [VBAK, VBAK]\n",
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_the_editor_and_validate_refuse_the_same_line(
    language_server: LanguageServer, tmp_path: Path, name: str
) -> None:
    text = BROKEN[name]
    if text.startswith("    id:"):  # replaces the job's id
        text = HEAD.replace(f"    id: {JOB}\n", "") + text
    else:
        text = HEAD + text
    path = _beside_the_schema(tmp_path, "jobs.yaml", text)
    ours = {p.line for p in check_manifest(path, {}, strict_env=True).errors}
    theirs = {d["range"]["start"]["line"] + 1 for d in language_server.diagnostics(path)}
    assert ours and ours == theirs, (ours, language_server.diagnostics(path))


ONLY_VALIDATE = {
    "over-30-days": "    timeout: 721h\n",
    "unknown-dependency": "    depends_on: [b]\n",
    "unset-variable": "    description: ${UNSET_FOR_THE_TEST}\n",
    "same-job-twice": f"  b:\n    pool: sap\n    id: {JOB}\n",
    "unknown-pool": "  b:\n    pool: crm\n    id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349\n",
    "cycle": "    depends_on: [b]\n  b:\n    pool: sap\n"
    "    id: 0d6b8a2e-3f4c-4e1a-9b7d-c5e2f8a1d349\n    depends_on: [a]\n",
    "oauth-key": "connection:\n  team: acme\n  realm: eu-1\n  auth:\n    type: oauth\n"
    "    key_env: K\n",
    "team-and-url": "connection:\n  team: acme\n  base_url: https://acme.eu-1.celonis.cloud\n",
}
"""What only `validate` can check (README: "What only validate checks")."""


@pytest.mark.parametrize("name", list(ONLY_VALIDATE))
def test_what_only_validate_checks_is_what_the_readme_lists(
    language_server: LanguageServer, tmp_path: Path, name: str
) -> None:
    path = _beside_the_schema(tmp_path, "jobs.yaml", HEAD + ONLY_VALIDATE[name])
    assert check_manifest(path, {}, strict_env=True).errors
    assert language_server.diagnostics(path) == []


@pytest.mark.parametrize("name", ["zero", "uuid-default"])
def test_the_editor_shows_validates_message(
    language_server: LanguageServer, tmp_path: Path, name: str
) -> None:
    """The schema's `patternErrorMessage` (yaml-language-server's) is validate's message."""
    text = BROKEN[name]
    text = (HEAD.replace(f"    id: {JOB}\n", "") if text.startswith("    id:") else HEAD) + text
    path = _beside_the_schema(tmp_path, "jobs.yaml", text)
    (ours,) = check_manifest(path, {}, strict_env=True).errors
    (theirs,) = language_server.diagnostics(path)
    assert ours.message.split(", got ")[0] == theirs["message"]
