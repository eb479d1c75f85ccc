"""``gateway check FILE [--against OLD]``: validate routes.yaml, and say what would change."""

from __future__ import annotations

import sys

from gateway.config.diff import diff_tables
from gateway.config.file import MAX_CONFIG_BYTES, load_config
from gateway.errors import ConfigError


def check(path: str, against: str | None, max_bytes: int = MAX_CONFIG_BYTES) -> int:
    try:
        new = load_config(path, max_bytes)
    except ConfigError as exc:
        print(f"{exc.source}: invalid ({len(exc.issues)} problem(s))", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    table = new.table
    print(
        f"{path}: ok ({len(table.backends)} backends, {len(table.models)} models, "
        f"{len(table.routes)} routes)"
    )
    if against is not None:
        try:
            old = load_config(against, max_bytes)
        except ConfigError as exc:
            print(f"{against}: cannot compare, it is invalid: {exc}", file=sys.stderr)
            return 1
        changes = diff_tables(old.table, table)
        print(f"changes against {against}:" if changes else f"no changes against {against}")
        for change in changes:
            print(f"  {change}")
    return 0
