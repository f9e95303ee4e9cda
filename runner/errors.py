"""Exit codes and the error types that map to them.

RunnerError                      exit 3 unless a subclass says otherwise
 +-- UsageError                  exit 2: bad command line, bad or missing configuration
 +-- ManifestError               exit 2: the manifest has problems (carries them)
 +-- PlanError                   exit 2: the plan asked for cannot be built (unknown job, limits)
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.problems import Problem


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1
    INVALID = 2
    API_UNUSABLE = 3
    INTERRUPTED = 130
    TERMINATED = 143


class RunnerError(Exception):
    """An expected failure with a message for the user (never a traceback)."""

    exit_code: ExitCode = ExitCode.API_UNUSABLE


class UsageError(RunnerError):
    exit_code = ExitCode.INVALID


class ManifestError(RunnerError):
    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}")


class PlanError(RunnerError):
    """The plan asked for cannot be built: an unknown job or pool selected, a bad limit."""

    exit_code = ExitCode.INVALID
