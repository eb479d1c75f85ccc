"""``gateway jobs list|show|cancel|dead``: async jobs through the admin API (URL and token
as for ``gateway tenants``), and ``gateway worker``: job workers only, no HTTP."""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gateway.cli import admin as cli_admin
from gateway.cli import pages
from gateway.jobs.model import JOB_STATUSES

if TYPE_CHECKING:
    from gateway.settings import Settings

logger = logging.getLogger("gateway")


def add_commands(commands: Any) -> None:
    common = cli_admin.common_options()
    jobs = commands.add_parser("jobs", help="async jobs").add_subparsers(
        dest="action", required=True
    )
    listing = jobs.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument("--tenant")
    listing.add_argument("--status", choices=JOB_STATUSES)
    listing.add_argument("--model")
    listing.add_argument("--batch")
    pages.add_options(listing, limit=50)
    jobs.add_parser("show", parents=[common], help="one job, with its result").add_argument("id")
    jobs.add_parser("cancel", parents=[common], help="cancel a queued job").add_argument("id")
    dead = jobs.add_parser("dead", parents=[common], help="dead-lettered jobs")
    dead.add_argument("--limit", type=int, default=100)

    worker = commands.add_parser("worker", help="run job workers only (no HTTP)")
    worker.add_argument("--config", help="routes.yaml (env GATEWAY_CONFIG)")
    worker.add_argument("--log-level", help="debug, info, warning (env GATEWAY_LOG_LEVEL)")


def run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return pages.fetch(
            args,
            "/admin/jobs",
            "jobs",
            tenant=args.tenant,
            status=args.status,
            model=args.model,
            batch_id=args.batch,
        )
    if action == "dead":
        path = f"/admin/jobs/dead?limit={args.limit}"
        return cli_admin.send(args.admin_url, "GET", path, None, {})
    method = "DELETE" if action == "cancel" else "GET"
    return cli_admin.send(
        args.admin_url, method, f"/admin/jobs/{quote(args.id, safe='')}", None, {}
    )


def worker(args: argparse.Namespace) -> int:
    """Job workers with the settings ``gateway serve`` reads, until SIGTERM or Ctrl-C."""
    # here, not at the top: the other job commands are HTTP calls, and start at once
    from gateway.cli.check import check
    from gateway.settings import Settings
    from gateway.telemetry.logs import log_config

    for name, value in {"GATEWAY_CONFIG": args.config, "GATEWAY_LOG_LEVEL": args.log_level}.items():
        if value is not None:
            os.environ[name] = str(value)
    settings = Settings()
    if settings.config is None:
        print(
            "gateway worker: no routes.yaml (pass --config or set GATEWAY_CONFIG)", file=sys.stderr
        )
        return 2
    if check(str(settings.config), None, settings.max_config_bytes) != 0:
        return 1
    logging.config.dictConfig(
        log_config(settings.log_level, settings.log_format, settings.log_queue_size)
    )
    asyncio.run(_work(settings, Path(settings.config)))
    return 0


async def _work(settings: Settings, config: Path) -> None:
    from gateway.app import open_state

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with open_state(settings, config, workers_only=True):
        logger.info("job workers running")
        await stop.wait()
        logger.info("job workers stopping")
