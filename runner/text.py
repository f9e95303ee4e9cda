"""Text from outside (Celonis names, log lines, messages; manifest values) made safe to show.

Such text is data, never a command: not to the terminal (ESC and BEL
sequences set window titles, write the clipboard through OSC 52, move the
cursor), not to GitHub Actions (a line of stdout or stderr that starts with
`::` after spaces is a workflow command: `::error ...`, `::stop-commands::`),
and never a crash (a lone surrogate such as "\\ud800", which JSON can carry,
cannot be encoded as UTF-8). Every output goes through one of these.
"""

from __future__ import annotations

import re

COMMAND_PREFIX = "::"
"""What starts a GitHub Actions workflow command (after leading whitespace)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(char: str) -> str:
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """`text` on one line of printable characters: each other character (line breaks, tabs,
    ESC, BEL, C1 controls, bidi overrides, a lone surrogate) as its Python escape (`\\n`,
    `\\x1b`, `\\u202e`, `\\ud800`)."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) for c in text)


def _defused(line: str) -> str:
    """`line` unless it would be a workflow command: then with its first colon escaped."""
    stripped = line.lstrip()
    if stripped.startswith(COMMAND_PREFIX):
        return line[: len(line) - len(stripped)] + "\\x3a" + stripped[1:]
    return line


def inert(text: str) -> str:
    """`printable(text)` that is no workflow command either: a leading `::` (after spaces)
    has its first colon escaped (`\\x3a:error::...`). For text that may start a line."""
    return _defused(printable(text))


def inert_lines(text: str) -> str:
    """`text` with its line breaks kept (as `\\n`) and every line `inert`: for a block that
    shows a message as Celonis wrote it (the step summary's failure, an annotation)."""
    return "\n".join(inert(line) for line in text.splitlines())


_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
"""Controls (C0 but tab and line feed, DEL, C1), Unicode line separators, bidi overrides,
surrogates and non-characters."""
_LINE_BREAK = re.compile("\r\n?")


def replaced(text: str) -> str:
    """`text` for a file whose readers want characters, not escapes (XML, HTML): line breaks
    as `\\n`, each unsafe character (see `_UNSAFE`) as U+FFFD, and no line a workflow command
    (a CI step may print the file)."""
    clean = _UNSAFE.sub("\ufffd", _LINE_BREAK.sub("\n", text))
    if COMMAND_PREFIX not in clean:
        return clean
    return "\n".join(_defused(line) for line in clean.split("\n"))


def json_safe(text: str) -> str:
    """JSON text (as `json.dumps(..., ensure_ascii=False)` writes it) with every unsafe
    non-ASCII character written as a `\\uXXXX` escape: JSON only escapes the C0 controls,
    and a lone surrogate cannot be encoded. Such characters occur only inside strings."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def encodable(text: str) -> str:
    """`text` with each lone surrogate as its escape (`\\ud800`), so it can be written as
    UTF-8; everything else as it is. For texts every output shows (a run's reasons)."""
    if not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: _escaped(m.group()), text)
