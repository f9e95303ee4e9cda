"""`${VAR}` and `${VAR:-default}` in manifest strings; `$${` is a literal `${`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")

Path = tuple[str | int, ...]


def substitute(
    data: Any,
    environ: Mapping[str, str],
    on_missing: Callable[[Path, str], None],
    on_malformed: Callable[[Path, str], None],
    path: Path = (),
) -> Any:
    """A copy of `data` with variables replaced in every string value.

    A variable that is unset and has no default is reported through
    `on_missing` and the string is kept as written.
    """
    if isinstance(data, str):
        return _expand(data, environ, path, on_missing, on_malformed) if "$" in data else data
    if isinstance(data, dict):
        return {
            k: substitute(v, environ, on_missing, on_malformed, (*path, str(k)))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            substitute(v, environ, on_missing, on_malformed, (*path, i)) for i, v in enumerate(data)
        ]
    return data


def _expand(
    text: str,
    environ: Mapping[str, str],
    path: Path,
    on_missing: Callable[[Path, str], None],
    on_malformed: Callable[[Path, str], None],
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
            return environ[name]
        if match.group(2) is not None:
            return match.group(2)
        missing = True
        on_missing(path, name)
        return token

    result = _TOKEN.sub(replace, text)
    return text if missing else result
