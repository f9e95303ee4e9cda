"""A run as a JUnit XML report, for the test views of Jenkins, GitLab, GitHub and Azure.

One `<testsuite>` per pool, one `<testcase>` per job (classname = pool, name =
job, time = its duration in seconds). It keeps to the common JUnit schema
(Jenkins xunit `junit-10.xsd`; `tests/data/junit.xsd` is the subset checked):

- failed, timed out, cancelled: `<failure type=STATUS message=REASON>` with
  the whole reason (Celonis' ERROR lines) as text;
- the same for a job with `allow_failure`: `<skipped type="allowed_failure">`,
  as pytest writes an expected failure, so the test view agrees with the exit code;
- skipped and not started: `<skipped type=STATUS message=REASON/>`;
- still running in Celonis when the runner stopped: `<error type="running">`;
- unclear (its execute may have started; never settled): `<error type="unclear">`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import UsageError
from runner.files import REPORT_MODE, write_text_atomic
from runner.reports.report import iso
from runner.reports.tasks import task_line
from runner.runresult.model import JobResult, RunResult
from runner.text import replaced

MESSAGE_LIMIT = 1000

_UNSETTLED = {
    "running": "still running in Celonis when the runner stopped; its outcome is unknown",
    "unclear": "its execute may have started in Celonis and no status read settled whether it"
    " did; check the job in Celonis before running it again",
}
"""Report statuses of jobs that may still be running in Celonis, and what JUnit says of them."""


def build_junit(run: RunResult) -> ET.Element:
    root = ET.Element("testsuites", name="celonis-runner")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for number, (pool, jobs) in enumerate(run.by_pool().items()):
        suite = _suite(pool, jobs, run, first_suite=number == 0)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(_span(run.started_at, run.finished_at)))
    return root


def junit_text(run: RunResult) -> str:
    root = build_junit(run)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, run: RunResult) -> None:
    """Written whole or not at all (a temporary file renamed into place); UsageError if it can't be."""
    text = junit_text(run)
    try:
        write_text_atomic(path, text, mode=REPORT_MODE)
    except OSError as exc:
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> UsageError:
    return UsageError(
        f"cannot write the JUnit report to {path}: {exc.strerror or exc};"
        " choose another --junit-xml FILE (the run itself is over: see its summary above)"
    )


def _suite(pool: str, jobs: list[JobResult], run: RunResult, *, first_suite: bool) -> ET.Element:
    suite = ET.Element("testsuite", {"name": pool, **_counts(jobs, run)})
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(pool, jobs, run, first_suite=first_suite):
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    for job in jobs:
        suite.append(_case(job))
    return suite


def _counts(jobs: list[JobResult], run: RunResult) -> dict[str, str]:
    """A suite's attributes: its tests, failures, errors, skips, time and start."""
    starts = [j.started_at for j in jobs if j.started_at is not None]
    ends = [j.finished_at for j in jobs if j.finished_at is not None]
    first = min(starts, default=run.started_at)
    return {
        "tests": str(len(jobs)),
        "failures": str(sum(map(_fails, jobs))),
        "errors": str(sum(j.report_status in _UNSETTLED for j in jobs)),
        "skipped": str(sum(map(_skipped, jobs))),
        "time": _seconds(_span(min(starts), max(ends)) if starts and ends else 0.0),
        "timestamp": datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _fails(job: JobResult) -> bool:
    return job.state.is_unsuccessful and not job.allow_failure


def _skipped(job: JobResult) -> bool:
    """Not run, or a failure the manifest allows (JUnit has no "allowed" outcome)."""
    return job.state.not_run or job.allowed_failure


def _properties(
    pool: str, jobs: list[JobResult], run: RunResult, *, first_suite: bool
) -> list[tuple[str, str]]:
    """Property names are unique in the whole file: xunitparser (and so readers built on it)
    gathers every suite's properties in one mapping and stops at a name seen twice. Task
    results are properties too: the JUnit schema allows properties on a suite only."""
    found = [(f"{pool}.pool_id", jobs[0].pool_id if jobs else "")]
    if first_suite:
        found += [("run_id", run.run_id), ("manifest", run.manifest)]
        found += [("environment", run.environment)] if run.environment else []
    for job in jobs:
        for number, task in enumerate(job.tasks or (), start=1):
            found.append((f"{job.name}.task.{number}", _message(task_line(task))))
    return found


def _case(job: JobResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=job.pool,
        name=job.name,
        time=_seconds(job.duration or 0.0),
    )
    _outcome(case, job)
    out = ET.SubElement(case, "system-out")
    out.text = _clean("\n".join(_case_lines(job)))
    return case


def _outcome(case: ET.Element, job: JobResult) -> None:
    """The case's skipped, failure or error element (none for a success)."""
    status = job.report_status
    reason = job.error or status.replace("_", " ")
    if job.allowed_failure:
        ET.SubElement(case, "skipped", type="allowed_failure", message=_message(reason))
    elif job.state.is_unsuccessful:
        failure = ET.SubElement(case, "failure", type=status, message=_message(reason))
        failure.text = _clean(reason)
    elif job.state.not_run:
        ET.SubElement(case, "skipped", type=status, message=_message(reason))
    elif status in _UNSETTLED:
        error = ET.SubElement(case, "error", type=status, message=_UNSETTLED[status])
        error.text = _clean(reason)


def _case_lines(job: JobResult) -> list[str]:
    return [
        f"status: {job.report_status}",
        f"pool: {job.pool} ({job.pool_id})",
        f"job id: {job.job_id}",
        f"mode: {job.mode}",
        f"attempts: {job.attempts}",
        f"started: {iso(job.started_at) or '-'}",
        f"finished: {iso(job.finished_at) or '-'}",
        *([f"reason: {job.error}"] if job.error else []),
        *(f"task: {task_line(task)}" for task in job.tasks or ()),
    ]


def _message(reason: str) -> str:
    """One line: attributes lose their line breaks in many consumers."""
    text = " ".join(line.strip() for line in reason.splitlines() if line.strip())
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return _clean(text)


def _clean(text: str) -> str:
    """Characters XML 1.0 does not allow (even escaped) and other controls as U+FFFD;
    Celonis' log lines could hold any (`runner.text.replaced`)."""
    return replaced(text)


def _span(start: float, end: float | None) -> float:
    return max(0.0, (end if end is not None else start) - start)


def _seconds(value: float) -> str:
    return f"{value:.3f}"
