"""``gateway models list`` and ``gateway config status``: what the running gateway serves and
how its route table and backends are, through the admin API (URL and token as for ``gateway
tenants``), a page at a time (``--limit``, ``--cursor``, ``--all``: ``gateway.cli.pages``)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import admin as cli_admin
from gateway.cli import pages


def add_commands(commands: Any) -> None:
    common = cli_admin.common_options()
    models = commands.add_parser("models", help="the served models").add_subparsers(
        dest="action", required=True
    )
    listing = models.add_parser(
        "list", parents=[common], help="models by name: versions, backends, readiness"
    )
    pages.add_options(listing)
    config = commands.add_parser("config", help="the running route table").add_subparsers(
        dest="action", required=True
    )
    status = config.add_parser(
        "status", parents=[common], help="the last reload, and each backend's replicas"
    )
    pages.add_options(status)


def run(args: argparse.Namespace) -> int:
    if args.command == "models":
        return pages.fetch(args, "/admin/models", "models")
    return pages.fetch(args, "/admin/config", "backends")
