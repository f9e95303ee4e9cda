"""Problems found in a manifest, and how they are printed (text, JSON, GitHub annotations)."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, TextIO

from runner.text import printable

Severity = Literal["error", "warning"]

COMMAND_LINE = "command line"
"""The `file` of a problem with an option's value (`--tasks`): no line of a file to point at."""


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
    return Suggestions(candidates).hint(word)


class Suggestions:
    """Did-you-mean over a fixed set of names, asked many times.

    Comparing a word with every name costs a second per hundred words at
    10,000 names. Above SCAN_LIMIT names, only the SHORTLIST names sharing the
    most letter pairs with the word are compared (a typo keeps nearly all of
    them), through an index of letter pairs built once.
    """

    SCAN_LIMIT = 1000
    SHORTLIST = 50

    def __init__(self, candidates: Iterable[str]) -> None:
        self.names = list(dict.fromkeys(candidates))
        self._index: dict[str, list[int]] | None = None

    def hint(self, word: str) -> str:
        matches = difflib.get_close_matches(word, self._shortlist(word), n=1, cutoff=0.6)
        return f" (did you mean '{matches[0]}'?)" if matches else ""

    def _shortlist(self, word: str) -> list[str]:
        if len(self.names) <= self.SCAN_LIMIT:
            return self.names
        if self._index is None:
            self._index = {}
            for number, name in enumerate(self.names):
                for pair in _pairs(name):
                    self._index.setdefault(pair, []).append(number)
        shared: Counter[int] = Counter()
        for pair in _pairs(word):
            shared.update(self._index.get(pair, ()))
        return [self.names[number] for number, _ in shared.most_common(self.SHORTLIST)]


def _pairs(name: str) -> set[str]:
    padded = f"^{name}$"
    return {padded[i : i + 2] for i in range(len(padded) - 1)}


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
        where = (
            ""
            if p.file == COMMAND_LINE
            else f"file={_escape_property(p.file)},line={p.line or 1},col={p.column or 1},"
        )
        stream.write(f"::{p.severity} {where}title=celonis-runner::{_escape_data(text)}\n")


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
