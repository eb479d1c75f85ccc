"""The listing commands' pages: ``--limit`` (page size), ``--cursor`` (start after the
previous page) and ``--all`` (follow every page and print one list).

The admin API's lists answer a page and its ``next_cursor`` (``gateway.admin.pages``, and
``/admin/jobs``, ``/admin/batches``). Without ``--all`` one page is printed as the API sent it
and, when there are more, how to get them goes to stderr; with ``--all`` the pages are fetched
one after the other and their items printed as one answer whose ``next_cursor`` is null.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any
from urllib.parse import urlencode

from gateway.cli import admin as cli_admin

_MAX_PAGES = 100_000  # a gateway whose cursor never ends the list is a bug, not a wait


def add_options(parser: argparse.ArgumentParser, limit: int | None = None) -> None:
    """``--limit`` (default ``limit``; None: the API's own page size), ``--cursor``, ``--all``."""
    shown = "the gateway's default" if limit is None else str(limit)
    parser.add_argument("--limit", type=int, default=limit, help=f"page size ({shown})")
    parser.add_argument("--cursor", help="the next_cursor of the previous page")
    parser.add_argument(
        "--all", action="store_true", help="follow every page and print them as one list"
    )


def fetch(args: argparse.Namespace, path: str, key: str, **fields: str | int | None) -> int:
    """GET ``path`` with ``fields``, ``limit`` and ``cursor`` as its query; print the page (or
    with ``--all`` every page, ``key`` the list merged); the exit status."""
    cursor: str | None = args.cursor
    merged: list[Any] | dict[str, Any] | None = None
    for _ in range(_MAX_PAGES):
        query = {**fields, "limit": args.limit, "cursor": cursor}
        given = urlencode({k: v for k, v in query.items() if v is not None})
        response = cli_admin.call(
            args.admin_url, "GET", f"{path}?{given}" if given else path, None, {}
        )
        if isinstance(response, int):
            return response
        reply: dict[str, Any] = response.json()
        cursor = reply.get("next_cursor")
        if not args.all:
            print(json.dumps(reply, indent=2))
            if cursor:
                more = f"more: --cursor {shlex.quote(cursor)}, or --all for every page"
                print(more, file=sys.stderr)
            return 0
        items = reply[key]
        if merged is None:
            merged = items
        elif isinstance(merged, dict):
            merged.update(items)
        else:
            merged.extend(items)
        if not cursor:
            print(json.dumps({**reply, key: merged}, indent=2))
            return 0
    print(f"{path}: more than {_MAX_PAGES} pages, stopped", file=sys.stderr)
    return 1
