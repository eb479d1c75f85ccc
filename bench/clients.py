"""The upstream client's own cost: CPU microseconds per request of the gateway's aiohttp session
and of its HTTP/1.1 client (``gateway.backends.h1``), in one process under uvloop, against the
upstream nginx of the benchmarks (its fixed KServe v2 reply, in another process on another core:
its CPU is not counted).

    .venv/bin/python -m bench.clients                  # 3 rounds of 4000 requests per row
    .venv/bin/python -m bench.clients --requests 2000 --rounds 5 --concurrency 1,16,64

Each row sends the ~80-byte v2 JSON body of ``bench.wrk`` as ``POST /v2/models/linear/infer``
with the kserve adapter's headers and reads the whole reply; ``c`` workers (``asyncio.gather``)
share the requests; the last row is the h1 client under ``ReplicaPool.request`` (balancing,
breaker, deadline, timing). CPU is ``time.process_time`` over the measured requests (after a
warm-up that opens the connections), divided by their number; the median of the rounds, which
are interleaved (a noisy neighbour hits every row alike), is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

from bench.procs import BenchError, Processes, find_tool
from bench.scenarios import INFER
from bench.systems import start_upstream
from bench.wrk import BODY
from gateway.backends.h1.client import Client
from gateway.backends.pool import ReplicaPool
from gateway.config.model import Backend

HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
Send = Callable[[], Awaitable[int]]


def aiohttp_session() -> aiohttp.ClientSession:
    """The session of ``gateway.app.open_state`` (``GATEWAY_POOL_SIZE`` defaults to 512)."""
    connector = aiohttp.TCPConnector(
        limit=512, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=60
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )


def aiohttp_sender(session: aiohttp.ClientSession, url: str, body: bytes) -> Send:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=1, sock_read=30)

    async def send() -> int:
        response = await session.request(
            "POST", url, data=body, headers=HEADERS, timeout=timeout, ssl=True
        )
        try:
            return len(await response.read())
        finally:
            response.release()

    return send


def h1_sender(client: Client, url: str, body: bytes) -> Send:
    pool, prefix = client.origin(url.removesuffix(INFER))
    target = prefix + INFER

    async def send() -> int:
        reply = await pool.request(
            "POST", target, HEADERS, body, connect_timeout=1.0, read_timeout=30.0
        )
        return len(reply.body)

    return send


def pool_sender(pool: ReplicaPool, body: bytes) -> Send:
    async def send() -> int:
        reply = await pool.request("POST", INFER, body=body, headers=HEADERS)
        return len(reply.body)

    return send


async def cpu_per_request(send: Send, requests: int, concurrency: int) -> float:
    """CPU µs per request of ``requests`` sends by ``concurrency`` workers."""
    each = max(1, requests // concurrency)

    async def worker(count: int) -> None:
        for _ in range(count):
            if not await send():
                raise BenchError("an empty reply")

    await asyncio.gather(*(worker(max(1, each // 10)) for _ in range(concurrency)))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(worker(each) for _ in range(concurrency)))
    return (time.process_time() - started) / (each * concurrency) * 1e6


async def measure(url: str, args: argparse.Namespace) -> list[tuple[str, int, list[float]]]:
    body = BODY.encode()
    session = aiohttp_session()
    client = Client(limit=512, keepalive_timeout=30)
    spec = Backend.model_validate({"kind": "kserve", "urls": [url], "timeout": "30s"})
    pool = ReplicaPool("bench", spec, session, client)
    senders = {
        "aiohttp session": aiohttp_sender(session, url + INFER, body),
        "h1 client": h1_sender(client, url + INFER, body),
        "ReplicaPool.request (h1)": pool_sender(pool, body),
    }
    rows: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for c in args.concurrency:
                for name, send in senders.items():
                    figure = await cpu_per_request(send, args.requests, c)
                    rows.setdefault((name, c), []).append(figure)
    finally:
        await pool.close()
        await session.close()
        await client.close()
    return [(name, c, figures) for (name, c), figures in rows.items()]


def table(rows: list[tuple[str, int, list[float]]]) -> str:
    base = {c: statistics.median(f) for name, c, f in rows if name == "aiohttp session"}
    lines = [f"{'client':<26} {'c':>3} {'CPU µs/req':>10} {'min':>7} {'max':>7} {'vs aiohttp':>10}"]
    order = {name: i for i, (name, _, _) in enumerate(rows)}
    for name, c, figures in sorted(rows, key=lambda r: (r[1], order[r[0]])):
        median = statistics.median(figures)
        ratio = base[c] / median if median else 0.0
        lines.append(
            f"{name:<26} {c:>3} {median:>10.1f} {min(figures):>7.1f} {max(figures):>7.1f}"
            f" {ratio:>9.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--cpu", type=int, default=0, help="core of this process")
    parser.add_argument("--upstream-cpu", type=int, default=1, help="core of the nginx")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    nginx = find_tool("nginx", "/usr/sbin/nginx")
    if nginx is None:
        sys.exit("bench.clients needs nginx (apt-get install -y nginx-light)")
    os.sched_setaffinity(0, [args.cpu])
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as folder:
        procs = Processes(Path(folder))
        try:
            _, url = start_upstream(procs, nginx, [args.upstream_cpu])
            rows = uvloop.run(measure(url, args))
        finally:
            procs.stop_all()
    print(f"{args.rounds} rounds of {args.requests} requests per row, uvloop, nginx upstream")
    print(table(rows))


if __name__ == "__main__":
    main()
