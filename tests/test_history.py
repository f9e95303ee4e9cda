"""Learned durations: `plan` uses earlier runs' state files for jobs without expected_duration."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from runner.durations import format_duration
from runner.manifest.loader import load_manifest
from runner.plan.build import build_plan
from runner.runresult.history import learned_durations
from tests.conftest import CliResult
from tests.e2e import Pipeline, run_pipeline

Cli = Callable[..., CliResult]


def _pipeline(tmp_path: Path) -> Pipeline:
    # by job count the critical path is b -> d -> e; by what the jobs took it is a -> c
    p = Pipeline(tmp_path).pool("sap")
    p.job("a", "sap", behaviour={"duration": "40m"})
    p.job("b", "sap", behaviour={"duration": "2m"})
    p.job("c", "sap", "a", behaviour={"duration": "2m"})
    p.job("d", "sap", "b", behaviour={"duration": "2m"})
    p.job("e", "sap", "d", behaviour={"duration": "2m"}, expected_duration="3m")
    return p


def test_plan_uses_the_median_of_earlier_runs_and_says_so(cli: Cli, tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    manifest, _ = p.write()
    runs = str(p.folder / "runs")
    before = cli("plan", str(manifest), "--format", "json", "--state-dir", runs)
    assert json.loads(before.out)["critical_path"]["jobs"] == ["b", "d", "e"]

    result, _, report = run_pipeline(cli, p)
    assert result.code == 0, result.err
    took = {j["name"]: j["duration_seconds"] for j in report["jobs"]}

    plan = cli("plan", str(manifest), "--format", "json", "--state-dir", runs)
    data = json.loads(plan.out)
    learned = {j["name"]: j["learned_seconds"] for j in data["jobs"]}
    assert learned["e"] is None  # it has an expected_duration: that one counts
    for name in "abcd":
        assert abs(learned[name] - took[name]) < 0.01
    assert data["critical_path"]["jobs"] == ["a", "c"]
    assert data["critical_path"]["learned"] == ["a", "c"]
    assert abs(data["critical_path"]["expected_seconds"] - (took["a"] + took["c"])) < 0.01

    text = cli("plan", str(manifest), "--state-dir", runs).out
    # the learned duration as the plan shows it (what the run measured varies with poll timing)
    assert f"took {format_duration(learned['a'])} before*" in text
    assert "* no expected_duration: the median of its successful executions" in text
    assert "Critical path (expected " in text and "a -> c" in text


def _copy(template: dict, folder: Path, run: str, mtime: float, **changes: object) -> None:
    """A saved run made from a real one: `a_took` seconds for job a, in `a_state`, of `manifest`."""
    data = json.loads(json.dumps(template))
    data["run_id"] = run
    job = data["jobs"]["a"]
    job["finished_at"] = job["started_at"] + float(changes.get("a_took", 100))  # type: ignore[arg-type]
    job["state"] = changes.get("a_state", "succeeded")
    if "job_id" in changes:
        job["job_id"] = changes["job_id"]
    if "manifest" in changes:
        data["manifest"]["path"] = data["manifest"]["resolved"] = changes["manifest"]
    path = folder / f"{run}.json"
    path.write_text(json.dumps(data))
    os.utime(path, (mtime, mtime))


def test_median_of_successes_of_this_manifest_from_the_newest_runs(
    cli: Cli, tmp_path: Path
) -> None:
    p = _pipeline(tmp_path)
    run_pipeline(cli, p)
    [saved] = list((p.folder / "runs").glob("*.json"))
    template = json.loads(saved.read_text())
    runs = tmp_path / "history"
    runs.mkdir()
    _copy(template, runs, "r1", 1000, a_took=100)
    _copy(template, runs, "r2", 2000, a_took=300)
    _copy(template, runs, "r3", 3000, a_took=200)
    _copy(template, runs, "r4", 4000, a_took=900, a_state="failed")  # a failure is no sample
    _copy(template, runs, "r5", 5000, a_took=5000, manifest=str(tmp_path / "other.yaml"))
    _copy(template, runs, "r6", 6000, a_took=7000, job_id="ffffffff-0000-0000-0000-000000000000")
    (runs / "r7.json").write_text("{not json")  # damaged: passed over
    os.utime(runs / "r7.json", (7000, 7000))
    manifest = load_manifest(p.folder / "jobs.yaml", {})

    learned = learned_durations(runs, manifest)
    assert (learned["a"].seconds, learned["a"].samples) == (200.0, 3)
    assert "e" not in learned  # it has an expected_duration
    # bounded: only the newest files are read (r7..r3 here: r3 the only success of a)
    assert learned_durations(runs, manifest, limit=5)["a"].samples == 1
    assert learned_durations(tmp_path / "missing", manifest) == {}


def test_build_plan_prefers_expected_duration_to_a_learned_one(tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    manifest_path, _ = p.write()
    manifest = load_manifest(manifest_path, {})
    plan = build_plan(manifest, learned={"a": 60, "b": 600, "c": 60, "d": 600, "e": 9999})
    assert plan.critical_path == ("b", "d", "e")
    assert plan.critical_path_seconds == 600 + 600 + 180  # e's own expected_duration: 3m
    assert dict(plan.learned_seconds) == {"a": 60, "b": 600, "c": 60, "d": 600}
    partial = build_plan(manifest, learned={"a": 60})
    assert partial.critical_path_seconds is None  # not every job has a duration: by count


def test_the_note_says_when_the_critical_path_still_counts_jobs(cli: Cli, tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    p.job("f", "sap", "e", behaviour={"outcome": "FAIL", "duration": "1m"})
    manifest, _ = p.write()
    result, _, _ = run_pipeline(cli, p)
    assert result.code == 1
    text = cli("plan", str(manifest), "--state-dir", str(p.folder / "runs")).out
    assert "Critical path (4 jobs): b -> d -> e -> f" in text
    assert "the critical path counts jobs until every job has a duration (none yet for f:" in text


def test_a_run_still_going_counts_with_its_journal(cli: Cli, tmp_path: Path) -> None:
    p = _pipeline(tmp_path)
    run_pipeline(cli, p)
    [saved] = list((p.folder / "runs").glob("*.json"))
    data = json.loads(saved.read_text())
    done = dict(data["jobs"]["a"])
    data["status"] = "running"
    data["jobs"]["a"] = {**done, "state": "running", "finished_at": None}
    runs = tmp_path / "history"
    runs.mkdir()
    (runs / "r1.json").write_text(json.dumps(data))
    lines = [
        {
            "g": data["generation"],
            "job": "a",
            "data": {**done, "finished_at": done["started_at"] + 60},
        },
        {
            "g": "0123456789abcdef",
            "job": "a",
            "data": {**done, "finished_at": done["started_at"] + 999},
        },
    ]
    (runs / "r1.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines) + '{"g": "tor'
    )
    learned = learned_durations(runs, load_manifest(p.folder / "jobs.yaml", {}))
    assert (learned["a"].seconds, learned["a"].samples) == (60.0, 1)
