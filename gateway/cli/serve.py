"""``gateway serve``: uvicorn with the gateway's options, one or several workers, and an
optional admin port (every worker serves both sockets)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.cli.check import check
from gateway.edge.server import server_config
from gateway.settings import Settings
from gateway.telemetry.metrics import MULTIPROC_ENV


def serve(args: argparse.Namespace) -> int:
    overrides = {
        "GATEWAY_CONFIG": args.config,
        "GATEWAY_HOST": args.host,
        "GATEWAY_PORT": args.port,
        "GATEWAY_WORKERS": args.workers,
        "GATEWAY_LOG_LEVEL": args.log_level,
        "GATEWAY_WATCH": "false" if args.no_watch else None,
        "GATEWAY_ADMIN_PORT": args.admin_port,
        "GATEWAY_GRPC_PORT": args.grpc_port,
        "GATEWAY_MAX_HEADER_BYTES": args.max_header_bytes,
        "GATEWAY_MAX_HEADERS": args.max_headers,
        "GATEWAY_MAX_REQUEST_LINE": args.max_request_line,
        "GATEWAY_HEADER_TIMEOUT": args.header_timeout,
        "GATEWAY_TLS_CERT": args.tls_cert,
        "GATEWAY_TLS_KEY": args.tls_key,
        "GATEWAY_TLS_CLIENT_CA": args.tls_client_ca,
        "GATEWAY_TLS_CLIENT_CERT": args.tls_client_cert,
        "GATEWAY_LOG_QUEUE_SIZE": args.log_queue_size,
        "GATEWAY_MAX_CONFIG_BYTES": args.max_config_bytes,
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
    if check(str(settings.config), None, settings.max_config_bytes) != 0:
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
    """uvicorn on the public port, and the admin port when set (every worker serves both)."""
    # uvicorn drains on SIGTERM as on SIGINT, then raises the signal again once its handlers
    # are gone; with SIGTERM's default disposition a clean drain would end as death by signal
    # (exit 143). With Ctrl-C's handler both signals end in the KeyboardInterrupt that uvicorn
    # takes for a normal stop: a gateway that finished its requests exits 0.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    config = server_config(
        settings, "gateway.app:app_from_env", factory=True, workers=settings.workers
    )
    sockets = [config.bind_socket()]
    if settings.admin_port is not None:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        admin = socket.create_server((settings.host, settings.admin_port), family=family)
        admin.set_inheritable(True)
        sockets.append(admin)
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
