"""What users' own tools make of our outputs, checked with the tools themselves (issue 22):
the editor's YAML language server against `validate`, mermaid-cli on every chart, the JUnit
readers on the JUnit XML, headless Chromium on the HTML report.

Marked `tools`: `make test-tools` installs the clients (.tools/, pip) and runs these; without a
client its tests skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.manifest.loader import check_manifest
from runner.reports.github import step_summary
from runner.reports.html import render as html_render
from runner.reports.junit import junit_text
from tests.conftest import CliResult
from tests.test_schema_agreement import (
    ENVIRONMENT,
    EVERY_VARIABLE,
    JOB,
    POOL,
    manifests_in_the_repository,
)
from tests.user_tools import (
    MERMAID_KEYWORDS,
    SCHEMA,
    TOOLS,
    LanguageServer,
    chromium,
    diff_pair,
    make_run,
    many_jobs_manifest,
    node,
    tool,
)

pytestmark = pytest.mark.tools
Cli = Callable[..., CliResult]


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


# -- Mermaid (GitHub renders it) ------------------------------------------------------------


def mermaid_cli(markdown: Path, tmp_path: Path) -> list[str]:
    """Every ```mermaid block of `markdown` drawn by mermaid-cli with Chromium; the SVGs."""
    config = tmp_path / "puppeteer.json"
    config.write_text(
        json.dumps({"executablePath": chromium(), "args": ["--no-sandbox", "--disable-gpu"]}),
        encoding="utf-8",
    )
    out = tmp_path / "drawn.md"
    result = subprocess.run(
        [
            node(),
            str(tool("mmdc").resolve()),
            "-p",
            str(config),
            "-i",
            str(markdown),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [svg.read_text("utf-8") for svg in sorted(tmp_path.glob("drawn-*.svg"))]


@pytest.mark.parametrize("count", [1, 50, 300])
def test_the_step_summarys_graph_and_timeline_render(tmp_path: Path, count: int) -> None:
    run = make_run(count, names=MERMAID_KEYWORDS)
    summary = tmp_path / "summary.md"
    summary.write_text(step_summary(run), encoding="utf-8")
    graph, timeline = mermaid_cli(summary, tmp_path)
    names = [job.name for job in run.jobs]
    for name in names[:5]:  # keyword names are drawn as names, not read as keywords
        assert f"{name} (" in timeline and f">{name}<" in graph, name


@pytest.mark.parametrize("count", [1, 50, 300])
def test_the_plans_flowchart_renders(cli: Cli, tmp_path: Path, count: int) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(many_jobs_manifest(count), encoding="utf-8")
    chart = cli("plan", str(manifest), "--format", "mermaid").out
    markdown = tmp_path / "plan.md"
    markdown.write_text(f"```mermaid\n{chart}```\n", encoding="utf-8")
    (svg,) = mermaid_cli(markdown, tmp_path)
    assert svg.count('class="node ') >= count or svg.count('<g class="node') >= count


@pytest.mark.parametrize("count", [1, 50, 300])
def test_the_diffs_flowchart_renders(cli: Cli, tmp_path: Path, count: int) -> None:
    """`diff --format mermaid` draws with the shared flowchart builder: no subgraphs, which
    dagre fails on from a few dozen jobs in several pools."""
    base, new = tmp_path / "base.yaml", tmp_path / "jobs.yaml"
    base_text, new_text = diff_pair(count)
    base.write_text(base_text, encoding="utf-8")
    new.write_text(new_text, encoding="utf-8")
    result = cli("diff", str(base), str(new), "--format", "mermaid")
    assert result.code == 0, result.err
    markdown = tmp_path / "diff.md"
    markdown.write_text(f"```mermaid\n{result.out}```\n", encoding="utf-8")
    (svg,) = mermaid_cli(markdown, tmp_path)
    # every job of the new manifest and the removed one
    assert svg.count('class="node ') >= count + 1 or svg.count('<g class="node') >= count + 1


# -- JUnit readers (Jenkins, GitLab and the Python tools CI plugins are built on) -------------

JENKINS_XSD = Path(__file__).parent / "data" / "jenkins-junit-10.xsd"
"""Jenkins xunit-plugin's junit-10.xsd (MIT, its licence in the file), as of commit
031e285ef3b60dee7aaf36e9096d7dcd95ffae83 of github.com/jenkinsci/xunit-plugin."""


@pytest.mark.parametrize(("count", "pools"), [(1, 1), (9, 3), (300, 10)])
def test_the_junit_readers_read_every_run_with_the_reports_counts(
    tmp_path: Path, count: int, pools: int
) -> None:
    junitparser = pytest.importorskip("junitparser")
    xunitparser = pytest.importorskip("xunitparser")
    run = make_run(count, pools=pools)
    path = tmp_path / "junit.xml"
    path.write_text(junit_text(run), encoding="utf-8")
    counts = run.counts()
    failed = sum(j.state.is_unsuccessful and not j.allow_failure for j in run.jobs)
    skipped = sum(j.state.not_run or j.allowed_failure for j in run.jobs)
    errors = counts.get("running", 0) + counts.get("unclear", 0)

    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == len(run.pools)
    assert sum(s.tests for s in suites) == count
    assert sum(s.failures for s in suites) == failed
    assert sum(s.skipped for s in suites) == skipped
    assert sum(s.errors for s in suites) == errors

    with path.open(encoding="utf-8") as stream:
        _, result = xunitparser.parse(stream)
    assert (result.testsRun, len(result.failures), len(result.skipped), len(result.errors)) == (
        count,
        failed,
        skipped,
        errors,
    )

    html = tmp_path / "junit.html"
    converted = subprocess.run(
        [sys.executable, "-m", "junit2htmlreport", str(path), str(html)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "No module named" in converted.stderr:
        pytest.skip("junit2html is not installed (make tools)")
    assert converted.returncode == 0, converted.stderr
    assert run.jobs[-1].name in html.read_text("utf-8")

    import xmlschema  # the test extra

    xmlschema.XMLSchema(str(JENKINS_XSD)).validate(str(path))


# -- the HTML report in a browser --------------------------------------------------------------


def open_in_chromium(page: Path, width: int, selector: str) -> dict[str, Any]:
    script = Path(__file__).parent / "chromium_page.cjs"
    tool("mmdc")  # puppeteer comes with mermaid-cli
    result = subprocess.run(
        [node(), str(script), chromium(), str(page), str(width), selector],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NODE_PATH": str(TOOLS / "node_modules")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, Any] = json.loads(result.stdout)
    return found


LONG_NAME = "extract_" + "very_long_name_" * 12


@pytest.mark.parametrize("count", [9, 300, 1000])
def test_the_html_report_in_chromium(tmp_path: Path, count: int) -> None:
    run = make_run(count, names=(LONG_NAME,))
    page = tmp_path / "report.html"
    page.write_text(html_render(run), encoding="utf-8")
    seen = open_in_chromium(page, 1000, ".failed-run")
    assert seen["errors"] == []
    assert seen["pageWidth"] <= seen["viewWidth"], "the page scrolls sideways at 1,000 px"
    (failure,) = seen["matches"]
    assert failure["top"] < 800 and run.jobs[-1].name in failure["text"]  # above the fold
    colours = {text: colour for text, colour in seen["colours"]}
    assert colours["failed"] != colours["failed (allowed)"]
