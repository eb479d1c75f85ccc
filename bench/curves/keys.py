"""What the number of API keys costs: 10, 10,000 and 1,000,000 keys in Redis (written straight
into the store's records with pipelines, not through the admin API), verified by the
gateway's own ``KeyVerifier``: a first verify of a key (a cache miss: two Redis reads and the
HMAC), a verify of a cached key, and the memory the cache holds (RSS of this process before
and after filling it, and ``tracemalloc``'s count of the Python objects it keeps)."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import math
import os
import random
import time
import tracemalloc
from typing import Any

import redis

from bench import systems
from bench.curves.common import Cores, table
from bench.procs import Processes, rss_kib
from gateway.auth.keys import KeyVerifier, hash_secret
from gateway.store import APIKey, Tenant
from gateway.store.redis.keys import KeyLayout
from gateway.store.redis.store import RedisStore

COUNTS = (10, 10_000, 1_000_000)
KEYS_PER_TENANT = 10
SECRET = b"bench-curves-server-secret-0123456789"
PREFIX = "curve:"
BATCH = 5_000  # commands per pipeline


def key_id(i: int) -> str:
    return f"{i:016x}"


def key_secret(i: int) -> str:
    """A fixed 43-character secret per key number (so any key's full text can be rebuilt)."""
    digest = hashlib.sha256(b"bench-key-%d" % i).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def key_text(i: int) -> str:
    return f"gk_{key_id(i)}_{key_secret(i)}"


def tenant_name(i: int) -> str:
    return f"t{i // KEYS_PER_TENANT:07d}"


def write_keys(url: str, end: int, start: int = 0, prefix: str = PREFIX) -> float:
    """Keys ``start`` .. ``end - 1`` and their tenants, in the store's own format (what
    ``RedisStore.put_tenant`` and ``put_key`` write); the seconds it took."""
    layout = KeyLayout(prefix)
    client = redis.Redis.from_url(url)
    began = time.monotonic()
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for i in range(start, end):
        tenant = tenant_name(i)
        if i % KEYS_PER_TENANT == 0:
            pipe.set(layout.tenant(tenant), Tenant(name=tenant, created_at=now).to_json())
            pipe.sadd(layout.tenants(), tenant)
        record = APIKey(
            key_id=key_id(i), tenant=tenant, secret_hash=hash_secret(SECRET, key_secret(i)),
            scopes=("predict:*",), created_at=now, name=f"k{i}",
        )  # fmt: skip
        pipe.hset(layout.key(record.key_id), "record", record.to_json())
        pipe.sadd(layout.tenant_keys(tenant), record.key_id)
        if len(pipe) >= BATCH:
            pipe.execute()
    pipe.execute()
    client.close()
    return time.monotonic() - began


async def _verify_all(verifier: KeyVerifier, numbers: list[int]) -> tuple[float, float]:
    """Verify these keys one after the other: (wall µs, CPU µs) per verify."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in numbers:
        await verifier.verify(key_text(i))
    n = len(numbers)
    return (time.perf_counter() - wall) * 1e6 / n, (time.process_time() - cpu) * 1e6 / n


async def measure(url: str, count: int, cache_size: int, sample: int) -> dict[str, Any]:
    """Miss and hit cost on ``sample`` keys drawn among ``count``; then the cache filled up to
    ``min(count, cache_size)`` keys, and its memory."""
    store = RedisStore.from_url(url, prefix=PREFIX)
    try:
        verifier = KeyVerifier(store, SECRET, cache_size=cache_size)
        rng = random.Random(count)
        drawn = rng.sample(range(count), min(sample, count))
        miss_wall, miss_cpu = await _verify_all(verifier, drawn)
        hit_wall, hit_cpu = await _verify_all(verifier, drawn)
        await store.close()
        store = RedisStore.from_url(url, prefix=PREFIX)
        verifier = KeyVerifier(store, SECRET, cache_size=cache_size)
        fill = list(range(min(count, cache_size * 2)))  # past the size: the LRU must hold
        gc.collect()
        rss_before = rss_kib([os.getpid()])
        tracemalloc.start()
        for chunk in range(0, len(fill), 10_000):
            await _verify_all(verifier, fill[chunk : chunk + 10_000])
            await verifier.flush()  # a gateway writes the last-used times every 5 s
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        gc.collect()
        cached = verifier.cached
        rss_after = rss_kib([os.getpid()])
    finally:
        await store.close()
    return {
        "keys": count,
        "cache_size": cache_size,
        "sample": len(drawn),
        "miss_wall_us": round(miss_wall, 1),
        "miss_cpu_us": round(miss_cpu, 1),
        "hit_wall_us": round(hit_wall, 1),
        "hit_cpu_us": round(hit_cpu, 1),
        "filled_with": len(fill),
        "cached": cached,
        "cache_traced_kib": round(traced / 1024),
        "cache_rss_kib": rss_after - rss_before,
        "bytes_per_cached_key": math.floor(traced / cached) if cached else None,
    }


def run(
    procs: Processes,
    where: Cores,
    counts: tuple[int, ...] = COUNTS,
    cache_size: int = 100_000,
    sample: int = 2_000,
) -> dict[str, Any]:
    _, url = systems.start_redis(procs, where.load)
    rows: list[dict[str, Any]] = []
    written = 0
    for count in sorted(counts):
        if count > written:  # the keys of the smaller counts stay: each count is a superset
            took = write_keys(url, count, written)
            written = count
        else:
            took = 0.0
        row = asyncio.run(measure(url, count, cache_size, sample))
        row["write_s"] = round(took, 2)
        row["redis_used_mib"] = round(_redis_memory(url) / 2**20, 1)
        rows.append(row)
        print(f"  {row}", flush=True)
    return {"curve": "keys", "rows": rows}


def _redis_memory(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def render(data: dict[str, Any]) -> str:
    headers = [
        "keys", "write s", "miss µs (wall)", "miss CPU µs", "hit µs (wall)", "hit CPU µs",
        "cached", "cache KiB (traced)", "B/key", "cache RSS KiB",
    ]  # fmt: skip
    rows = [
        [r["keys"], r["write_s"], r["miss_wall_us"], r["miss_cpu_us"], r["hit_wall_us"],
         r["hit_cpu_us"], r["cached"], r["cache_traced_kib"], r["bytes_per_cached_key"],
         r["cache_rss_kib"]]
        for r in data["rows"]
    ]  # fmt: skip
    return table(headers, rows)
