"""The names in a manifest that a command line can take, for the completion scripts.

The scripts call `celonis-runner completion --names FILE --names-for FORM --word=WORD` at each
Tab, so this reads as little as it can, fast and leniently: the YAML event stream up to the end
of the document (no Python objects built, no alias expanded, no schema, no environment
variable), the keys of its top-level `jobs` and `pools` mappings. A manifest that cannot be read
gives no names; it never raises for a bad file (the caller prints nothing then).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)

FORMS = ("name", "select", "tasks", "env")
"""What a word holds: a job's `name` (`logs JOB`), a selector (`--select`, `--exclude`: a name,
`+name`, `pool:POOL`, `state:modified`, comma-separated), or `tasks` (`--tasks JOB:TASKS`,
whose JOB part is completed as `JOB:`), or an `env`ironment's name (`--env`)."""
STATE_SELECTOR = "state:modified"
MAX_BYTES = 10 * 1024 * 1024
"""As `--max-size`'s default: a bigger file is not read for completion."""
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
"""A job or pool name as the schema allows it; any other key is left out (so every candidate
is safe to hand to a shell)."""

try:  # libyaml's parser: several times faster
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how pyyaml was built
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Names:
    jobs: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()


def read_names(path: Path) -> Names:
    """The job and pool names of the manifest at `path`; none when it cannot be read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return Names()
        text = path.read_bytes().decode("utf-8-sig")
        sections = _sections(yaml.parse(text, Loader=_Loader))
    except (OSError, ValueError, yaml.YAMLError, RecursionError, RuntimeError, StopIteration):
        return Names()
    return Names(
        sections.get("jobs", ()), sections.get("pools", ()), sections.get("environments", ())
    )


def candidates(form: str, names: Names, word: str) -> list[str]:
    """What `word` (as typed so far) may become, each whole, in `form` (one of FORMS); nothing
    without jobs (no manifest)."""
    if not names.jobs:
        return []
    if form == "env":
        found = list(names.environments)
    elif form == "tasks":
        found = [] if ":" in word else [f"{job}:" for job in names.jobs]
    elif form == "select":
        found = _selectors(names, word)
    else:
        found = list(names.jobs)
    return [c for c in found if c.startswith(word)]


def _selectors(names: Names, word: str) -> list[str]:
    """The selectors for the last of comma-separated ones, with what precedes it kept; after a
    leading `+` only what takes one (a job, `state:modified`)."""
    head = word[: word.rfind(",") + 1]
    if word[len(head) :].startswith("+"):
        return [f"{head}+{s}" for s in (*names.jobs, STATE_SELECTOR)]
    pools = (f"pool:{p}" for p in names.pools)
    return [head + s for s in (*names.jobs, *pools, STATE_SELECTOR)]


def _sections(events: Iterator[Event]) -> dict[str, tuple[str, ...]]:
    """The keys of the top-level `jobs`, `pools` and `environments` mappings, read from the
    event stream; the
    whole document is walked, so a syntax error anywhere raises."""
    for event in events:
        if isinstance(event, MappingStartEvent):
            return _root(events)
        if isinstance(event, NodeEvent):  # a list or a scalar: no manifest
            return {}
    return {}


def _root(events: Iterator[Event]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for key, value in _pairs(events):
        if key in ("jobs", "pools", "environments") and isinstance(value, MappingStartEvent):
            found[key] = _keys(events)
        else:
            _skip(events, value)
    return found


def _keys(events: Iterator[Event]) -> tuple[str, ...]:
    keys: dict[str, None] = {}
    for key, value in _pairs(events):
        _skip(events, value)
        if key is not None:
            keys[key] = None
    return tuple(keys)


def _pairs(events: Iterator[Event]) -> Iterator[tuple[str | None, Event]]:
    """(key, the value's first event) of the mapping whose start was just read; a key that is
    not a name is None. The caller reads past each value before asking for the next pair."""
    while not isinstance(key := next(events), CollectionEndEvent):
        text = key.value if isinstance(key, ScalarEvent) else None
        _skip(events, key)
        yield (text if text is not None and NAME.match(text) else None), next(events)


def _skip(events: Iterator[Event], first: Event) -> None:
    """Read past the node that starts with `first`."""
    depth = 1 if isinstance(first, CollectionStartEvent) else 0
    while depth:
        event = next(events)
        if isinstance(event, CollectionStartEvent):
            depth += 1
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
