"""The keep-alive timeout of the edge's protocol (``GatewayProtocol``): one timer per connection,
re-armed when it falls due, closes a connection idle for ``timeout_keep_alive`` seconds as
uvicorn's per-request timer does, and never one that is busy or was used since."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from gateway.edge.server import PROTOCOL
from tests.support import free_port

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0  # the server's keep-alive timeout, seconds
REQUEST = b"GET /%s HTTP/1.1\r\nhost: x\r\n\r\n"


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(TIMEOUT * 1.5)  # busy across the timer's due time
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=PROTOCOL,
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=TIMEOUT,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 30)


async def answered(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    body = await asyncio.wait_for(reader.readexactly(2), 10)
    return head.split(b"\r\n", 1)[0] + b" " + body


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (within a generous 10 s)."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except TimeoutError:
        return False


async def test_a_connection_used_again_before_the_timeout_stays_open(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        # three requests, each after a pause shorter than the timeout, over more than the
        # timeout in all: the timer armed after the first falls due while the connection is
        # idle since a later answer, and waits for the rest
        for _ in range(3):
            writer.write(REQUEST % b"fast")
            assert await answered(reader) == b"HTTP/1.1 200 OK ok"
            await asyncio.sleep(TIMEOUT * 0.6)
        writer.write(REQUEST % b"fast")
        assert await answered(reader) == b"HTTP/1.1 200 OK ok"
        assert await closed(reader)  # then idle: closed
    finally:
        writer.close()


async def test_a_connection_busy_when_the_timer_falls_due_is_not_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST % b"fast")
        assert await answered(reader) == b"HTTP/1.1 200 OK ok"
        writer.write(REQUEST % b"slow")  # still being answered when the timer falls due
        assert await answered(reader) == b"HTTP/1.1 200 OK ok"
        writer.write(REQUEST % b"fast")  # and the connection still serves
        assert await answered(reader) == b"HTTP/1.1 200 OK ok"
        assert await closed(reader)
    finally:
        writer.close()
