"""Problems found in a manifest, and how they are printed (text, JSON, GitHub annotations)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, TextIO

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """One line, whatever the file contained: control characters are shown escaped."""
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        label = " warning:" if self.severity == "warning" else ""
        return printable(f"{where}:{label}{field} {self.message}")


def printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def format_path(path: Sequence[str | int]) -> str:
    """`jobs.transform_o2c.depends_on[0]` from ('jobs', 'transform_o2c', 'depends_on', 0)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or nothing."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def errors_of(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path, p.message))


def write_text(problems: Sequence[Problem], stream: TextIO) -> None:
    for problem in problems:
        stream.write(problem.render() + "\n")


def write_json(problems: Sequence[Problem], stream: TextIO) -> None:
    json.dump([asdict(p) for p in problems], stream, indent=2)
    stream.write("\n")


def write_github(problems: Sequence[Problem], stream: TextIO) -> None:
    """GitHub Actions workflow commands, so problems show on the pull request's diff."""
    for p in problems:
        text = printable((f"{p.path}: " if p.path else "") + p.message)
        stream.write(
            f"::{p.severity} file={_escape_property(p.file)},line={p.line or 1},"
            f"col={p.column or 1},title=celonis-runner::{_escape_data(text)}\n"
        )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
