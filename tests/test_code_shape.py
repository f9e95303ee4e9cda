"""The package keeps the shape `make lint` enforces: no function over 60 lines (the checker in
.ci/ is tested here, since a checker that finds nothing proves nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "check_function_length", ROOT / ".ci" / "check_function_length.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_length_checker_finds_a_long_function_and_counts_decorators(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    source = "import functools\n\n@functools.cache\ndef long():\n" + body + "\n\n"
    (tmp_path / "m.py").write_text(source + "def short():\n    return 1\n")
    found = _checker().long_functions(tmp_path, 60)
    assert len(found) == 1 and "long is 61 lines (limit 60)" in found[0]


def test_no_function_in_the_package_is_over_60_lines() -> None:
    assert _checker().long_functions(ROOT / "runner", 60) == []
