"""Reading YAML safely, with the position of every value kept.

pyyaml silently keeps the last of two equal keys, expands aliases without a
bound and loses line numbers once it builds Python objects. This module
composes the node tree once (with libyaml when available), builds plain
Python data from it itself (refusing duplicate keys, unknown tags, alias
bombs, self-referencing aliases and deep nesting) and keeps the tree so that
any path can be turned back into a line and column.
"""

from __future__ import annotations

import gc
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.problems import Problem, format_path

try:  # libyaml is an order of magnitude faster; the pure-Python loader behaves the same
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how pyyaml was built
    _Loader = yaml.SafeLoader

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Honest documents expand to a few values per line even with anchors; a bomb to millions.
MIN_NODE_LIMIT = 100_000
NODES_PER_BYTE = 10
MAX_DEPTH = 64

_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_SCALARS = {
    "tag:yaml.org,2002:null": SafeConstructor.construct_yaml_null,
    "tag:yaml.org,2002:bool": SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:int": SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": SafeConstructor.construct_yaml_float,
}
_AS_TEXT = {_STR, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
_CONSTRUCTOR = SafeConstructor()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside, and what was built is kept out of later ones.

    Building a big document allocates millions of objects that all stay alive,
    and every collection would walk them all again (100k jobs: compose 9.3 s
    with the collector, 1.3 s without; one full collection afterwards, 7 s).
    Reference counting still frees what is dropped; at the end the survivors
    are frozen (`gc.freeze`: never scanned again) and the collector resumes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class YamlError(Exception):
    """The document can't be read at all; carries the problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.render())
        self.problem = problem


@dataclass
class Document:
    """Plain data built from a YAML file, and its node tree for positions."""

    file: str
    text: str
    root: Node | None
    data: Any
    problems: list[Problem] = field(default_factory=list)
    _keys: dict[int, dict[str, tuple[Node | None, Node]]] = field(default_factory=dict, repr=False)

    def position(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `path` (of its key with `key=True`).

        Walks as far down as the path exists, so a missing field points at
        its parent.
        """
        node = self.root
        if node is None:
            return (1, 1)
        mark = node.start_mark
        for index, part in enumerate(path):
            last = index == len(path) - 1
            found = self._child(node, part)
            if found is None:
                break
            key_node, node = found
            mark = (
                key_node.start_mark if (key and last and key_node is not None) else node.start_mark
            )
        return (mark.line + 1, mark.column + 1)

    def _child(self, node: Node, part: str | int) -> tuple[Node | None, Node] | None:
        """(key node, value node) of `part` in `node`, as recorded while building."""
        if isinstance(node, SequenceNode) and isinstance(part, int):
            return (None, node.value[part]) if 0 <= part < len(node.value) else None
        return self._keys.get(id(node), {}).get(str(part))

    def problem(
        self,
        path: Sequence[str | int],
        message: str,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> Problem:
        line, column = self.position(path, key=key)
        return Problem(
            self.file,
            line,
            column,
            format_path(path),
            message,
            "warning" if severity == "warning" else "error",
        )


def read_text(path: Path, *, display: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The file's text, or a YamlError that says what is wrong with the file itself."""

    def fail(message: str, line: int = 0, column: int = 0) -> YamlError:
        return YamlError(Problem(display, line, column, "", message))

    try:
        raw = _read_capped(path, max_bytes, fail)
    except FileNotFoundError:
        raise fail("file not found") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise fail(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            line,
            column,
        ) from None


def check_size(text: str, *, display: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """YamlError when text read from a stream (stdin) is over the limit a file has."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise YamlError(
            Problem(
                display,
                0,
                0,
                "",
                f"input is {size:,} bytes, over the limit of {max_bytes:,} bytes "
                "(raise it with --max-size if it is meant to be this big)",
            )
        )


def _read_capped(path: Path, max_bytes: int, fail: Callable[[str], YamlError]) -> bytes:
    """At most `max_bytes` of a regular file: a FIFO would block and /dev/zero never ends."""
    if path.is_dir():
        raise fail("is a directory, not a manifest file")
    if not stat.S_ISREG(path.stat().st_mode):
        raise fail("is not a regular file (a pipe or a device?); give the path of a YAML file")
    too_big = (
        "file is {size} bytes, over the limit of {limit:,} bytes "
        "(raise it with --max-size if the file is meant to be this big)"
    )
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(too_big.format(size=f"{size:,}", limit=max_bytes))
    with path.open("rb") as stream:  # the file can grow after stat: read no more than allowed
        raw = stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise fail(too_big.format(size=f"more than {max_bytes:,}", limit=max_bytes))
    return raw


def parse(text: str, *, display: str) -> Document:
    """Compose and build the document; YamlError when there is no usable document."""
    with gc_paused():
        return _parse(text, display)


def _parse(text: str, display: str) -> Document:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(_syntax_problem(exc, text, display)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlError(
            Problem(
                display,
                line,
                column,
                "",
                f"YAML cannot contain the character {char!r} (U+{ord(char):04X}); remove it",
            )
        ) from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise YamlError(Problem(display, 1, 1, "", f"YAML error: {message}")) from None
    except RecursionError:
        raise YamlError(Problem(display, 1, 1, "", "YAML nested too deeply")) from None
    doc = Document(display, text, root, None)
    if root is None:
        return doc
    builder = _Builder(doc)
    try:
        doc.data = builder.build(root, ())
    except _Abort:
        doc.data = None
    return doc


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, display: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    message = f"YAML syntax error: {what or 'invalid YAML'}"
    if mark is not None:
        row = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        indent = row[: len(row) - len(row.lstrip(" \t"))]
        if "\t" in indent or row[mark.column : mark.column + 1] == "\t":
            message = "YAML syntax error: a tab in the indentation; indent with spaces, not tabs"
    return Problem(display, line, column, "", message)


def load(path: Path, *, display: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    shown = display if display is not None else str(path)
    return parse(read_text(path, display=shown, max_bytes=max_bytes), display=shown)


_YAML_1_1_BOOLS = {"yes": "true", "on": "true", "no": "false", "off": "false"}
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def yaml_1_1_only(node: ScalarNode) -> str | None:
    """What to write instead of a plain value that only YAML 1.1 reads as a boolean or a
    number (`yes`, `off`, `1:30`, `1_000`); None for any other value."""
    if node.style:  # quoted or a block: text in both (libyaml: "" for plain, pyyaml: None)
        return None
    text = node.value
    if node.tag == "tag:yaml.org,2002:bool" and text.lower() in _YAML_1_1_BOOLS:
        meant = _YAML_1_1_BOOLS[text.lower()]
        return (
            f"'{text}' is {meant} only in YAML 1.1 (editors read YAML 1.2: the text "
            f"'{text}'): write {meant}, or quote it for the text"
        )
    if node.tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        return None
    if _SEXAGESIMAL.fullmatch(text):
        minutes, _, seconds = text.rpartition(":")
        return (
            f"'{text}' is a YAML 1.1 base-60 number (editors read YAML 1.2: the text '{text}'):"
            f" for a duration write units like {_units(minutes, seconds)}; quote it for the text"
        )
    if "_" in text:
        plain = text.replace("_", "")
        return (
            f"'{text}' is a number only in YAML 1.1 (editors read YAML 1.2: the text '{text}'):"
            f" write {plain} (no '_')"
        )
    return None


def _units(minutes: str, seconds: str) -> str:
    """`1m30s` for `1:30`, `1h2m3s` for `1:02:03`."""
    parts = [p.lstrip("0") or "0" for p in [*minutes.split(":"), seconds]]
    units = ("h", "m", "s")[-len(parts) :] if len(parts) <= 3 else ("h", "m", "s")
    shown = [f"{n}{u}" for n, u in zip(parts[-3:], units, strict=False) if n != "0"]
    return "".join(shown) or "0s"


class _Abort(Exception):
    pass


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.count = 0
        self.limit = MIN_NODE_LIMIT + NODES_PER_BYTE * len(doc.text)
        self.active: set[int] = set()

    def _report(self, node: Node, message: str, path: tuple[str | int, ...] = ()) -> None:
        mark = node.start_mark
        self.doc.problems.append(
            Problem(self.doc.file, mark.line + 1, mark.column + 1, format_path(path), message)
        )

    def _fail(self, node: Node, message: str) -> _Abort:
        self._report(node, message)
        return _Abort()

    def build(self, node: Node, path: tuple[str | int, ...]) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise self._fail(
                node,
                f"the document expands to more than {self.limit:,} values through aliases "
                "(an alias bomb?); refusing to read it",
            )
        if len(path) > MAX_DEPTH:
            raise self._fail(node, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ScalarNode):
            self._yaml_1_1_only(node, path)
            return self._scalar(node, path)
        if id(node) in self.active:
            raise self._fail(node, "an alias refers to a node that contains it (a cycle)")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            raise self._fail(node, f"unsupported YAML node {type(node).__name__}")
        finally:
            self.active.discard(id(node))

    def _yaml_1_1_only(self, node: ScalarNode, path: tuple[str | int, ...]) -> None:
        """A value that YAML 1.1 (pyyaml) and YAML 1.2 (editors, most other tools) read
        differently is refused, so that the file means one thing to both."""
        message = yaml_1_1_only(node)
        if message is not None:
            self._report(node, message, path)

    def _scalar(self, node: ScalarNode, path: tuple[str | int, ...]) -> Any:
        if node.tag in _AS_TEXT:
            return node.value
        constructor = _SCALARS.get(node.tag)
        if constructor is None:
            raise self._fail(node, f"unsupported YAML tag {node.tag!r} at {format_path(path)}")
        try:
            return constructor(_CONSTRUCTOR, node)
        except (ValueError, yaml.YAMLError):
            return node.value

    def _mapping(self, node: MappingNode, path: tuple[str | int, ...]) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        own = self._record_own_keys(node)
        inherited: dict[str, tuple[Node | None, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node):
                    for k, v in self._merged(source, path).items():
                        merged.setdefault(k, v)
                    for k, found in self.doc._keys.get(id(source), {}).items():
                        inherited.setdefault(k, found)
                continue
            key = self._key(key_node, path)
            if key in result:
                self._duplicate(node, key_node, key, path)
                continue
            result[key] = self.build(value_node, (*path, str(key)))
        for k, v in merged.items():
            result.setdefault(k, v)
        if inherited:  # explicit keys win over merged ones, earlier merge sources over later
            self.doc._keys[id(node)] = inherited | own
        return result

    def _key(self, key_node: Node, path: tuple[str | int, ...]) -> Any:
        if not isinstance(key_node, ScalarNode):
            raise self._fail(key_node, "a mapping key must be a plain value, not a list or map")
        key = self._scalar(key_node, path)
        if key is None or isinstance(key, bool):
            self._report(
                key_node,
                f"the key {key_node.value or '(empty)'!r} reads as {key!r}, not as a name:"
                " put it in quotes",
                path,
            )
            return key_node.value
        if not isinstance(key, str):
            return key_node.value  # a number used as a name stays as written
        return key

    def _duplicate(
        self, node: MappingNode, key_node: Node, key: Any, path: tuple[str | int, ...]
    ) -> None:
        first = next(k for k, _ in node.value if k.tag != _MERGE and k.value == key_node.value)
        self._report(
            key_node,
            f"duplicate key '{key}' (first defined on line {first.start_mark.line + 1}); "
            "YAML keeps only one of them: remove or rename one",
            (*path, str(key)),
        )

    def _record_own_keys(self, node: MappingNode) -> dict[str, tuple[Node | None, Node]]:
        """Where each explicit key is written (the first of duplicates), recorded before the
        values are built so that positions work even when building stops early."""
        own: dict[str, tuple[Node | None, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE and isinstance(key_node, ScalarNode):
                own.setdefault(key_node.value, (key_node, value_node))
        self.doc._keys[id(node)] = own
        return own

    def _merged(self, source: MappingNode, path: tuple[str | int, ...]) -> dict[Any, Any]:
        """A merge source's data; a source that merges itself is a cycle like any other."""
        if id(source) in self.active:
            raise self._fail(source, "an alias refers to a node that contains it (a cycle)")
        self.active.add(id(source))
        try:
            return self._mapping(source, path)
        finally:
            self.active.discard(id(source))

    def _merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode):
            return [node]
        if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            return list(node.value)
        raise self._fail(node, "'<<' (merge key) takes a mapping or a list of mappings")
