"""Who may import whom inside runner/ (docs/INTERFACES.md, "Packages and imports").

Every module is parsed with `ast`: each `import` and `from ... import` counts, also inside a
function or under `if TYPE_CHECKING:` (a deferred import still ties the two together). The
parts and the pairs that must never meet are the project's architecture (its "is" paths and
"never" pairs), with runner/preflight/ and the top-level helpers added."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "runner"

PARTS: Mapping[str, tuple[str, ...]] = {
    "Face": ("runner/cli.py", "runner/__main__.py", "runner/commands/", "runner/completion/"),
    "Manifest": ("runner/manifest/", "runner/schema.py", "runner/urls.py"),
    "Plan": ("runner/plan/",),
    "Preflight": ("runner/preflight/",),
    "Engine": ("runner/execution/",),
    "Reports": ("runner/reports/",),
    "Results": ("runner/runresult/",),
    "Api": ("runner/api/", "runner/target.py", "runner/joblogs.py"),
    "Lifecycle": ("runner/lifecycle.py",),
    "Emulator": ("runner/emulator/",),
    "Airflow": ("runner/airflow/",),
    "Base": (
        "runner/__init__.py",
        "runner/clock.py",
        "runner/logs.py",
        "runner/errors.py",
        "runner/files.py",
        "runner/terminal.py",
        "runner/text.py",
        "runner/problems.py",
        "runner/durations.py",
        "runner/shared_types.py",
        "runner/task_records.py",
    ),
}
"""runner/lifecycle.py is a part of its own: the rules of a job's execution, above api/ and used
by the engine and by Airflow alike."""

NEVER: tuple[tuple[str, str, str], ...] = (
    ("Reports", "Engine", "reporters read the run's data, not the engine"),
    ("Manifest", "Api", "validate never loads the HTTP stack"),
    ("Api", "Engine", "the client knows no scheduler"),
    ("Api", "Plan", "the client knows no plan"),
    ("Emulator", "Engine", "the emulator knows nothing of the runner"),
    ("Emulator", "Api", "the emulator shares no code with the client it checks"),
    ("Engine", "Face", "the engine knows no command line"),
    ("Manifest", "Face", "the model knows no command line"),
    ("Airflow", "Face", "the provider knows no command line"),
    ("Plan", "Engine", "the plan reads no engine internals"),
    ("Plan", "Api", "the plan is pure: remote checks live above the client"),
    ("Reports", "Api", "reports render a finished run; they call nothing"),
    ("Base", "Manifest", "the shared ground knows no manifest"),
    ("Base", "Api", "the shared ground knows no client"),
    ("Api", "Preflight", "the client knows nothing of what is checked before a run"),
    ("Plan", "Preflight", "the plan is pure: remote checks live above it"),
    ("Results", "Engine", "the finished run is data: it knows no engine"),
    ("Results", "Api", "the finished run is data: it calls nothing"),
)

PENDING: Mapping[tuple[str, str], str] = {}
"""Rules that do not hold yet. Each is xfail(strict=True): once the code holds it, the test
fails until its mark is removed, and the package cycle check counts it again."""


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    """Relative to the repository, with forward slashes."""
    imports: frozenset[str]
    """The runner modules (or packages) it imports, by dotted name."""


def _dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imported(tree: ast.AST, package: str) -> set[str]:
    """The runner modules a module imports: `from runner.x import y` is runner.x.y when that
    is a module, else runner.x (a name defined in it)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if _is_module(full) else base)
    return {name for name in found if name == "runner" or name.startswith("runner.")}


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _dotted(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = path.relative_to(ROOT).as_posix()
        found.append(Module(name, rel, frozenset(_imported(tree, package))))
    return tuple(found)


def _path_of(dotted: str) -> str:
    base = ROOT.joinpath(*dotted.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    return path.relative_to(ROOT).as_posix()


def part_of(path: str) -> str | None:
    for part, paths in PARTS.items():
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in paths):
            return part
    return None


def _under(dotted: str, prefixes: Iterable[str]) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)


def violations(importers: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """`importer -> imported` for each module under an `importers` prefix that imports one
    under a `forbidden` prefix."""
    importers, forbidden = tuple(importers), tuple(forbidden)
    return [
        f"{m.name} -> {name}"
        for m in modules()
        if _under(m.name, importers)
        for name in sorted(m.imports)
        if _under(name, forbidden)
    ]


def part_violations(importer: str, imported: str) -> list[str]:
    return [
        f"{m.name} -> {name}"
        for m in modules()
        if part_of(m.path) == importer
        for name in sorted(m.imports)
        if part_of(_path_of(name)) == imported
    ]


def test_every_module_is_parsed_and_imports_are_resolved() -> None:
    names = {m.name for m in modules()}
    assert {"runner.cli", "runner.api.client", "runner.plan.build"} <= names
    assert (
        "runner.api.task_reader"
        in next(m for m in modules() if m.name == "runner.api.client").imports
    )
    unknown = {i for m in modules() for i in m.imports if not _is_module(i)}
    assert unknown == set()


def test_every_part_path_exists() -> None:
    missing = [p for paths in PARTS.values() for p in paths if not (ROOT / p).exists()]
    assert missing == []


@pytest.mark.parametrize(
    ("importer", "imported", "why"),
    [
        pytest.param(*rule, marks=pytest.mark.xfail(strict=True, reason=PENDING[rule[:2]]))
        if rule[:2] in PENDING
        else rule
        for rule in NEVER
    ],
    ids=[f"{a}-never-{b}" for a, b, _ in NEVER],
)
def test_never(importer: str, imported: str, why: str) -> None:
    assert part_violations(importer, imported) == [], why


def test_plan_imports_no_api() -> None:
    """The plan is built and selected offline; remote checks live in runner.preflight."""
    assert violations(["runner.plan"], ["runner.api"]) == []


def test_plan_imports_no_engine() -> None:
    assert violations(["runner.plan"], ["runner.execution"]) == []


def test_api_imports_no_manifest_module() -> None:
    """api/ shares the manifest's types through runner.shared_types, nothing else of it."""
    assert violations(["runner.api"], ["runner.manifest"]) == []
    assert violations(["runner.api"], ["runner.plan", "runner.preflight"]) == []


def test_reports_import_only_the_run_model_and_the_shared_ground() -> None:
    """Reports render a finished run: no engine, no client, no manifest reading."""
    assert (
        violations(["runner.reports", "runner.runresult"], ["runner.execution", "runner.api"]) == []
    )


def test_manifest_loads_no_http_stack() -> None:
    assert violations(["runner.manifest", "runner.schema"], ["runner.api", "runner.target"]) == []


@pytest.mark.parametrize("user", ["runner.execution", "runner.airflow"])
def test_the_engine_and_airflow_use_the_lifecycle_module(user: str) -> None:
    users = [
        m.name for m in modules() if _under(m.name, [user]) and "runner.lifecycle" in m.imports
    ]
    assert users, f"no module of {user} imports runner.lifecycle"


def test_every_module_belongs_to_a_part() -> None:
    assert [m.path for m in modules() if part_of(m.path) is None] == []


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {part: set() for part in PARTS}
    for m in modules():
        for name in m.imports:
            importer, imported = part_of(m.path), part_of(_path_of(name))
            if importer and imported and importer != imported:
                graph[importer].add(imported)
    return graph


def documented_graph() -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """The `imports` block of docs/INTERFACES.md: `Part -> Part ...`, `*` on a pending one."""
    text = (ROOT / "docs" / "INTERFACES.md").read_text(encoding="utf-8")
    block = text.split("```imports\n", 1)[1].split("```", 1)[0]
    graph: dict[str, set[str]] = {}
    starred: set[tuple[str, str]] = set()
    for line in block.splitlines():
        importer, _, imported = line.partition("->")
        names = imported.split()
        graph[importer.strip()] = {name.rstrip("*") for name in names}
        starred |= {(importer.strip(), n.rstrip("*")) for n in names if n.endswith("*")}
    return graph, starred


def test_the_interfaces_doc_shows_who_imports_whom_as_the_code_does() -> None:
    graph, starred = documented_graph()
    assert graph == part_graph()
    assert starred == set(PENDING)


def _package(dotted: str) -> str:
    """runner.x.y -> runner.x (a subpackage); a top-level module is its own node."""
    return ".".join(dotted.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    """Package -> the packages it imports, without the pending rules' edges."""
    pending = set(PENDING)
    graph: dict[str, set[str]] = {}
    for m in modules():
        for name in m.imports:
            parts = (part_of(m.path), part_of(_path_of(name)))
            if _package(m.name) != _package(name) and parts not in pending:
                graph.setdefault(_package(m.name), set()).add(_package(name))
    return graph


def test_no_import_cycle_between_packages() -> None:
    try:
        graphlib.TopologicalSorter(package_graph()).prepare()
    except graphlib.CycleError as error:
        pytest.fail("packages import each other: " + " -> ".join(error.args[1]))


def test_no_import_cycle_inside_api() -> None:
    graph = {m.name: {i for i in m.imports if _under(i, ["runner.api"])} for m in modules()}
    api = {name: deps - {name} for name, deps in graph.items() if _under(name, ["runner.api"])}
    api = {name: deps - {"runner.api"} for name, deps in api.items() if name != "runner.api"}
    try:
        graphlib.TopologicalSorter(api).prepare()
    except graphlib.CycleError as error:
        pytest.fail("api modules import each other: " + " -> ".join(error.args[1]))


def test_the_checks_find_what_they_look_for() -> None:
    """A check that finds nothing proves nothing: the Face does import the engine."""
    assert violations(["runner.commands"], ["runner.execution"])
    assert part_violations("Face", "Engine")
