"""Fixtures of the h1 client's tests: each test runs on asyncio's own loop and on uvloop (the
gateway's), with a client closed after it and raw servers started on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.backends.h1.client import Client
from tests.rawhttp import Handler, RawServer
from tests.unit.backends.h1.support import Serve


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    client = Client(limit=16, keepalive_timeout=30)
    yield client
    await client.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(handler, tls=None)``: a started :class:`RawServer`, stopped after."""
    started: list[RawServer] = []

    async def start(handler: Handler, **options: Any) -> RawServer:
        server = await RawServer(handler, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
