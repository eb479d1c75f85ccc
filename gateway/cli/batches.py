"""``gateway batches list|show|results|cancel``: batch files through the admin API (URL and
token as for ``gateway tenants``). ``results`` prints the JSONL as it arrives."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx

from gateway.cli import admin as cli_admin
from gateway.cli import pages


def add_commands(commands: Any) -> None:
    common = cli_admin.common_options()
    batches = commands.add_parser("batches", help="batch files").add_subparsers(
        dest="action", required=True
    )
    listing = batches.add_parser("list", parents=[common], help="batches, newest first")
    listing.add_argument("--tenant")
    pages.add_options(listing, limit=50)
    for action, text in (
        ("show", "one batch: status and counts"),
        ("results", "a batch's results, JSONL in input order"),
        ("cancel", "cancel what has not run"),
    ):
        batches.add_parser(action, parents=[common], help=text).add_argument("id")


def run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return pages.fetch(args, "/admin/batches", "batches", tenant=args.tenant)
    path = f"/admin/batches/{quote(args.id, safe='')}"
    if action == "results":
        return _results(args.admin_url, f"{path}/results")
    method = "DELETE" if action == "cancel" else "GET"
    return cli_admin.send(args.admin_url, method, path, None, {})


def _results(admin_url: str, path: str) -> int:
    token = os.environ.get("GATEWAY_ADMIN_TOKEN")
    if not token:
        print("set GATEWAY_ADMIN_TOKEN to the gateway's admin token", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with (
            httpx.Client(base_url=admin_url, timeout=30.0, trust_env=False) as client,
            client.stream("GET", path, headers=headers) as response,
        ):
            if response.status_code >= 400:
                response.read()
                error = response.json().get("error", {}) if response.content else {}
                message = error.get("message", response.text) if isinstance(error, dict) else error
                print(f"error {response.status_code}: {message}", file=sys.stderr)
                return 1
            for chunk in response.iter_bytes():
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    except httpx.TransportError as exc:
        print(f"cannot reach {admin_url}: {exc}", file=sys.stderr)
        return 1
    return 0
