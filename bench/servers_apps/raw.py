"""The floor of a Python server: an ``asyncio.Protocol`` with httptools' request parser on
uvloop, and the same upstream call as every variant. No ASGI, no scope, no messages. With
``--client h1`` the upstream call goes through the gateway's own HTTP/1.1 client
(``gateway.backends.h1``) instead of aiohttp: the floor of a Python forwarder built from the
gateway's parts.

    BENCH_UPSTREAM=http://127.0.0.1:8000 python -m bench.servers_apps.raw --port 9000 [--client h1]

HTTP/1.1 keep-alive as the client asks (``Connection: close`` and HTTP/1.0 are honoured);
requests pipelined on one connection are answered in order, one at a time. No limits on heads
or bodies: a floor, not a server to deploy.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import aiohttp
import httptools
import uvloop
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from bench.servers_apps.upstream import forward, open_session, upstream_url
from gateway.backends.h1 import errors as h1_errors
from gateway.backends.h1.client import Client

_Request = tuple[bytes, bytes, bool]  # path, body, keep-alive
_JSON = {"Content-Type": "application/json"}
Forward = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]


def aiohttp_forward(session: aiohttp.ClientSession, upstream: str) -> Forward:
    async def call(path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return await forward(session, upstream + path, body)
        except (aiohttp.ClientError, TimeoutError):
            return 502, b""

    return call


def h1_forward(client: Client, upstream: str) -> Forward:
    origin, prefix = client.origin(upstream)

    async def call(path: str, body: bytes) -> tuple[int, bytes]:
        try:
            reply = await origin.request(
                "POST", prefix + path, _JSON, body, connect_timeout=1.0, read_timeout=30.0
            )
        except h1_errors.H1Error:
            return 502, b""
        return reply.status, reply.body

    return call


class Connection(asyncio.Protocol):
    """One client connection: parse, forward, write the answer in one write."""

    def __init__(self, send: Forward) -> None:
        self.send = send
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.waiting: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.write(400, b"", keep_alive=False)

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        request = (path, b"".join(self.body), self.parser.should_keep_alive())
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.answer(request))
        else:
            self.waiting.append(request)

    async def answer(self, request: _Request) -> None:
        while True:
            path, body, keep_alive = request
            status, data = await self.send(path.decode("latin-1"), body)
            self.write(status, data, keep_alive)
            if not self.waiting or self.transport is None:
                self.task = None
                return
            request = self.waiting.popleft()

    def write(self, status: int, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(data)
        if not keep_alive:
            head += b"connection: close\r\n"
        self.transport.write(b"".join((STATUS_LINE[status], head, b"\r\n", data)))
        if not keep_alive:
            self.transport.close()


async def serve(host: str, port: int, client: str = "aiohttp") -> None:
    """Serve until SIGTERM or SIGINT; then close the listener and the upstream client."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    session, h1 = (open_session(), None) if client == "aiohttp" else (None, Client())
    upstream = upstream_url()
    send = aiohttp_forward(session, upstream) if session is not None else None
    if h1 is not None:
        send = h1_forward(h1, upstream)
    assert send is not None
    try:
        server = await loop.create_server(lambda: Connection(send), host, port, backlog=4096)
        async with server:
            await stop.wait()
    finally:
        if session is not None:
            await session.close()
        if h1 is not None:
            await h1.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client", choices=("aiohttp", "h1"), default="aiohttp")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.client))


if __name__ == "__main__":
    main()
