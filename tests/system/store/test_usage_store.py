"""The store's usage counters, one contract for every store (memory, Redis, Redis Cluster):
added per minute, read back per minute, hour and day, summed across replicas, expired after
their retention. Two Redis stores of a test share their keys (two replicas); in memory, "two
replicas" are two callers of one store."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis

from gateway.store import MemoryStore, Store
from gateway.store.redis.store import RedisStore
from gateway.store.usage import (
    GRANULARITIES,
    USAGE_RETENTION,
    UsageKey,
    UsageRow,
    bucket_expiry,
    bucket_start,
)
from tests.system.store.conftest import MakeStore

pytestmark = pytest.mark.anyio
HOUR = 3600


async def pair(make_store: MakeStore) -> tuple[Store, Store]:
    a = await make_store()
    return (a, a) if isinstance(a, MemoryStore) else (a, await make_store())


def this_hour() -> int:
    """The start of an hour well inside every retention (the previous hour: its minutes are
    all in the past, so a test running across an hour's end reads the same buckets)."""
    return bucket_start("hour", int(time.time())) - HOUR


def table(rows: list[UsageRow]) -> dict[tuple[int, str, str, str], dict[str, int]]:
    return {(r.start, r.tenant, r.model, r.version): dict(r.counts) for r in rows}


async def test_minutes_roll_up_into_their_hour_and_day(store: Store) -> None:
    hour = this_hour()
    day = bucket_start("day", hour)
    await store.usage_add(
        {
            UsageKey(hour + 60, "acme", "fraud", "1"): {"requests": 2, "bytes_in": 100},
            UsageKey(hour + 120, "acme", "fraud", "1"): {"requests": 3, "errors_5xx": 1},
            UsageKey(hour + 120, "acme", "fraud", "2"): {"requests": 1, "cache_hits": 1},
        }
    )
    await store.usage_add({UsageKey(hour + 60, "acme", "fraud", "1"): {"requests": 1}})
    minutes = table(await store.usage_read("minute", [hour + 60, hour + 120, hour + 180]))
    assert minutes == {
        (hour + 60, "acme", "fraud", "1"): {"requests": 3, "bytes_in": 100},
        (hour + 120, "acme", "fraud", "1"): {"requests": 3, "errors_5xx": 1},
        (hour + 120, "acme", "fraud", "2"): {"requests": 1, "cache_hits": 1},
    }
    hours = table(await store.usage_read("hour", [hour]))
    assert hours == {
        (hour, "acme", "fraud", "1"): {"requests": 6, "bytes_in": 100, "errors_5xx": 1},
        (hour, "acme", "fraud", "2"): {"requests": 1, "cache_hits": 1},
    }
    days = table(await store.usage_read("day", [day]))
    assert days == {
        (day, "acme", "fraud", "1"): {"requests": 6, "bytes_in": 100, "errors_5xx": 1},
        (day, "acme", "fraud", "2"): {"requests": 1, "cache_hits": 1},
    }


async def test_two_replicas_adding_at_once_sum_exactly(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    hour = this_hour()
    key = UsageKey(hour, "acme", "fraud", "1")
    other = UsageKey(hour + 60, "beta", "ocr", "3")

    async def add(store: Store, n: int) -> None:
        await store.usage_add({key: {"requests": 1, "bytes_out": n}, other: {"rate_limited": 1}})

    await asyncio.gather(*(add(a if n % 2 else b, n) for n in range(100)))
    hours = table(await a.usage_read("hour", [hour]))
    assert hours == {
        (hour, "acme", "fraud", "1"): {"requests": 100, "bytes_out": sum(range(100))},
        (hour, "beta", "ocr", "3"): {"rate_limited": 100},
    }
    assert table(await b.usage_read("hour", [hour])) == hours


async def test_a_read_can_ask_for_one_tenant(store: Store) -> None:
    hour = this_hour()
    await store.usage_add(
        {
            UsageKey(hour, "acme", "fraud", "1"): {"requests": 1},
            UsageKey(hour, "beta", "fraud", "1"): {"requests": 2},
            UsageKey(hour, "", "", ""): {"requests": 4, "errors_4xx": 4},  # anonymous, refused
        }
    )
    assert table(await store.usage_read("hour", [hour], tenant="beta")) == {
        (hour, "beta", "fraud", "1"): {"requests": 2}
    }
    assert table(await store.usage_read("hour", [hour], tenant="")) == {
        (hour, "", "", ""): {"requests": 4, "errors_4xx": 4}
    }
    assert {r.tenant for r in await store.usage_read("hour", [hour])} == {"acme", "beta", ""}
    assert await store.usage_read("hour", [hour], tenant="nobody") == []


async def test_any_model_and_version_name_reads_back(store: Store) -> None:
    hour = this_hour()
    names = [("a:b|c", 'v"1'), ("ünï", "h:1:tenants"), ("x", "")]
    await store.usage_add(
        {UsageKey(hour, "t:1", m, v): {"requests": i + 1} for i, (m, v) in enumerate(names)}
    )
    got = table(await store.usage_read("minute", [hour]))
    assert got == {(hour, "t:1", m, v): {"requests": i + 1} for i, (m, v) in enumerate(names)}


async def test_empty_buckets_and_zero_increments_read_as_nothing(store: Store) -> None:
    hour = this_hour()
    await store.usage_add({})
    await store.usage_add({UsageKey(hour, "acme", "fraud", "1"): {"requests": 0}})
    assert await store.usage_read("minute", [hour, hour + 60]) == []
    assert await store.usage_read("day", []) == []


async def test_a_bucket_past_its_retention_is_gone(store: Store) -> None:
    """Three days ago: its minute is past the 2 days minutes are kept, its hour and day are
    not (35 and 400 days)."""
    old = bucket_start("minute", int(time.time()) - 3 * 86400)
    await store.usage_add({UsageKey(old, "acme", "fraud", "1"): {"requests": 5}})
    assert await store.usage_read("minute", [old]) == []
    hour, day = bucket_start("hour", old), bucket_start("day", old)
    assert [r.counts for r in await store.usage_read("hour", [hour])] == [{"requests": 5}]
    assert [r.counts for r in await store.usage_read("day", [day])] == [{"requests": 5}]


async def test_redis_keys_expire_at_the_buckets_end_plus_retention(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        hour = this_hour()
        await store.usage_add({UsageKey(hour, "acme", "fraud", "1"): {"requests": 1}})
        for granularity in GRANULARITIES:
            start = bucket_start(granularity, hour)
            for key in (
                f"{redis_prefix}usage:{granularity}:{start}:h:acme",
                f"{redis_prefix}usage:{granularity}:{start}:tenants",
            ):
                expires = await client.expiretime(key)
                assert expires == bucket_expiry(granularity, start), key
        assert USAGE_RETENTION == {"minute": 2 * 86400, "hour": 35 * 86400, "day": 400 * 86400}
    finally:
        await client.aclose()
        await store.close()
