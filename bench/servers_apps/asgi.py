"""A bare ASGI app that forwards: no framework, no router, one pooled session.

It answers with the two ASGI messages ``http.response.start`` and ``http.response.body``, as
``gateway.edge.http`` does. The same app is ``uvicorn-asgi`` (uvicorn's httptools protocol),
``uvicorn-gateway`` (the gateway's protocol: its head limits) and ``granian-asgi``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

from bench.servers_apps.upstream import forward, open_session, upstream_url

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Forwarder:
    """The ASGI app: opens its session at lifespan startup, closes it at shutdown; answers
    every HTTP request with the upstream's reply to its body (``Content-Type:
    application/json``)."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.upstream = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [body]
            while message.get("more_body", False):
                message = await receive()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        assert self.session is not None, "lifespan startup opens the session"
        status, data = await forward(self.session, self.upstream + scope["path"], body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode("ascii")),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.upstream = upstream_url()
                self.session = open_session()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


app = Forwarder()
