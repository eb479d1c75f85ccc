"""Per-request cost of the limit + cache step (µs per request, one core, sequential).

    .venv/bin/python -m bench.limits [--redis redis://127.0.0.1:6379/0] [-n 3000]

A tenant plan with a bucket, a daily quota and a concurrency cap (three limits, one Lua call),
with and without the cache lookup sharing that round trip; plus the cache key itself (decode the
v2 body into tensors, SHA-256 over them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

from gateway.caching.keys import cache_key
from gateway.codecs import v2
from gateway.limits.config import Plan
from gateway.limits.limiter import plan_limits
from gateway.store import Store, open_store


async def timed(n: int, step: Callable[[], Awaitable[object]]) -> float:
    for _ in range(50):
        await step()
    started = time.perf_counter()
    for _ in range(n):
        await step()
    return (time.perf_counter() - started) / n * 1e6


async def measure(store: Store, n: int, label: str) -> list[tuple[str, float]]:
    plan = Plan.model_validate(
        {"rate": "1000000/s", "burst": 1000000, "quota": ["1000000000/day"], "concurrency": 1000}
    )
    limits = plan_limits(f"t:{uuid.uuid4().hex[:6]}", plan, None)
    group = limits[0].group

    async def take() -> None:
        lease = uuid.uuid4().hex
        verdict, _ = await store.take(limits, lease=lease)
        await store.release(limits, lease)
        assert verdict.admitted

    async def take_with_cache() -> None:
        lease = uuid.uuid4().hex
        verdict, _ = await store.take(limits, lease=lease, cache=(group, "bench-key"))
        await store.release(limits, lease)
        assert verdict.admitted

    async def bucket_only() -> None:
        verdict, _ = await store.take(limits[:1])
        assert verdict.admitted

    return [
        (f"1 bucket ({label})", await timed(n, bucket_only)),
        (f"bucket+quota+concurrency, take+release ({label})", await timed(n, take)),
        (f"  ... and the cache lookup in the same call ({label})", await timed(n, take_with_cache)),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    body = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
    ).encode()

    async def key() -> None:
        cache_key(v2.decode_request(body), "acme", False, "m", "1")

    rows = [("cache key of a 64-float v2 body", await timed(args.n, key))]
    memory = open_store(None)
    rows += await measure(memory, args.n, "memory")
    if args.redis:
        redis = open_store(args.redis, prefix=f"gwbench:{uuid.uuid4().hex[:6]}:")
        rows += await measure(redis, args.n, "Redis")
        await redis.close()
    for label, micros in rows:
        print(f"{label:58s} {micros:8.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
