"""Fail when a function or method in the given folders is more complex than the limit, counted
the way radon counts (ruff's mccabe leaves out boolean operators and comprehension conditions).
Every function is counted on its own, methods and nested functions included. `make lint` runs
it on runner/ with the limit of 10 and .ci/complexity-allowlist.txt.

The allow-list names `path:function` pairs (as this script prints them) that may exceed the
limit. An entry that no longer exceeds it, or no longer exists, is an error too: the list may
only shrink."""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit_ast

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function under `node`, with its dotted name (`Class.method`, `outer.inner`)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (*_FUNCTIONS, ast.ClassDef)):
            name = prefix + child.name
            if isinstance(child, _FUNCTIONS):
                yield name, child
            yield from _functions(child, name + ".")
        else:
            yield from _functions(child, prefix)


def complexities(root: Path) -> Iterator[tuple[str, int, str, int]]:
    """(path, line, function, complexity) of every function in the modules under `root`."""
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, node in _functions(tree):
            (block,) = cc_visit_ast(ast.Module(body=[node], type_ignores=[]))
            yield path.as_posix(), block.lineno, name, block.complexity


def read_allowlist(path: Path | None) -> set[str]:
    if path is None:
        return set()
    lines = (
        line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
    )
    return {line for line in lines if line}


def problems(folders: list[Path], limit: int, allowed: set[str]) -> list[str]:
    found, seen = [], set()
    for folder in folders:
        for path, line, name, complexity in complexities(folder):
            key = f"{path}:{name}"
            seen.add(key)
            if complexity > limit and key not in allowed:
                found.append(f"{path}:{line}: {name} has complexity {complexity} (limit {limit})")
            elif complexity <= limit and key in allowed:
                found.append(
                    f"{key} is allowed over {limit} but is {complexity}: remove it from the allow-list"
                )
    found += [
        f"{key} is in the allow-list but no such function exists: remove it"
        for key in sorted(allowed - seen)
    ]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--max", type=int, default=10)
    parser.add_argument("--allowlist", type=Path, help="a file of `path:function` lines")
    args = parser.parse_args()
    found = problems(args.folders, args.max, read_allowlist(args.allowlist))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
