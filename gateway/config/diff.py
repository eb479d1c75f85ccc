"""What changes between two route tables, in words an operator reads before a deploy.

A model the new table carried over from the old (the same object) is not compared: a reload
of a one-line change in a 10,000-model file compares one model."""

from __future__ import annotations

from typing import Any

from gateway.config.model import RouteTable


def diff_tables(old: RouteTable, new: RouteTable) -> list[str]:
    changes: list[str] = []
    changes += _diff_named("backend", _dump(old.backends), _dump(new.backends))
    for name in sorted(old.models.keys() - new.models.keys()):
        changes.append(f"- model {name}")
    for name in sorted(new.models.keys() - old.models.keys()):
        versions = ", ".join(new.models[name].versions)
        changes.append(f"+ model {name} (versions {versions})")
    for name in sorted(old.models.keys() & new.models.keys()):
        before, after = old.models[name], new.models[name]
        if before is after:
            continue  # carried over from the same entry's text (config/fast_path.py)
        changes += _diff_named(
            f"model {name} version", _dump(before.versions), _dump(after.versions)
        )
        if before.default_version != after.default_version:
            changes.append(
                f"~ model {name} default version: {before.default_version} → "
                f"{after.default_version}"
            )
        if before.traffic != after.traffic:
            changes.append(
                f"~ model {name} traffic: {_weights(before.traffic)} → {_weights(after.traffic)}"
            )
    old_routes = {r.path: r.model_dump() for r in old.routes}
    new_routes = {r.path: r.model_dump() for r in new.routes}
    changes += _diff_named("route", old_routes, new_routes)
    if old.plans != new.plans:
        changes += _diff_named("plan", old.plans, new.plans)
    return changes


def _dump(items: dict[str, Any]) -> dict[str, Any]:
    return {name: item.model_dump() for name, item in items.items()}


def _weights(traffic: dict[str, int] | None) -> str:
    if not traffic:
        return "none"
    return ", ".join(f"{v}: {w}%" for v, w in traffic.items())


def _diff_named(what: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = [f"- {what} {name}" for name in sorted(old.keys() - new.keys())]
    changes += [f"+ {what} {name}" for name in sorted(new.keys() - old.keys())]
    for name in sorted(old.keys() & new.keys()):
        for field, before, after in _fields(old[name], new[name]):
            changes.append(f"~ {what} {name}: {field} {before!r} → {after!r}")
    return changes


def _fields(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(old.keys() | new.keys(), key=str):
            out += _fields(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]
