"""The published JSON Schemas (`schema/` at the top of the repository, `runner/schema/` in the wheel),
one cached validator per schema, and the one translator from schema errors to readable problems.

The manifest, the emulator's scenario and the state file all check their data
with `schema_issues`, so a schema error reads the same wherever it comes from.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from runner.problems import did_you_mean

MANIFEST_SCHEMA = "jobs.schema.json"
REPORT_SCHEMA = "report.schema.json"

_SOURCE_TREE = Path(__file__).resolve().parent.parent / "schema"

PathT = tuple[str | int, ...]
Shown = Callable[[PathT, object], str]
"""How a value is quoted in a message (`got ...`): repr by default; callers hide secrets."""


def schema_text(name: str = MANIFEST_SCHEMA) -> str:
    """The schema file's text: from the installed package, else from the source tree."""
    packaged = resources.files("runner").joinpath("schema", name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_SOURCE_TREE / name).read_text(encoding="utf-8")


@cache
def load_schema(name: str = MANIFEST_SCHEMA) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text(name))
    return loaded


@cache
def validator(
    name: str, *, resolved: bool = False, definition: str | None = None
) -> jsonschema.protocols.Validator:
    """The validator of schema `name` (or of its `$defs/<definition>`), built once.

    `resolved=True` is for data whose `${VAR}` references were already
    replaced: the schema's `$defs/var` and `$defs/var_*` (what a reference looks like)
    then match nothing, so a value must be valid as it is.
    """
    schema = copy.deepcopy(load_schema(name))
    defs = schema.get("$defs", {})
    if resolved:  # every kind of reference (`var`, `var_uuid`, ...)
        for key in [k for k in defs if k == "var" or k.startswith("var_")]:
            defs[key] = False
    cls = jsonschema.validators.validator_for(schema)
    inlined = _inline_refs(schema, defs)
    if definition is not None:
        inlined = {"$schema": schema.get("$schema"), **inlined["$defs"][definition]}
    return cls(inlined)


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """`node` with every local `{"$ref": "#/$defs/x"}` replaced by the definition itself.

    Resolving a reference costs more than checking most values (a third of the time at
    10,000 jobs); the published schemas are not recursive, so inlining ends. Keys beside
    the reference (title, description) are kept; the definition's own keys win.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = _local_ref(node, defs)
    if ref is not None:
        target = _inline_refs(defs[ref], defs)
        if not isinstance(target, dict):
            return target  # a boolean schema
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**rest, **target}
    inlined = {key: _inline_refs(value, defs) for key, value in node.items()}
    return _without_false_branches(inlined)


def _local_ref(node: Mapping[str, Any], defs: Mapping[str, Any]) -> str | None:
    """The name of the definition `node` refers to (`{"$ref": "#/$defs/NAME"}`), or None."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
        return ref[8:]
    return None


def _without_false_branches(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf` without its `false` branches (the `${VAR}` ones once variables are resolved);
    a single branch left is merged into `node`, which keeps its `x-message`. Checking a
    value then costs one branch, not two or three."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or False not in branches:
        return node
    kept = [b for b in branches if b is not False]
    if len(kept) == 1 and _mergeable(kept[0], node):
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return {**rest, **kept[0]}
    return {**node, "anyOf": kept} if kept else {**node, "anyOf": [False]}


def _mergeable(branch: object, node: Mapping[str, Any]) -> bool:
    """Whether `branch` is a schema that shares no key with `node`."""
    return isinstance(branch, dict) and not set(branch) & set(node)


@dataclass(frozen=True)
class SchemaIssue:
    """One readable schema problem: where (`path`; `key`: at the key, not the value) and what."""

    path: PathT
    message: str
    key: bool = False


def default_shown(path: PathT, value: object) -> str:
    return repr(value)


def schema_issues(
    data: Any,
    name: str,
    *,
    resolved: bool = False,
    shown: Shown = default_shown,
    definition: str | None = None,
) -> list[SchemaIssue]:
    """Every problem of `data` against schema `name` (or its `$defs/<definition>`), as
    messages a person can act on."""
    issues: list[SchemaIssue] = []
    for error in validator(name, resolved=resolved, definition=definition).iter_errors(data):
        issues.extend(_translate(error, shown))
    return issues


def _best_branch(error: ValidationError) -> ValidationError | None:
    """The error of the branch the value was meant for: an `X or null` value that is not null
    was meant to be an X, so the null branch's complaint says nothing."""
    context = list(error.context or [])
    meant = [e for e in context if not (e.validator == "type" and e.validator_value == "null")]
    best: ValidationError | None = best_match(meant or context)
    return best


def _translate(error: ValidationError, shown: Shown) -> Iterator[SchemaIssue]:
    path: PathT = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        yield from _unknown_keys(path, schema, error.instance)
    elif _about_a_key(error):  # the key itself, on its own line (not the mapping's first key)
        key = str(error.instance)
        yield SchemaIssue((*path, key), _simple_message(error, schema, repr(key)), key=True)
    elif kind == "propertyNames":
        key = str(error.instance)
        message = schema.get("propertyNames", {}).get("x-message") or error.message
        yield SchemaIssue((*path, key), f"{message}, got '{key}'", key=True)
    elif kind == "required":
        missing = re.match(r"'([^']+)'", error.message)
        yield SchemaIssue(path, f"missing required key '{missing.group(1) if missing else '?'}'")
    elif kind in ("anyOf", "oneOf"):
        yield from _branch_issues(error, schema, path, shown)
    else:
        yield SchemaIssue(path, _simple_message(error, schema, shown(path, error.instance)))


def _about_a_key(error: ValidationError) -> bool:
    """An error of a mapping's `propertyNames`: jsonschema checks each key as the instance
    and keeps the mapping's path, so the key is the instance."""
    schema_path = list(error.relative_schema_path)
    return len(schema_path) >= 2 and schema_path[-2] == "propertyNames"


def _branch_issues(
    error: ValidationError, schema: Mapping[str, Any], path: PathT, shown: Shown
) -> Iterator[SchemaIssue]:
    """An `anyOf`/`oneOf` error: its x-message, else the error of the branch meant."""
    custom = schema.get("x-message")
    if custom:
        got = "" if isinstance(error.instance, dict) else f", got {shown(path, error.instance)}"
        yield SchemaIssue(path, f"{custom}{got}")
    elif (best := _best_branch(error)) is not None:
        yield from _translate(best, shown)
    else:
        yield SchemaIssue(path, _simple_message(error, schema, shown(path, error.instance)))


def _unknown_keys(
    path: PathT, schema: Mapping[str, Any], instance: Mapping[Any, Any]
) -> Iterator[SchemaIssue]:
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    for key in instance:
        if key in known or any(p.search(str(key)) for p in patterns):
            continue
        hint = did_you_mean(str(key), known)
        where = f"; known keys: {', '.join(known)}" if not hint and known else ""
        yield SchemaIssue((*path, str(key)), f"unknown key '{key}'{hint}{where}", key=True)


def _simple_message(error: ValidationError, schema: Mapping[str, Any], got: str) -> str:
    """The message of an error about one value (not about a mapping's keys)."""
    kind = error.validator
    custom = schema.get("x-message")
    if custom and kind == "not":
        return str(custom)
    if kind == "enum":
        return _enum_message(error, schema, got)
    if kind == "const":
        return f"must be {schema.get('const')!r}, got {got}"
    if custom and kind in ("pattern", "type", "minimum", "maximum", "format", "exclusiveMinimum"):
        return f"{custom}, got {got}"
    if kind == "type":
        return f"must be of type {_type_names(schema.get('type'))}, got {got}"
    if kind in _FIXED:
        return _FIXED[kind]
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {schema.get(kind)}, got {got}"
    return _reworded(error, got)


def _reworded(error: ValidationError, got: str) -> str:
    """jsonschema's own text, which starts with the value's repr: shown the caller's way."""
    text = error.message
    value = repr(error.instance)
    return got + text[len(value) :] if text.startswith(value) else text


def _enum_message(error: ValidationError, schema: Mapping[str, Any], got: str) -> str:
    allowed = [str(v) for v in schema.get("enum", [])]
    hint = did_you_mean(str(error.instance).upper(), allowed) if allowed else ""
    return f"must be one of {', '.join(allowed)}, got {got}{hint}"


_FIXED = {
    "uniqueItems": "lists the same entry twice",
    "minProperties": "must not be empty",
    "minItems": "must not be empty",
}


_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}


def _type_names(value: object) -> str:
    if isinstance(value, list):
        return " or ".join(str(v) for v in value)
    return str(value)
