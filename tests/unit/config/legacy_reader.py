"""The reference: routes.yaml read as it was before the fast path (issue 16), PyYAML's pure
Python reader twice (composed for the checks and lines, then loaded), every problem with its
line. The fast path must give the same table, and the same problems at the same lines, for
every file (test_fast_path.py)."""

from __future__ import annotations

from collections.abc import Mapping

import yaml
from pydantic import ValidationError

from gateway.config.model import RouteTable
from gateway.errors import ConfigError, ConfigIssue

MAX_ALIAS_NODES = 100_000
_SIZE_CAP = 1 << 62


def parse_legacy(text: str, source: str = "<string>") -> RouteTable:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_aliases(node, source)
        data = yaml.safe_load(text)
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
    lines = _line_index(node) if node is not None else {}
    duplicates = _duplicate_keys(node) if node is not None else []
    try:
        table = RouteTable.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, duplicates + _issues(exc, lines)) from exc
    if duplicates:
        raise ConfigError(source, duplicates)
    return table


def _check_aliases(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases add more than MAX_ALIAS_NODES nodes once expanded (a
    "billion laughs" is a few lines that expand to 10^9), or refer to a node containing them:
    every later walk of the table (line index, validation) pays for the expanded size."""
    sizes: dict[int, int] = {}  # expanded node count of each distinct node, by id
    open_nodes: set[int] = set()  # the path from the root to the node being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), _SIZE_CAP)
            continue
        if id(node) in sizes:
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                line = child.start_mark.line + 1
                raise ConfigError(source, [ConfigIssue("", line, "a YAML alias contains itself")])
            stack.append((child, False))
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_NODES:
        message = (
            f"YAML aliases expand the document by more than {MAX_ALIAS_NODES} nodes; "
            "write the repeated values out"
        )
        raise ConfigError(source, [ConfigIssue("", None, message)])


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
