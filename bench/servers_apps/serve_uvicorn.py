"""``bench.servers_apps.asgi:app`` under uvicorn, with the options ``gateway serve`` uses
(``Settings.uvicorn_options``: no access log, no server header, lifespan on), uvloop, and one of
two HTTP protocols:

- ``httptools``: uvicorn's own (as ``bench/forwarder.py`` runs): the app answers with two ASGI
  messages;
- ``gateway``: the gateway's ``gateway.edge.server:GatewayProtocol`` through ``server_config``,
  as ``gateway serve`` builds it: the same parser with the gateway's limits on the request
  head (``gateway/edge/server.py``).

    BENCH_UPSTREAM=http://127.0.0.1:8000 python -m bench.servers_apps.serve_uvicorn \\
        --protocol gateway --port 9000
"""

from __future__ import annotations

import argparse

import uvicorn

from bench.servers_apps.asgi import app
from gateway.edge.server import server_config
from gateway.settings import Settings


def config(protocol: str, host: str, port: int) -> uvicorn.Config:
    settings = Settings(host=host, port=port, log_level="warning")
    if protocol == "gateway":
        return server_config(settings, app, loop="uvloop")
    options = {**settings.uvicorn_options(), "http": "httptools", "loop": "uvloop"}
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("httptools", "gateway"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(config(args.protocol, args.host, args.port)).run()


if __name__ == "__main__":
    main()
