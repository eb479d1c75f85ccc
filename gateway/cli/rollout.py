"""``gateway rollout status [MODEL] | pause|resume|promote|abort MODEL | events MODEL``.

The admin API's rollout endpoints from the command line (URL and token as for
``gateway tenants``: ``--admin-url`` or ``GATEWAY_ADMIN_URL``, ``GATEWAY_ADMIN_TOKEN``).
``status`` without a model lists them a page at a time (``--limit``, ``--cursor``, ``--all``).
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from gateway.cli import admin as cli_admin
from gateway.cli import pages


def add_commands(commands: Any) -> None:
    common = cli_admin.common_options()
    rollout = commands.add_parser("rollout", help="progressive rollouts").add_subparsers(
        dest="action", required=True
    )
    status = rollout.add_parser(
        "status", parents=[common], help="step, weights and gate figures (every rollout)"
    )
    status.add_argument("model", nargs="?")
    pages.add_options(status)
    helps = {
        "pause": "hold the current step (a failing gate still rolls back)",
        "resume": "continue a paused rollout, or restart a rolled back or aborted one",
        "promote": "go to the next step now, without waiting for the gates",
        "abort": "stop: all traffic to the stable version",
    }
    for action, text in helps.items():
        rollout.add_parser(action, parents=[common], help=text).add_argument("model")
    events = rollout.add_parser("events", parents=[common], help="the transitions and why")
    events.add_argument("model")
    events.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    action = args.action
    model = quote(args.model, safe="") if getattr(args, "model", None) else None
    if action == "status":
        if model:
            return cli_admin.send(args.admin_url, "GET", f"/admin/rollouts/{model}", None, {})
        return pages.fetch(args, "/admin/rollouts", "rollouts")
    if action == "events":
        path = f"/admin/rollouts/{model}/events?limit={args.limit}"
        return cli_admin.send(args.admin_url, "GET", path, None, {})
    return cli_admin.send(args.admin_url, "POST", f"/admin/rollouts/{model}/{action}", None, {})
