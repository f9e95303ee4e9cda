"""Benchmark: `celonis-runner diff` of a 10,000-job manifest against itself with one change,
against `celonis-runner validate` of one of the two files, measured in the same run.

The manifest is validate.py's generator (20 pools, anchors, `url:` jobs; seeded); the
change is one job's expected_duration. Each command runs in a fresh subprocess (interpreter
start and imports count for both), alternating, best of N:

  baseline: python -m runner validate NEW
  ours:     python -m runner diff BASE NEW --format json

It prints both times and the ratio diff/validate (target <= 2.0: diff validates both files,
so the comparison itself must cost less than a process start), checks that the diff names
exactly the one change, and splits diff's in-process time (checking both files, comparing).

Run:  .venv/bin/python bench/diff.py [--jobs 10000] [--pools 20] [--runs 5] [--strict]
Exit: 0 done; 1 the diff was wrong, or with --strict the target was missed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import machine
from validate import generate_manifest, run_checked, timed_run

TARGET_RATIO = 2.0


def one_change(text: str) -> tuple[str, str]:
    """The text with the first extraction's expected_duration changed, and that job's name."""
    match = re.search(r"^  (\S+):\n(?:    .*\n)*?    expected_duration: (\d+)m$", text, re.M)
    assert match is not None, "the generator wrote no expected_duration"
    minutes = int(match.group(2)) + 1
    start, end = match.span(2)
    return text[:start] + str(minutes) + text[end:], match.group(1)


def in_process(base: Path, new: Path, runs: int) -> tuple[float, float]:
    """(checking both files, comparing the models), seconds, best of `runs`, warm."""
    from runner.manifest.diff import compare
    from runner.manifest.loader import check_manifest

    limit = max(base.stat().st_size, new.stat().st_size) + 1
    best = (float("inf"), float("inf"))
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        models = [check_manifest(p, {}, strict_env=False, max_bytes=limit) for p in (base, new)]
        checked = time.perf_counter()
        before, after = models[0].manifest, models[1].manifest
        assert before is not None and after is not None
        compare(before, after)
        done = time.perf_counter()
        if done - started < sum(best):
            best = (checked - started, done - checked)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (best counts)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        base, new = Path(tmp) / "base.jobs.yaml", Path(tmp) / "jobs.yaml"
        text = generate_manifest(args.jobs, args.pools)
        changed, job = one_change(text)
        base.write_text(text, encoding="utf-8")
        new.write_text(changed, encoding="utf-8")
        size = str(len(changed.encode()) + 1)
        print(f"manifest: {args.jobs:,} jobs in {args.pools} pools, {len(text):,} bytes")
        print(f"the change: {job}'s expected_duration")
        validate = [sys.executable, "-m", "runner", "validate", "--max-size", size, str(new)]
        diff = [sys.executable, "-m", "runner", "diff", str(base), str(new), "--max-size", size]
        diff += ["--format", "json"]
        validate_times: list[float] = []
        diff_times: list[float] = []
        for _ in range(args.runs):  # alternating: a busy neighbour slows both alike
            spent, said = timed_run(validate, "celonis-runner validate")
            validate_times.append(spent)
            spent, diffed = timed_run(diff, "celonis-runner diff")
            diff_times.append(spent)
        print(f"  validate says: {said.stdout.strip()}")
        found = json.loads(diffed.stdout)
        names = [c["name"] for c in found["changed"]]
        right = names == [job] and not found["added"] and not found["removed"]
        print(f"  diff says: changed {names}, {len(found['downstream'])} jobs downstream")
        ratio = min(diff_times) / min(validate_times)
        met = ratio <= TARGET_RATIO
        print(f"  whole command, best of {args.runs} (alternating), a fresh process each:")
        print(f"    celonis-runner validate NEW     : {min(validate_times):7.3f} s")
        print(f"    celonis-runner diff BASE NEW    : {min(diff_times):7.3f} s")
        print(
            f"    ratio diff/validate             : {ratio:7.2f}"
            f"  (target <= {TARGET_RATIO}: {'met' if met else 'MISSED'})"
        )
        checking, comparing = in_process(base, new, min(args.runs, 3))
        print("  diff in-process (warm, best of runs):")
        print(f"    check both files                : {checking:7.3f} s")
        print(f"    compare the models              : {comparing:7.3f} s")
        run_checked([*diff[:-2], "--format", "text"], "celonis-runner diff --format text")
    if not right:
        print("the diff did not name exactly the one change")
        return 1
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
