"""``gateway serve``: uvicorn with the gateway's options, one or several workers, and an
optional admin port (every worker serves both sockets)."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.cli.check import check
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
    if settings.admin_port is None:
        uvicorn.run(
            "gateway.app:app_from_env",
            factory=True,
            workers=settings.workers,
            **settings.uvicorn_options(),  # type: ignore[arg-type]
        )
        return 0
    return _serve_with_admin_port(settings, settings.admin_port)


def _serve_with_admin_port(settings: Settings, admin_port: int) -> int:
    """uvicorn on two sockets: the public port and the admin port (every worker serves both)."""
    config = uvicorn.Config(
        "gateway.app:app_from_env",
        factory=True,
        workers=settings.workers,
        **settings.uvicorn_options(),  # type: ignore[arg-type]
    )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    admin = socket.create_server((settings.host, admin_port), family=family)
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
