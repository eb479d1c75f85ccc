"""Reading routes.yaml: YAML → :class:`RouteTable`, every error with its YAML path and line."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from gateway.config.model import RouteTable
from gateway.errors import ConfigError, ConfigIssue


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    table: RouteTable
    source: str
    digest: str


def load_config(path: str | Path) -> LoadedConfig:
    """Read, parse and validate a routes.yaml file. Raises :class:`ConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [ConfigIssue("", None, f"cannot read: {exc.strerror}")]) from exc
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> LoadedConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", line, f"invalid YAML: {problem}")]) from exc
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
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return LoadedConfig(table=table, source=source, digest=digest)


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
