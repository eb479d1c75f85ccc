"""The gRPC frontends (KServe v2, TF Serving) with health and reflection, on
``GATEWAY_GRPC_PORT``.

The composition root imports this module only when that port is set: grpcio's native library
and its health and reflection services cost a worker about 10 MiB of RSS (bench/README.md, the
routes curve), which a gateway serving HTTP alone does not pay.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from gateway.codecs import raw
from gateway.codecs.v2_proto import messages
from gateway.edge import grpc_tfs, grpc_v2
from gateway.edge.grpc import Lane, start_server
from gateway.errors import SettingsError
from gateway.state import State

logger = logging.getLogger("gateway")


async def start(state: State) -> grpc.aio.Server:
    """The frontends' server, listening; the caller stops it."""
    settings = state.settings
    port = settings.grpc_port
    if port is None:
        raise SettingsError("no gRPC port")
    # Raw tensor contents are converted with numpy: loaded now, off the loop
    await asyncio.to_thread(raw.load)
    lane = Lane(state)
    servicers = [*grpc_v2.servicers(state, lane), *grpc_tfs.servicers(state, lane)]
    described = [messages().file, *grpc_tfs.FILES]
    server = await start_server(
        state, servicers, described, settings.host, port, settings.max_body_bytes
    )
    logger.info("gRPC frontends listening", extra={"port": port})
    return server
