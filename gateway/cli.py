"""The ``gateway`` command: serve, check, demo, schema, and the admin commands."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway import __version__, cli_admin, cli_rollout
from gateway.config import json_schema
from gateway.demo import run_demo
from gateway.diff import diff_tables
from gateway.metrics import MULTIPROC_ENV
from gateway.routes_file import ConfigError, load_config
from gateway.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="The model gateway.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="routes.yaml (env GATEWAY_CONFIG)")
    serve.add_argument("--host", help="bind address (env GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env GATEWAY_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (env GATEWAY_WORKERS)")
    serve.add_argument("--log-level", help="debug, info, warning (env GATEWAY_LOG_LEVEL)")
    serve.add_argument("--no-watch", action="store_true", help="do not watch routes.yaml")
    serve.add_argument("--admin-port", type=int, help="admin API only on this port")

    check = commands.add_parser("check", help="validate routes.yaml and show what would change")
    check.add_argument("config", help="the routes.yaml to check")
    check.add_argument("--against", metavar="OLD", help="the routes.yaml now running")

    demo = commands.add_parser("demo", help="run the gateway with a bundled demo model")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)

    commands.add_parser("schema", help="print the JSON Schema of routes.yaml")
    cli_admin.add_commands(commands)
    cli_rollout.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return check(args.config, args.against)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.command in ("tenants", "keys", "audit", "cache"):
        return cli_admin.run(args)
    if args.command == "rollout":
        return cli_rollout.run(args)
    if args.command == "demo":
        run_demo(args.host, args.port)
        return 0
    return serve(args)


def check(path: str, against: str | None) -> int:
    try:
        new = load_config(path)
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
            old = load_config(against)
        except ConfigError as exc:
            print(f"{against}: cannot compare, it is invalid: {exc}", file=sys.stderr)
            return 1
        changes = diff_tables(old.table, table)
        print(f"changes against {against}:" if changes else f"no changes against {against}")
        for change in changes:
            print(f"  {change}")
    return 0


def serve(args: argparse.Namespace) -> int:
    overrides = {
        "GATEWAY_CONFIG": args.config,
        "GATEWAY_HOST": args.host,
        "GATEWAY_PORT": args.port,
        "GATEWAY_WORKERS": args.workers,
        "GATEWAY_LOG_LEVEL": args.log_level,
        "GATEWAY_WATCH": "false" if args.no_watch else None,
        "GATEWAY_ADMIN_PORT": args.admin_port,
    }
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = str(value)  # workers are processes: they read the environment
    settings = Settings()
    if settings.config is None:
        print(
            "gateway serve: no routes.yaml (pass --config or set GATEWAY_CONFIG)", file=sys.stderr
        )
        return 2
    if check(str(settings.config), None) != 0:
        return 1
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Workers are processes: their metrics meet in files, added up by /metrics.
        folder = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ[MULTIPROC_ENV] = folder
        try:
            return _serve(settings)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            del os.environ[MULTIPROC_ENV]
    return _serve(settings)


def _serve(settings: Settings) -> int:
    if settings.admin_port is None:
        uvicorn.run(
            "gateway.app:app_from_env",
            factory=True,
            workers=settings.workers,
            **settings.uvicorn_options(),  # type: ignore[arg-type]
        )
        return 0
    return _serve_with_admin_port(settings)


def _serve_with_admin_port(settings: Settings) -> int:
    """uvicorn on two sockets: the public port and the admin port (every worker serves both)."""
    assert settings.admin_port is not None
    config = uvicorn.Config(
        "gateway.app:app_from_env",
        factory=True,
        workers=settings.workers,
        **settings.uvicorn_options(),  # type: ignore[arg-type]
    )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    admin = socket.create_server((settings.host, settings.admin_port), family=family)
    admin.set_inheritable(True)
    sockets = [config.bind_socket(), admin]
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
            return 0
        config.load_app()
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    return 0 if server.started else 1
