"""Reading routes.yaml: YAML → :class:`RouteTable`, every error with its YAML path and line.

A valid file takes the fast path (``fast_path.py``: libyaml, no line numbers, unchanged models
carried over from the last load). Anything it is not sure of takes the careful path here,
which reports every problem with its line: libyaml's node tree where it reads the document as
PyYAML does (its marks give the same lines), PyYAML's own reader otherwise and for the wording
of every YAML error.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import stat
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor

from gateway.config import fast_path, reader
from gateway.config.compact import compact
from gateway.config.model import RouteTable
from gateway.errors import ConfigError, ConfigIssue

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # GATEWAY_MAX_CONFIG_BYTES
_EMPTY: Final = zlib.compress(b"")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    table: RouteTable
    source: str
    digest: str
    # the file as read (GET /admin/config/source), compressed: it is rarely read, and a
    # 10,000-model file is 700 KB of text, 50 KB compressed (issue 16)
    packed: bytes = field(default=_EMPTY, repr=False)
    # each model entry's text → its model, for the next load (fast_path.py); empty when the
    # file took the careful path
    entries: fast_path.Entries = field(default_factory=dict, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The file as read."""
        return zlib.decompress(self.packed).decode()


def load_config(
    path: str | Path, max_bytes: int = MAX_CONFIG_BYTES, previous: LoadedConfig | None = None
) -> LoadedConfig:
    """Read, parse and validate a routes.yaml file of at most ``max_bytes`` (``previous``:
    see :func:`parse_config`).

    Every way a file can be wrong (unreadable, not a regular file, too large, not UTF-8,
    empty, bad YAML, aliases that expand too far, an invalid table) raises
    :class:`ConfigError`, never anything else: the reloader counts it and keeps watching."""
    source = str(path)
    return parse_config(_read(Path(path), source, max_bytes), source, previous)


def _read(path: Path, source: str, max_bytes: int) -> str:
    def refuse(message: str, line: int | None = None) -> ConfigError:
        return ConfigError(source, [ConfigIssue("", line, message)])

    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise refuse("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device could block the reader
            raise refuse("is not a regular file")
        if info.st_size > max_bytes:
            raise refuse(_too_large(info.st_size, max_bytes))
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise refuse(f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise refuse(_too_large(len(data), max_bytes))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise refuse(f"not UTF-8 text: byte 0x{byte:02x} at offset {exc.start}", line) from exc
    if not text.strip():
        raise refuse("the file is empty")
    return text


def _too_large(size: int, max_bytes: int) -> str:
    return f"the file is {size} bytes, over the limit of {max_bytes} (GATEWAY_MAX_CONFIG_BYTES)"


def parse_config(
    text: str, source: str = "<string>", previous: LoadedConfig | None = None
) -> LoadedConfig:
    """Parse and validate routes.yaml's text; ``previous``: the last good load, whose models
    are kept (the same objects) where their entries did not change (``fast_path.py``)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    with _collector_paused():
        known = previous.entries if previous is not None else {}
        before = previous.table.models if previous is not None else {}
        fast = fast_path.read_table(text, known, before)
        if fast is not None:  # its new models made smaller as they were read
            return LoadedConfig(fast[0], source, digest, _pack(text), fast[1])
        table = _parse_carefully(text, source)
        compact(table)
        return LoadedConfig(table, source, digest, _pack(text))


def _pack(text: str) -> bytes:
    return zlib.compress(text.encode(), 1)  # 5 ms for 700 KB, to a fourteenth of the size


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading a table makes hundreds of thousands of objects that all live on: the cyclic
    collector would walk them again and again while they are made (4 × the reading's time
    at 100,000 models), and find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_carefully(text: str, source: str) -> RouteTable:
    """The table, or every problem with its YAML path and line (duplicate keys included)."""
    try:
        node = _compose(text)
        if node is not None:
            refused = reader.alias_problem(node)
            if refused is not None:
                raise ConfigError(source, [ConfigIssue("", *refused)])
        # Before constructing: the constructor rewrites a mapping with merge keys in place.
        lines = _line_index(node) if node is not None else {}
        duplicates = _duplicate_keys(node) if node is not None else []
        data = SafeConstructor().construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", line, f"invalid YAML: {problem}")]) from exc
    except RecursionError as exc:  # PyYAML composes recursively
        raise ConfigError(
            source, [ConfigIssue("", None, "invalid YAML: nested too deeply")]
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", 1, "the file must be a mapping")])
    try:
        table = RouteTable.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, duplicates + _issues(exc, lines)) from exc
    if duplicates:
        raise ConfigError(source, duplicates)
    return table


def _compose(text: str) -> yaml.Node | None:
    """The node tree, marks included: libyaml's (the same lines) when it reads the document
    as PyYAML would, else PyYAML's own, which also words every YAML error as it always has."""
    if reader.agrees(text):
        try:
            node = reader.compose(text)
        except (yaml.YAMLError, RecursionError):
            pass  # PyYAML's reading says what is wrong, and where
        else:
            if node is None or not _deeper(node, reader.MAX_DEPTH):
                return node
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _deeper(root: yaml.Node, limit: int) -> bool:
    """Whether the document's text nests deeper than ``limit`` (PyYAML's recursive reading may
    not take what libyaml does). Each node is walked once, in document order: where an anchor
    is used again (an alias, a leaf in the text) it is not walked again."""
    seen: set[int] = set()
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > limit:
            return True
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        stack.extend((child, depth + 1) for child in reversed(children))
    return False


def _line_index(root: yaml.Node) -> dict[tuple[str, ...], int]:
    """Map every YAML path (keys as text, list items as their index) to its 1-based line."""
    index: dict[tuple[str, ...], int] = {(): root.start_mark.line + 1}
    stack: list[tuple[tuple[str, ...], yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                stack.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*path, str(i))
                index[child] = item.start_mark.line + 1
                stack.append((child, item))
    return index


def _duplicate_keys(root: yaml.Node) -> list[ConfigIssue]:
    """YAML keeps the last of two equal keys silently; an operator's typo should not vanish."""
    issues = []
    stack: list[tuple[tuple[str, ...], yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen and name != "<<":
                    where = ".".join((*path, name))
                    line = key.start_mark.line + 1
                    issues.append(ConfigIssue(where, line, f"duplicate key {name!r}"))
                seen.add(name)
                stack.append(((*path, name), value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((*path, str(i)), item) for i, item in enumerate(node.value))
    return sorted(issues, key=lambda i: i.line or 0)


def _issues(exc: ValidationError, lines: Mapping[tuple[str, ...], int]) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        issues.append(ConfigIssue(".".join(loc), _nearest_line(loc, lines), message))
    return issues


def _nearest_line(path: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None
