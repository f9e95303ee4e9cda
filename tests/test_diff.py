"""`celonis-runner diff`, `state:modified` with `--base`, and the pull request's step summary
(issue 26): what a change to jobs.yaml does to the pipeline."""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.manifest.diff import compare
from runner.manifest.loader import load_manifest
from runner.reports.mermaid import MAX_TEXT
from tests.conftest import CliResult
from tests.e2e import Pipeline
from tests.user_tools import diff_pair

Cli = Callable[..., CliResult]
NAMESPACE = uuid.UUID("6c1f3a52-95d7-4b8e-a0c4-1d2e3f405162")


def uid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


# The 12-job pipeline: three pools, extractions feeding transformations feeding loads.
JOBS_12: dict[str, tuple[str, list[str]]] = {
    "extract_orders": ("sap", []),
    "extract_items": ("sap", []),
    "extract_deliveries": ("sap", []),
    "extract_accounts": ("crm", []),
    "transform_orders": ("sap", ["extract_orders", "extract_items"]),
    "transform_deliveries": ("sap", ["extract_deliveries"]),
    "transform_accounts": ("crm", ["extract_accounts"]),
    "transform_o2c": ("sap", ["transform_orders", "transform_deliveries"]),
    "quality_o2c": ("sap", ["transform_o2c"]),
    "load_o2c": ("models", ["transform_o2c", "transform_accounts"]),
    "load_accounts": ("models", ["transform_accounts"]),
    "publish": ("models", ["load_o2c", "load_accounts"]),
}


def manifest_text(jobs: dict[str, tuple[str, list[str]]], modes: dict[str, str]) -> str:
    lines = ["version: 1", "pools:"]
    for pool in ("sap", "crm", "models"):
        lines += [f"  {pool}:", f"    id: {uid('pool-' + pool)}"]
    lines.append("jobs:")
    for name, (pool, deps) in jobs.items():
        lines += [f"  {name}:", f"    pool: {pool}", f"    id: {uid(name)}"]
        if name in modes:
            lines.append(f"    mode: {modes[name]}")
        if deps:
            lines.append(f"    depends_on: [{', '.join(deps)}]")
    return "\n".join(lines) + "\n"


def changed_12() -> str:
    """One job added (extract_returns), one removed (transform_deliveries: its dependent
    transform_o2c rewired to extract_deliveries), one mode changed (extract_items to FULL),
    one dependency added (load_accounts now also waits for extract_accounts)."""
    jobs = dict(JOBS_12)
    del jobs["transform_deliveries"]
    jobs["transform_o2c"] = ("sap", ["transform_orders", "extract_deliveries"])
    jobs["load_accounts"] = ("models", ["transform_accounts", "extract_accounts"])
    jobs["extract_returns"] = ("sap", [])
    return manifest_text(jobs, {"extract_items": "FULL"})


def git(folder: Path, *words: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *words],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository (the current directory) whose HEAD has the 12-job jobs.yaml."""
    (tmp_path / "jobs.yaml").write_text(manifest_text(JOBS_12, {}))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "jobs.yaml")
    git(tmp_path, "commit", "-qm", "base")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def line_of(text: str, job: str) -> int:
    """The line of `job`'s key in a manifest_text."""
    return text.splitlines().index(f"  {job}:") + 1


BASE_12, NEW_12 = manifest_text(JOBS_12, {}), changed_12()
EXPECTED_12 = {
    "added": [
        {"kind": "job", "name": "extract_returns", "line": line_of(NEW_12, "extract_returns")}
    ],
    "removed": [
        {
            "kind": "job",
            "name": "transform_deliveries",
            "line": line_of(BASE_12, "transform_deliveries"),
        }
    ],
    "changed": [
        {
            "kind": "job",
            "name": "extract_items",
            "line": line_of(NEW_12, "extract_items"),
            "fields": {"mode": {"old": "DELTA", "new": "FULL"}},
        },
        {
            "kind": "job",
            "name": "transform_o2c",
            "line": line_of(NEW_12, "transform_o2c"),
            "fields": {
                "depends_on": {
                    "old": ["transform_orders", "transform_deliveries"],
                    "new": ["transform_orders", "extract_deliveries"],
                }
            },
        },
        {
            "kind": "job",
            "name": "load_accounts",
            "line": line_of(NEW_12, "load_accounts"),
            "fields": {
                "depends_on": {
                    "old": ["transform_accounts"],
                    "new": ["transform_accounts", "extract_accounts"],
                }
            },
        },
    ],
    "edges": {
        "added": [
            {"from": "extract_deliveries", "to": "transform_o2c"},
            {"from": "extract_accounts", "to": "load_accounts"},
        ],
        "removed": [
            {"from": "extract_deliveries", "to": "transform_deliveries"},
            {"from": "transform_deliveries", "to": "transform_o2c"},
        ],
    },
}


@pytest.mark.parametrize("base", ["file", "HEAD:jobs.yaml"])
def test_diff_names_exactly_the_changes_of_a_12_job_change(cli: Cli, repo: Path, base: str) -> None:
    before = repo / "base.jobs.yaml"
    before.write_text((repo / "jobs.yaml").read_text())
    (repo / "jobs.yaml").write_text(changed_12())
    spec = str(before) if base == "file" else base
    result = cli("diff", spec, "--format", "json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert {k: found[k] for k in EXPECTED_12} == EXPECTED_12
    assert found["base"] == spec and found["new"] == "jobs.yaml"
    # the changes reach these downstream; they are not changed themselves
    assert found["downstream"] == ["transform_orders", "quality_o2c", "load_o2c", "publish"]

    text = cli("diff", spec).out
    assert text.splitlines()[0] == (
        f"Changes from {spec} to jobs.yaml: 1 job added, 1 removed, 3 changed;"
        " 2 dependencies added, 2 removed"
    )
    assert f"+ job extract_returns (line {line_of(NEW_12, 'extract_returns')})\n" in text
    assert (
        f"- job transform_deliveries ({spec} line {line_of(BASE_12, 'transform_deliveries')})\n"
        in text
    )
    items = line_of(NEW_12, "extract_items")
    assert f"~ job extract_items (line {items})\n    mode: DELTA -> FULL\n" in text
    for untouched in ("extract_orders", "transform_orders", "transform_accounts", "publish"):
        assert f"job {untouched}" not in text
    assert (
        "\nDownstream of the changes (4, unchanged themselves):"
        " transform_orders, quality_o2c, load_o2c, publish\n"
    ) in text


def test_order_comments_anchors_and_variables_make_no_change(
    cli: Cli, write_manifest: Callable[..., Path]
) -> None:
    pool, job_a, job_b = uid("pool"), uid("a"), uid("b")
    base = write_manifest(
        f"""
        version: 1
        defaults: {{timeout: 2h}}
        pools:
          sap: {{id: {pool}}}
        jobs:
          a: {{pool: sap, id: {job_a}, mode: FULL, timeout: 45m}}
          b: {{pool: sap, id: {job_b}, depends_on: [a], allow_failure: true}}
        """,
        "base.yaml",
    )
    new = write_manifest(
        f"""
        # the same pipeline, written another way
        version: 1
        defaults:
          timeout: 120m
        x-full: &full
          mode: FULL
          timeout: 2700s
        pools:
          sap:
            id: ${{SAP_POOL}}
        jobs:
          b:  # first now
            pool: sap
            id: {job_b.upper()}
            depends_on: [a]
            allow_failure: true
          a:
            <<: *full
            pool: sap
            id: ${{JOB_A:-{job_a}}}
        """,
        "new.yaml",
    )
    result = cli("diff", str(base), str(new), "--detailed-exitcode", environ={"SAP_POOL": pool})
    assert (result.code, result.err) == (0, "")
    assert result.out == f"No changes: {base} and {new} declare the same pools and jobs.\n"
    assert json.loads(cli("diff", str(base), str(base), "--format", "json").out)["changed"] == []


def test_both_files_are_validated_first_with_their_lines(
    cli: Cli, repo: Path, write_manifest: Callable[..., Path]
) -> None:
    broken = manifest_text(JOBS_12, {}).replace(
        "[extract_orders, extract_items]", "[extract_ordrs]"
    )
    (repo / "jobs.yaml").write_text(broken)
    git(repo, "commit", "-qam", "broken")
    (repo / "jobs.yaml").write_text(
        broken.replace("mode", "mode").replace("version: 1", "version: 2")
    )
    result = cli("diff", "HEAD:jobs.yaml")
    assert result.code == 2 and result.out == ""
    line = line_of(broken, "transform_orders") + 3
    assert result.err.splitlines() == [
        f"HEAD:jobs.yaml:{line}:18: jobs.transform_orders.depends_on[0]: unknown job"
        " 'extract_ordrs' (did you mean 'extract_orders'?)",
        "jobs.yaml:1:10: version: must be 1, got 2",
        f"jobs.yaml:{line}:18: jobs.transform_orders.depends_on[0]: unknown job"
        " 'extract_ordrs' (did you mean 'extract_orders'?)",
        "3 problems",
    ]
    assert cli("diff", "HEAD:jobs.yaml", "--detailed-exitcode").code == 1


def test_detailed_exitcode_is_terraforms(cli: Cli, repo: Path) -> None:
    assert cli("diff", "HEAD:jobs.yaml", "--detailed-exitcode").code == 0
    (repo / "jobs.yaml").write_text(changed_12())
    assert cli("diff", "HEAD:jobs.yaml").code == 0
    assert cli("diff", "HEAD:jobs.yaml", "--detailed-exitcode").code == 2
    # errors are 1 then, never the 2 of "changed": a missing revision, a usage error
    missing = cli("diff", "no-such-branch:jobs.yaml", "--detailed-exitcode")
    assert missing.code == 1
    assert missing.err.startswith(
        "celonis-runner: error: cannot read no-such-branch:jobs.yaml with git show: invalid"
        " object name 'no-such-branch'. Is no-such-branch fetched?"
    )
    assert cli("diff", "--detailed-exitcode", "--format", "yaml").code == 1
    assert cli("diff", "--format", "yaml").code == 2


def test_diff_defaults_to_the_last_commit(cli: Cli, repo: Path) -> None:
    (repo / "jobs.yaml").write_text(changed_12())
    result = cli("diff", "--format", "json")
    assert json.loads(result.out)["base"] == "HEAD:./jobs.yaml"


def test_markdown_and_mermaid_mark_the_changes(cli: Cli, repo: Path) -> None:
    (repo / "jobs.yaml").write_text(changed_12())
    markdown = cli("diff", "HEAD:jobs.yaml", "--format", "markdown").out
    assert markdown.startswith(
        "## celonis-runner: changes to `jobs.yaml`\n\nAgainst `HEAD:jobs.yaml`: 1 job added,"
    )
    assert "| ✏️ changed | job | `extract_items` | mode: `DELTA` → `FULL` |" in markdown
    assert "| ➖ removed | job | `transform_deliveries` |  |" in markdown
    assert "```mermaid\nflowchart LR\n" in markdown
    mermaid = cli("diff", "HEAD:jobs.yaml", "--format", "mermaid").out
    assert mermaid.startswith("flowchart LR\n")
    ids = dict(line.strip().split('["', 1) for line in mermaid.splitlines() if '["' in line)
    by_name = {label.split("<br/>")[0]: node for node, label in ids.items()}
    classes = {
        line.split()[-1]: line.split()[1].split(",")
        for line in mermaid.splitlines()
        if line.startswith("  class ")
    }
    assert classes["added"] == [by_name["extract_returns"]]
    assert classes["changed"] == [by_name["extract_items"], by_name["load_accounts"]]
    assert classes["lost_dependency"] == [by_name["transform_o2c"]]
    assert classes["removed"] == [by_name["transform_deliveries"]]
    assert f"{by_name['transform_deliveries']} -.-x {by_name['transform_o2c']}" in mermaid
    assert f"{by_name['extract_accounts']} ==> {by_name['load_accounts']}" in mermaid
    assert len(by_name) == 13  # 12 jobs and the removed one; no subgraph (pool or "removed")
    assert "subgraph" not in mermaid
    assert ids[by_name["transform_deliveries"]].endswith('<br/>removed"]')
    assert ids[by_name["extract_returns"]] == 'extract_returns<br/>DELTA in sap<br/>added"]'
    # a node of every job of the new manifest
    assert all(name in by_name for name in ("extract_orders", "publish", "transform_accounts"))


def test_a_300_job_diff_chart_has_no_subgraph(cli: Cli, tmp_path: Path) -> None:
    """Mermaid's dagre layout fails on subgraphs from ~50 jobs in 10 pools ("Cannot set
    properties of undefined (setting 'order')"): the diff draws with the shared builder."""
    base, new = tmp_path / "base.yaml", tmp_path / "jobs.yaml"
    base_text, new_text = diff_pair(300)
    base.write_text(base_text)
    new.write_text(new_text)
    result = cli("diff", str(base), str(new), "--format", "mermaid")
    assert result.code == 0, result.err
    chart = result.out
    assert chart.startswith("flowchart LR\n")
    assert "subgraph" not in chart.replace('"subgraph<br/>', "")  # a job may be named so
    assert not [line for line in chart.splitlines() if line.strip() == "end"]
    nodes = [line for line in chart.splitlines() if '["' in line]
    assert len(nodes) == 302  # 300 jobs in common, the added one and the removed one
    assert " -.-x " in chart and " ==> " in chart  # the removed and the added dependency
    for mark in ("added", "changed", "downstream", "removed"):
        assert f"  classDef {mark} " in chart, mark
    assert len(chart) <= MAX_TEXT


def test_plan_state_modified_plus_selects_the_changes_and_downstream(cli: Cli, repo: Path) -> None:
    (repo / "jobs.yaml").write_text(changed_12())

    def planned(*select: str) -> list[str]:
        words = [w for s in select for w in ("--select", s)]
        result = cli("plan", *words, "--base", "HEAD:jobs.yaml", "--format", "json")
        assert result.code == 0, result.err
        return sorted(job["name"] for job in json.loads(result.out)["jobs"])

    modified = ["extract_items", "extract_returns", "load_accounts", "transform_o2c"]
    downstream = ["load_o2c", "publish", "quality_o2c", "transform_orders"]
    assert planned("state:modified") == modified
    assert planned("state:modified+") == sorted(modified + downstream)
    upstream_only = ["transform_accounts", "transform_orders"]
    assert planned("+state:modified") == sorted(
        [*modified, "extract_accounts", "extract_deliveries", "extract_orders", *upstream_only]
    )
    assert planned("+state:modified+") == sorted(
        set(JOBS_12) - {"transform_deliveries"} | {"extract_returns"}
    )
    assert planned("state:modified,pool:crm") == sorted(
        [*modified, "extract_accounts", "transform_accounts"]
    )
    result = cli(
        "plan",
        "--select",
        "state:modified+",
        "--exclude",
        "state:modified",
        "--base",
        "HEAD:jobs.yaml",
        "--format",
        "json",
    )
    assert sorted(j["name"] for j in json.loads(result.out)["jobs"]) == downstream


def test_a_removed_job_cannot_be_selected_and_says_so(cli: Cli, repo: Path) -> None:
    (repo / "jobs.yaml").write_text(changed_12())
    result = cli("plan", "--select", "transform_deliveries+", "--base", "HEAD:jobs.yaml")
    assert result.code == 2
    assert result.err == (
        "celonis-runner: error: job 'transform_deliveries' in 'transform_deliveries+' was"
        " removed: it is in HEAD:jobs.yaml but not in jobs.yaml, so it cannot be selected"
        " (its former dependents are among state:modified)\n"
    )
    without = cli("plan", "--select", "transform_deliveries")
    assert "unknown job 'transform_deliveries'" in without.err


def test_state_selectors_need_base_and_a_known_method(cli: Cli, repo: Path) -> None:
    result = cli("plan", "--select", "state:modified+")
    assert result.code == 2
    assert result.err == (
        "celonis-runner: error: 'state:modified+' needs --base BASE: the manifest to compare"
        " with, a file or a git revision's file such as origin/main:jobs.yaml\n"
    )
    result = cli("plan", "--select", "state:new", "--base", "HEAD:jobs.yaml")
    assert result.code == 2 and "the state selector is state:modified" in result.err
    assert cli("run", "--select", "state:modified", "--emulator").code == 2


def test_nothing_changed_plans_and_runs_nothing(cli: Cli, repo: Path) -> None:
    result = cli("plan", "--select", "state:modified+", "--base", "HEAD:jobs.yaml")
    assert result.code == 0 and result.out.startswith("Plan for jobs.yaml: 0 jobs in 0 pools")
    result = cli("run", "--select", "state:modified+", "--base", "HEAD:jobs.yaml", "--emulator")
    assert result.code == 0, result.err
    assert result.out == (
        "No job to run: --select state:modified+ leaves none"
        " (nothing changed against HEAD:jobs.yaml)\n"
    )


def test_slim_run_runs_only_the_changed_jobs_and_downstream(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.e2e import run_pipeline

    pipeline = Pipeline(tmp_path).pool("sap").pool("crm")
    pipeline.job("extract", "sap", behaviour={"duration": "2m"})
    pipeline.job("extract_crm", "crm", behaviour={"duration": "2m"})
    pipeline.job("transform", "sap", "extract", behaviour={"duration": "2m"})
    pipeline.job("load", "crm", "transform", "extract_crm", behaviour={"duration": "2m"})
    pipeline.write()
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "jobs.yaml")
    git(tmp_path, "commit", "-qm", "base")
    monkeypatch.chdir(tmp_path)
    pipeline.jobs["transform"]["mode"] = "FULL"
    result, journal, report = run_pipeline(
        cli, pipeline, "--select", "state:modified+", "--base", "HEAD:jobs.yaml"
    )
    assert result.code == 0, result.err
    assert [j["name"] for j in report["jobs"]] == ["transform", "load"]
    assert not journal.executions("extract") and len(journal.executions("transform")) == 1


def test_validate_github_writes_the_pull_requests_changes(cli: Cli, repo: Path) -> None:
    git(repo, "branch", "-q", "-m", "main")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / "jobs.yaml").write_text(changed_12())
    summary = repo / "summary.md"
    pull_request = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_BASE_REF": "main",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = cli("validate", "jobs.yaml", environ=pull_request)
    assert result.code == 0 and result.out == "jobs.yaml: valid (12 jobs in 3 pools)\n"
    written = summary.read_text()
    assert written.startswith(
        "## celonis-runner: changes to `jobs.yaml`\n\nAgainst `origin/main:./jobs.yaml`:"
        " 1 job added, 1 removed, 3 changed;"
    )
    assert "```mermaid\n" in written and "| ➕ added | job | `extract_returns` |" in written
    # on a push, or with --no-github: no summary
    summary.unlink()
    cli("validate", "jobs.yaml", environ={**pull_request, "GITHUB_EVENT_NAME": "push"})
    cli("validate", "jobs.yaml", "--no-github", environ=pull_request)
    assert not summary.exists()
    # a base branch that was not fetched: said, and validate's verdict unchanged
    result = cli("validate", "jobs.yaml", environ={**pull_request, "GITHUB_BASE_REF": "dev"})
    assert result.code == 0
    assert "celonis-runner: warning: not compared with `origin/dev:./jobs.yaml`" in result.err
    assert "fetch-depth: 0" in summary.read_text()


def test_diff_github_notices_and_step_summary(cli: Cli, repo: Path) -> None:
    (repo / "jobs.yaml").write_text(changed_12())
    summary = repo / "summary.md"
    result = cli(
        "diff",
        "HEAD:jobs.yaml",
        "--github",
        environ={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.code == 0
    items, returns = line_of(NEW_12, "extract_items"), line_of(NEW_12, "extract_returns")
    assert (
        f"::notice file=jobs.yaml,line={items},title=celonis-runner%3A job extract_items changed::"
        "mode: DELTA -> FULL\n" in result.err
    )
    assert (
        f"::notice file=jobs.yaml,line={returns},title=celonis-runner%3A job extract_returns"
        " added::job extract_returns added\n" in result.err
    )
    assert summary.read_text().startswith("## celonis-runner: changes to `jobs.yaml`")


def test_compare_models_directly(tmp_path: Path) -> None:
    base = tmp_path / "a.yaml"
    new = tmp_path / "b.yaml"
    base.write_text(manifest_text(JOBS_12, {}))
    text = manifest_text(JOBS_12, {}).replace(
        "version: 1\n", "version: 1\ndefaults: {timeout: 30m, if_running: adopt}\n"
    )
    new.write_text(text.replace(uid("pool-crm"), uid("pool-crm2")))
    diff = compare(load_manifest(base, {}), load_manifest(new, {}))
    # defaults reach every job; the pool's new id reaches its jobs' pool_id
    assert [c.name for c in diff.changed][:1] == ["crm"]
    jobs = {c.name: {f.field: (f.old, f.new) for f in c.fields} for c in diff.changed[1:]}
    assert set(jobs) == set(JOBS_12)
    assert jobs["extract_orders"] == {"timeout": (14400.0, 1800.0), "if_running": ("wait", "adopt")}
    assert jobs["extract_accounts"]["pool_id"] == (uid("pool-crm"), uid("pool-crm2"))
    assert diff.modified_jobs == frozenset(JOBS_12) and diff.downstream == ()


def test_subset_keys_are_compared(tmp_path: Path) -> None:
    body = textwrap.dedent(
        f"""\
        version: 1
        pools: {{sap: {{id: {uid("p")}}}}}
        jobs:
          a: {{pool: sap, id: {uid("a")}{{}}}}
        """
    )
    base, new = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text(body.replace("{}", ""))
    new.write_text(body.replace("{}", ", transformations: [Orders]"))
    [change] = compare(load_manifest(base, {}), load_manifest(new, {})).changed
    assert [(f.field, f.old, f.new) for f in change.fields] == [
        ("transformations", "all", ["Orders"])
    ]
