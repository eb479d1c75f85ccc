"""The ``gateway`` command: its parser, and which module runs each subcommand (serve, check,
demo, schema, worker, and the admin commands: tenants, keys, audit, cache, rollout, jobs,
webhooks, batches, usage, models, config)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import admin as cli_admin
from gateway.cli import batches as cli_batches
from gateway.cli import jobs as cli_jobs
from gateway.cli import rollout as cli_rollout
from gateway.cli import status as cli_status
from gateway.cli import usage as cli_usage
from gateway.telemetry import log_queue


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
    serve.add_argument("--grpc-port", type=int, help="gRPC frontends on this port")
    serve.add_argument(
        "--max-header-bytes",
        type=int,
        help="max bytes of header fields (env GATEWAY_MAX_HEADER_BYTES)",
    )
    serve.add_argument(
        "--max-headers", type=int, help="max header fields (env GATEWAY_MAX_HEADERS)"
    )
    serve.add_argument(
        "--max-request-line",
        type=int,
        help="max request target bytes (env GATEWAY_MAX_REQUEST_LINE)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        help="seconds to read a request head (env GATEWAY_HEADER_TIMEOUT)",
    )
    serve.add_argument(
        "--tls-cert", help="serve HTTPS: PEM certificate chain (env GATEWAY_TLS_CERT)"
    )
    serve.add_argument("--tls-key", help="PEM key of --tls-cert (env GATEWAY_TLS_KEY)")
    serve.add_argument(
        "--tls-client-ca", help="verify client certificates (env GATEWAY_TLS_CLIENT_CA)"
    )
    serve.add_argument(
        "--tls-client-cert",
        choices=["required", "optional"],
        help="with --tls-client-ca (env GATEWAY_TLS_CLIENT_CERT, default required)",
    )
    serve.add_argument(
        "--log-queue-size",
        type=int,
        help="log lines queued for the writer before they are dropped (env "
        "GATEWAY_LOG_QUEUE_SIZE, default 10000)",
    )
    serve.add_argument(
        "--max-config-bytes",
        type=int,
        help="largest routes.yaml accepted (env GATEWAY_MAX_CONFIG_BYTES, default 16 MiB)",
    )

    check = commands.add_parser("check", help="validate routes.yaml and show what would change")
    check.add_argument("config", help="the routes.yaml to check")
    check.add_argument("--against", metavar="OLD", help="the routes.yaml now running")

    demo = commands.add_parser("demo", help="run the gateway with a bundled demo model")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--grpc-port", type=int, default=None, help="gRPC frontends (default: port + 1; 0: off)"
    )

    commands.add_parser("schema", help="print the JSON Schema of routes.yaml")
    cli_admin.add_commands(commands)
    cli_rollout.add_commands(commands)
    cli_jobs.add_commands(commands)
    cli_batches.add_commands(commands)
    cli_usage.add_commands(commands)
    cli_status.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Each command imports what it runs when it runs: the admin commands (HTTP calls) and
    ``check`` start without the server's modules."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        from gateway.cli.check import check

        return check(args.config, args.against)
    if args.command == "schema":
        from gateway.config.model import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.command in ("tenants", "keys", "audit", "cache", "webhooks"):
        return cli_admin.run(args)
    if args.command == "rollout":
        return cli_rollout.run(args)
    if args.command == "jobs":
        return cli_jobs.run(args)
    if args.command == "batches":
        return cli_batches.run(args)
    if args.command == "usage":
        return cli_usage.run(args)
    if args.command in ("models", "config"):
        return cli_status.run(args)
    if args.command == "worker":
        return _ended(cli_jobs.worker(args))
    if args.command == "demo":
        from gateway.demo import run_demo

        run_demo(args.host, args.port, args.grpc_port)
        return _ended(0)
    from gateway.cli.serve import serve

    return _ended(serve(args))


def _ended(code: int) -> int:
    """A server's exit: its log lines written within the bound, then ``code``. When a log
    sink never drained, the process ends at once with ``code`` rather than wait forever in
    the interpreter's shutdown on the writer stuck in its write (the lines left are lost, and
    were counted as dropped)."""
    if log_queue.settle():
        os._exit(code)
    return code
