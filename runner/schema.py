"""The published JSON Schemas (`schema/` at the top of the repository, `runner/schema/` in the wheel)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = "jobs.schema.json"
REPORT_SCHEMA = "report.schema.json"

_SOURCE_TREE = Path(__file__).resolve().parent.parent / "schema"


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
