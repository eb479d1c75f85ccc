"""A bare RSGI app (granian's own interface) that forwards, for ``granian-rsgi``.

RSGI (granian's ``docs/spec/RSGI.md``): ``await __rsgi__(scope, protocol)`` per request, where
``await protocol()`` is the whole body and ``protocol.response_bytes(status, headers, body)``
the whole answer. granian's worker also calls ``__rsgi_init__(loop)`` before it serves (the
loop not yet running) and ``__rsgi_del__(loop)`` after (``granian/server/mp.py``).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from bench.servers_apps.upstream import forward, open_session, upstream_url


class Scope(Protocol):
    """The part of granian's ``RSGIScope`` this app reads."""

    @property
    def proto(self) -> str: ...

    @property
    def path(self) -> str: ...


class HTTPProtocol(Protocol):
    """The part of granian's ``RSGIHTTPProtocol`` this app uses."""

    async def __call__(self) -> bytes: ...

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


class Forwarder:
    """Answers every HTTP request with the upstream's reply to its body. The session is
    opened by the first request: ``__rsgi_init__`` runs before the worker's loop does."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.upstream = ""

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.upstream = upstream_url()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.session is not None and not loop.is_running():
            loop.run_until_complete(self.session.close())

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        if self.session is None:
            self.session = open_session()
        body = await protocol()
        status, data = await forward(self.session, self.upstream + scope.path, body)
        protocol.response_bytes(status, [("content-type", "application/json")], data)


app = Forwarder()
