"""``gateway usage [--tenant T] [--model M] [--from TIME] [--to TIME] [--by model|version|day]
[--csv]``: ``GET /admin/usage`` from the command line (URL and token as for ``gateway
tenants``), printed as tables (the rows, then quota used against the plan), or the CSV as the
gateway sends it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from gateway.cli import admin as cli_admin

_HEADINGS = {
    "errors_4xx": "4xx",
    "errors_5xx": "5xx",
    "cache_hits": "cache hits",
    "rate_limited": "429s",
    "bytes_in": "bytes in",
    "bytes_out": "bytes out",
    "resets_in": "resets in (s)",
    "name": "quota",
}
_COUNTERS = ("requests", "errors_4xx", "errors_5xx", "cache_hits", "rate_limited")
_QUOTA = ("tenant", "plan", "name", "used", "limit", "remaining", "resets_in")


def add_commands(commands: Any) -> None:
    usage = commands.add_parser(
        "usage",
        parents=[cli_admin.common_options()],
        help="per-tenant usage over a range, and quota used against the plan",
    )
    usage.add_argument("--tenant", help="one tenant (default: every tenant)")
    usage.add_argument("--model", help="one model (default: every model)")
    usage.add_argument(
        "--from", dest="start", help="unix seconds or ISO 8601 (default: 24 h before --to)"
    )
    usage.add_argument("--to", dest="end", help="unix seconds or ISO 8601 (default: now)")
    usage.add_argument("--by", choices=["model", "version", "day"], default="model")
    usage.add_argument("--csv", action="store_true", help="the rows as CSV")


def run(args: argparse.Namespace) -> int:
    fields = {
        "tenant": args.tenant,
        "model": args.model,
        "from": args.start,
        "to": args.end,
        "by": args.by,
        "format": "csv" if args.csv else None,
    }
    query = urlencode({k: v for k, v in fields.items() if v is not None})
    response = cli_admin.call(args.admin_url, "GET", f"/admin/usage?{query}", None, {})
    if isinstance(response, int):
        return response
    if args.csv:
        sys.stdout.write(response.text)
        return 0
    print(render(response.json()))
    return 0


def render(report: dict[str, Any]) -> str:
    """The report as text: a line saying the range, the rows' table, the quota table."""
    start, end = (_when(report[k]) for k in ("from", "to"))
    lines = [f"usage from {start} to {end} by {report['by']}", ""]
    rows: list[dict[str, Any]] = report["rows"]
    if rows:
        names = [k for k in ("tenant", "model", "version", "day") if k in rows[0]]
        lines += table([*names, *_COUNTERS, "bytes_in", "bytes_out"], rows)
    else:
        lines.append("no usage in this range")
    quota: list[dict[str, Any]] = report.get("quota", [])
    if quota:
        lines += ["", *table(list(_QUOTA), quota)]
    return "\n".join(lines)


def table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[str]:
    """Aligned columns: text to the left, numbers to the right; an empty name shows as -."""
    cells = [[_HEADINGS.get(c, c) for c in columns]]
    cells += [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    numeric = [all(isinstance(row.get(c), int | float) for row in rows) for c in columns]
    out = []
    for line in cells:
        parts = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(line, widths, numeric, strict=True)
        ]
        out.append("  ".join(parts).rstrip())
    return out


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def _when(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%MZ")
