"""What the h1 client's tests share: one request through a client to a raw server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.backends.h1.client import Client
from gateway.backends.h1.connection import Reply
from tests.rawhttp import RawServer

Serve = Callable[..., Awaitable[RawServer]]
"""The ``serve`` fixture: ``await serve(handler, tls=None)``."""


async def call(client: Client, server: RawServer, method: str = "GET", **kw: Any) -> Reply:
    """One request through ``client`` to ``server`` (path ``/`` unless given)."""
    pool, prefix = client.origin(server.url)
    return await pool.request(
        method,
        prefix + kw.pop("path", "/"),
        kw.pop("headers", None),
        kw.pop("body", None),
        connect_timeout=kw.pop("connect_timeout", 5.0),
        read_timeout=kw.pop("read_timeout", 5.0),
    )
