"""The one upstream call every variant makes: POST the body to the upstream nginx with one
pooled ``aiohttp.ClientSession``, configured as ``bench/forwarder.py`` configures its own (a
512-connection ``TCPConnector``, no automatic decompression), and read the whole reply.

The upstream's base URL comes from the environment (``BENCH_UPSTREAM``): granian imports its
app by name, with no arguments of ours.
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM_ENV = "BENCH_UPSTREAM"
POOL_SIZE = 512  # bench/forwarder.py's pool_size


def upstream_url() -> str:
    """The upstream's base URL, without a trailing slash."""
    url = os.environ.get(UPSTREAM_ENV, "").rstrip("/")
    if not url:
        raise RuntimeError(f"{UPSTREAM_ENV} is not set (the upstream's base URL)")
    return url


def open_session() -> aiohttp.ClientSession:
    """The pooled session; open it on the server's event loop, close it at shutdown."""
    connector = aiohttp.TCPConnector(limit=POOL_SIZE)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def forward(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to ``url``: the upstream's status and body."""
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
        return reply.status, await reply.read()
