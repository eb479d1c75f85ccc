"""The floor of the full chain in Python (issue 14): the work of ``gateway-full`` and
``gateway-hit``, built from the gateway's own parts, with nothing else.

    BENCH_FLOOR_API_KEY=... python -m bench.floor --upstream URL --redis URL --port N

The raw ``asyncio.Protocol`` with httptools' parser on uvloop of ``bench/servers_apps/raw.py``
that, for each ``POST /v2/models/linear/infer``:

1. looks the ``X-API-Key`` up in a dict (the gateway's verified-key cache, without the
   expiry, the scopes or the last-used time): 401 if unknown;
2. decodes the v2 body with the gateway's codec (``gateway.codecs.v2``) and computes the
   gateway's cache key (``gateway.caching.keys.digest``);
3. makes the gateway's own rate-limit Lua call (``LIMITS``: one bucket, the cache entry read,
   its fill lock taken on a miss) on the gateway's Redis lane (``gateway.store.redis.lane``);
4. answers a hit from the entry's bytes; on a miss, calls the upstream through the gateway's
   HTTP/1.1 client (``gateway.backends.h1``) and stores the entry with the gateway's ``FILL``
   script (which frees the lock);
5. writes the answer in one write, with ``Cache-Status`` and ``RateLimit`` headers.

What it leaves out is what the gateway's chain does beside that work: the typed Call and
Reply, the policy steps, version choice, the request id, Server-Timing, the metrics, the
access line, spans, the error shapes, the limits on the request head, the re-encoding of the
reply. The difference between this row and ``gateway-full`` in one run is their price.
Not a server to deploy: no limits on heads or bodies, no TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections import deque
from typing import Any

import uvloop
from redis.asyncio import Redis
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from bench.servers_apps import raw
from gateway.backends.h1 import errors as h1_errors
from gateway.backends.h1.client import Client
from gateway.backends.h1.origin import OriginPool
from gateway.caching.keys import digest
from gateway.codecs import v2
from gateway.errors import BadRequest
from gateway.store.redis.lane import Lane
from gateway.store.redis.limits import FILL, LIMITS

PATH = b"/v2/models/linear/infer"
_JSON = {"Content-Type": "application/json"}
_TTL_MS = "30000"  # the cache's ttl in bench.systems.full_routes
_LOCK_MS = "10000"
_BUCKET = ["bucket", "1000000.0", "1000000.0", "0.0", "0.0", ""]  # the "bench" plan


class Chain:
    """The per-request work, on one Redis lane and one upstream origin."""

    def __init__(self, lane: Lane, origin: OriginPool, prefix: str, keys: dict[bytes, str]):
        self.lane, self.origin, self.prefix, self.keys = lane, origin, prefix, keys
        self.limits_sha = self.fill_sha = ""

    async def load_scripts(self, redis: Redis) -> None:
        self.limits_sha = str(await redis.script_load(LIMITS))
        self.fill_sha = str(await redis.script_load(FILL))

    async def answer(self, api_key: bytes | None, body: bytes) -> tuple[int, bytes, bytes]:
        """Status, extra head lines, body."""
        tenant = self.keys.get(api_key) if api_key is not None else None
        if tenant is None:
            return 401, b"", b'{"error":"unauthorized"}'
        try:
            key = digest(v2.decode_request(body))
        except BadRequest as exc:
            return 400, b"", b'{"error":"%s"}' % str(exc).encode()
        group = f"{{{tenant}}}"
        entry = f"bench-floor:{group}:c:linear|1|{key}"
        lock = entry + ":lock"
        reply: list[Any] = await self.lane.call(
            "EVALSHA", self.limits_sha, "3", f"bench-floor:{group}:l:rate", entry, lock,
            "take", "1.0", "", _LOCK_MS, *_BUCKET,
        )  # fmt: skip
        limit = b"ratelimit: limit=1000000, remaining=%s, reset=0\r\n" % reply[2]
        if int(reply[0]) != 1:
            return 429, limit, b'{"error":"rate limited"}'
        if reply[5] is not None:
            return 200, limit + b"cache-status: gateway; hit\r\n", bytes(reply[5])
        try:
            upstream = await self.origin.request(
                "POST", self.prefix + PATH.decode(), _JSON, body,
                connect_timeout=1.0, read_timeout=10.0,
            )  # fmt: skip
        except h1_errors.H1Error:
            return 502, b"", b'{"error":"upstream"}'
        if upstream.status == 200:
            await self.lane.call("EVALSHA", self.fill_sha, "2", entry, lock, upstream.body, _TTL_MS)
        miss = b"cache-status: gateway; fwd=miss; stored\r\n"
        return upstream.status, limit + miss, upstream.body


class Connection(raw.Connection):
    """``raw.Connection`` (its parsing and pipelining) answering with the chain: the API key
    read from the head, the answer written with the chain's head lines."""

    def __init__(self, chain: Chain) -> None:
        super().__init__(_unused)
        self.chain = chain
        self.api_key: bytes | None = None
        self.keys: deque[bytes | None] = deque()  # the API key of each request waiting

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.api_key = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-api-key":
            self.api_key = value

    def on_message_complete(self) -> None:
        self.keys.append(self.api_key)
        super().on_message_complete()

    async def answer(self, request: tuple[bytes, bytes, bool]) -> None:
        while True:
            path, body, keep_alive = request
            api_key = self.keys.popleft()
            if path != PATH:
                self.reply(404, b"", b'{"error":"not found"}', keep_alive)
            else:
                self.reply(*await self.chain.answer(api_key, body), keep_alive)
            if not self.waiting or self.transport is None:
                self.task = None
                return
            request = self.waiting.popleft()

    def reply(self, status: int, extra: bytes, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(data)
        if not keep_alive:
            head += b"connection: close\r\n"
        self.transport.write(b"".join((STATUS_LINE[status], head, extra, b"\r\n", data)))
        if not keep_alive:
            self.transport.close()


async def _unused(path: str, body: bytes) -> tuple[int, bytes]:
    raise AssertionError("the floor answers with its chain")  # pragma: no cover


async def serve(host: str, port: int, upstream: str, redis_url: str, api_key: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    redis = Redis.from_url(redis_url)
    lane = Lane.from_pool(redis.connection_pool)
    if lane is None:
        raise SystemExit(f"bench.floor: no lane for {redis_url}")
    client = Client()
    origin, prefix = client.origin(upstream)
    chain = Chain(lane, origin, prefix, {api_key.encode(): "bench"})
    try:
        await chain.load_scripts(redis)
        server = await loop.create_server(lambda: Connection(chain), host, port, backlog=4096)
        async with server:
            await stop.wait()
    finally:
        await client.close()
        await lane.close()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    api_key = os.environ.get("BENCH_FLOOR_API_KEY", "")
    if not api_key:
        raise SystemExit("bench.floor: set BENCH_FLOOR_API_KEY")
    uvloop.run(serve(args.host, args.port, args.upstream, args.redis, api_key))


if __name__ == "__main__":
    main()
