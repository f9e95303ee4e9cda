"""`${VAR}` and `${VAR:-default}` in manifest strings; `$${` is a literal `${`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")

Path = tuple[str | int, ...]


def _ignore(path: Path, name: str) -> None:
    pass


def substitute(
    data: Any,
    environ: Mapping[str, str],
    on_missing: Callable[[Path, str], None],
    on_malformed: Callable[[Path, str], None],
    path: Path = (),
    on_used: Callable[[Path, str], None] = _ignore,
) -> Any:
    """A copy of `data` with variables replaced in every string value.

    A variable that is unset and has no default is reported through
    `on_missing` and the string is kept as written. Every variable whose
    value went into a string is reported through `on_used`, so that messages
    about that string can name the variable instead of showing its value.
    """
    if isinstance(data, str):
        if "$" not in data:
            return data
        return _expand(data, environ, path, on_missing, on_malformed, on_used)
    if isinstance(data, dict):
        return {
            k: substitute(v, environ, on_missing, on_malformed, (*path, str(k)), on_used)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            substitute(v, environ, on_missing, on_malformed, (*path, i), on_used)
            for i, v in enumerate(data)
        ]
    return data


def has_reference(text: str) -> bool:
    """True when `text` holds a `${...}` that substitution would replace (not `$${`)."""
    return any(match.group(1) for match in _TOKEN.finditer(text))


def _expand(
    text: str,
    environ: Mapping[str, str],
    path: Path,
    on_missing: Callable[[Path, str], None],
    on_malformed: Callable[[Path, str], None],
    on_used: Callable[[Path, str], None],
) -> str:
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            on_malformed(path, text)
            return token
        if name in environ:
            on_used(path, name)
            return environ[name]
        if match.group(2) is not None:
            return match.group(2)
        missing = True
        on_missing(path, name)
        return token

    result = _TOKEN.sub(replace, text)
    return text if missing else result
