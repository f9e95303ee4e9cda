"""The package keeps the shape `make lint` enforces: no function over 60 lines, none over radon
complexity 10 (the checkers in .ci/ are tested here, since a checker
that finds nothing proves nothing)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _checker(name: str = "check_function_length"):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
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


def _complexity_checker():  # type: ignore[no-untyped-def]
    pytest.importorskip("radon")  # in the lint extra; `make test-lowest` installs test and tls only
    return _checker("check_complexity")


# radon counts each boolean operator and a comprehension's for and if, and a nested function on
# its own: 11 for `tangled` (ruff's C901, mccabe, says 4), 8 for `inner`.
_TANGLED = """
class Box:
    def tangled(self, a, b, c, items):
        if a and b or c:
            return [i for i in items if i and a]
        if a or b or c and a:
            return 1
        def inner(x):
            return x or a or b or c or x and a and b and c
        return inner
"""


def test_the_complexity_checker_counts_as_radon_and_fails_over_the_limit(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(_TANGLED + "\n\ndef simple(a):\n    return a or 1\n")
    checker = _complexity_checker()
    counted = {name: n for _, _, name, n in checker.complexities(tmp_path)}
    assert counted == {"Box.tangled": 11, "Box.tangled.inner": 8, "simple": 2}
    found = checker.problems([tmp_path], 10, set())
    assert found == [f"{tmp_path.as_posix()}/m.py:3: Box.tangled has complexity 11 (limit 10)"]
    assert checker.problems([tmp_path], 11, set()) == []


def test_the_complexity_allowlist_lets_listed_functions_through_and_may_only_shrink(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.py").write_text(_TANGLED)
    checker = _complexity_checker()
    key = f"{tmp_path.as_posix()}/m.py:Box.tangled"
    assert checker.problems([tmp_path], 10, {key}) == []
    assert "is allowed over 11 but is 11" in checker.problems([tmp_path], 11, {key})[0]
    assert "no such function" in checker.problems([tmp_path], 10, {key, key + "_gone"})[0]


def test_the_complexity_checker_script_exits_1_on_a_complex_function_and_0_on_simple_ones(
    tmp_path: Path,
) -> None:
    pytest.importorskip("radon")
    script = [sys.executable, str(ROOT / ".ci" / "check_complexity.py"), "--max", "10"]
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "m.py").write_text("def simple(a):\n    return a or 1\n")
    assert subprocess.run([*script, str(tmp_path / "simple")]).returncode == 0
    (tmp_path / "complex").mkdir()
    (tmp_path / "complex" / "m.py").write_text(_TANGLED)
    done = subprocess.run([*script, str(tmp_path / "complex")], capture_output=True, text=True)
    assert done.returncode == 1 and "Box.tangled has complexity 11" in done.stdout


def test_no_function_in_the_package_is_over_10_as_radon_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checker = _complexity_checker()
    monkeypatch.chdir(ROOT)
    assert checker.problems([Path("runner")], 10, checker.read_allowlist(None)) == []
