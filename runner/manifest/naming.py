"""Manifest keys from Celonis names: readable snake_case, valid for the schema, unique.

`init` names pools and jobs after what Celonis calls them. Celonis names are
free text (spaces, punctuation, accents, emoji, the same name twice), while a
manifest key must match `^[A-Za-z_][A-Za-z0-9_.-]*$` and be unique, so each
name is folded to ASCII snake_case and collisions get a suffix.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

MAX_KEY_LENGTH = 60
"""Longer keys are cut at a word boundary: a key is typed on the command line (`--select`)."""

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z0-9])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
VALID_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Plain words YAML 1.1 (PyYAML) reads as booleans or null: as keys they would not be strings.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def snake_case(name: str | None) -> str:
    """`SAP ECC (Production)` -> `sap_ecc_production`, `LoadOrders` -> `load_orders`,
    `Übersicht` -> `ubersicht`; "" when nothing readable is left."""
    if not name:
        return ""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    spaced = _CAMEL.sub("_", folded).lower()
    key = _NOT_WORD.sub("_", spaced).strip("_")
    if len(key) > MAX_KEY_LENGTH:
        cut = key[:MAX_KEY_LENGTH]
        key = (cut.rsplit("_", 1)[0] if "_" in cut else cut).strip("_")
    return key


def base_key(name: str | None, kind: str, celonis_id: str) -> str:
    """A valid key for one pool or job before de-duplication.

    A name with nothing readable in ASCII (`日本語`, `???`, none) becomes
    `{kind}_{first 8 characters of the id}`; one starting with a digit, or a
    word YAML reads as a boolean (`yes`, `off`), gets `{kind}_` in front.
    """
    key = snake_case(name)
    if not key:
        return f"{kind}_{snake_case(celonis_id)[:8] or 'unnamed'}"
    if key[0].isdigit() or key in _YAML_WORDS:
        key = f"{kind}_{key}"
    return key


def unique_keys(wanted: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """`wanted` in order, a repeat suffixed `_2`, `_3`, ... (the first keeps its key); none
    of them one of `taken`."""
    used = set(taken)
    last: dict[str, int] = {}
    """The suffix each key last got: the next repeat starts there (linear, not quadratic, in
    the repeats of one name: 10,000 jobs of one name took 9.5 s)."""
    result: list[str] = []
    for key in wanted:
        n = last.get(key, 1)
        candidate = key if n == 1 else f"{key}_{n}"
        while candidate in used:
            n += 1
            candidate = f"{key}_{n}"
        last[key] = n
        used.add(candidate)
        result.append(candidate)
    return result
