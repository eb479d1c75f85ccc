"""Limits, one contract for every store: token buckets, windows and concurrency, all or nothing."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import redis.asyncio as aredis

from gateway.store import Limit, Store, StoreUnavailable, Verdict
from gateway.store.redis.store import RedisStore
from tests.redis_plugin import StartRedis
from tests.support import free_port
from tests.system.store.conftest import WAIT, MakeStore
from tests.system.store.test_cache import CACHE_OPERATIONS

pytestmark = pytest.mark.anyio

SLOW = 0.001  # a refill rate too slow to matter within a test


def bucket(limit: float, rate: float = SLOW, group: str = "t:acme", name: str = "rate") -> Limit:
    return Limit(group, name, "bucket", limit, rate=rate)


def window(limit: float, length: float = 3600, group: str = "t:acme", name: str = "day") -> Limit:
    return Limit(group, name, "window", limit, window=length)


def concurrency(limit: float, ttl: float = 60, group: str = "m:fraud") -> Limit:
    return Limit(group, "concurrency", "concurrency", limit, lease_ttl=ttl)


async def take(store: Store, *limits: Limit, **options: Any) -> Verdict:
    verdict, _ = await store.take(limits, **options)
    return verdict


async def clear_of_a_boundary(length: float, margin: float = 2.0) -> None:
    """Wait until the current aligned window has ``margin`` seconds left (the store's clock is
    this machine's), so a test's window does not roll over under it."""
    left = length - time.time() % length
    if left < margin:
        await anyio.sleep(left + 0.01)


# token buckets


async def test_a_bucket_admits_its_burst_then_refills_at_its_rate(store: Store) -> None:
    limit = bucket(3, rate=4)
    verdicts = [await take(store, limit) for _ in range(4)]
    assert [v.admitted for v in verdicts] == [True, True, True, False]
    assert [v.states[0].remaining for v in verdicts] == [2, 1, 0, 0]
    assert 0.7 < verdicts[2].states[0].reset <= 0.75  # three tokens at 4/s
    assert verdicts[3].lease is None
    assert 0 < verdicts[3].retry_after <= 1 / 4
    await anyio.sleep(0.625)  # 2.5 tokens at 4/s: two whole ones
    assert [(await take(store, limit)).admitted for _ in range(4)] == [True, True, False, False]


async def test_a_bucket_spends_the_cost(store: Store) -> None:
    limit = bucket(5, rate=2)
    first = await take(store, limit, cost=2)
    assert (first.admitted, first.states[0].remaining) == (True, 3)
    assert (await take(store, limit, cost=2.5)).states[0].remaining == 0  # 0.5 left: floor
    refused = await take(store, limit, cost=2)
    assert not refused.admitted
    assert 0.5 < refused.retry_after <= 0.75  # 1.5 tokens missing at 2/s
    never = await take(store, limit, cost=6)  # more than the bucket holds
    assert (never.admitted, never.retry_after) == (False, math.inf)
    assert (await take(store, limit, cost=0)).admitted


# windows


async def test_a_window_admits_its_quota_exactly(store: Store) -> None:
    limit = window(5)
    await clear_of_a_boundary(3600)
    verdicts = [await take(store, limit) for _ in range(7)]
    assert [v.admitted for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.states[0].remaining for v in verdicts] == [4, 3, 2, 1, 0, 0, 0]
    last = verdicts[-1]
    assert 0 < last.retry_after == pytest.approx(last.states[0].reset, abs=0.5)
    assert last.retry_after <= 3600
    end = time.time() + last.states[0].reset
    assert end == pytest.approx(round(end / 3600) * 3600, abs=0.5)  # on a multiple of 3600 s


async def test_a_window_counts_fractional_costs(store: Store) -> None:
    limit = window(1)
    await clear_of_a_boundary(3600)
    admitted = [(await take(store, limit, cost=0.25)).admitted for _ in range(5)]
    assert admitted == [True, True, True, True, False]
    assert (await take(store, limit, cost=2)).retry_after == math.inf


async def test_a_new_window_starts_a_new_quota(store: Store) -> None:
    limit = window(2, length=0.5)
    await clear_of_a_boundary(0.5, margin=0.2)
    assert [(await take(store, limit)).admitted for _ in range(3)] == [True, True, False]
    refused = await take(store, limit)
    assert 0 < refused.retry_after <= 0.5
    await anyio.sleep(refused.retry_after + 0.02)
    assert (await take(store, limit)).states[0].remaining == 1


# concurrency


async def test_concurrency_limits_leases_in_flight(store: Store) -> None:
    limit = concurrency(2)
    first = await take(store, limit, lease="l1")
    assert (first.admitted, first.lease, first.states[0].remaining) == (True, "l1", 1)
    assert (await take(store, limit, lease="l2")).states[0].remaining == 0
    full = await take(store, limit, lease="l3")
    assert (full.admitted, full.lease) == (False, None)
    assert 0 < full.retry_after <= 60  # until the oldest lease expires, at the latest
    assert (await take(store, limit, lease="l1")).admitted  # a held lease is renewed
    await store.release([limit, bucket(1)], "l1")
    assert (await take(store, limit, lease="l3")).admitted
    await store.release([limit], "never-taken")
    assert not (await take(store, limit, lease="l4")).admitted


async def test_an_expired_lease_is_dropped(store: Store) -> None:
    limit = concurrency(1, ttl=0.3)
    assert (await take(store, limit, lease="crashed")).admitted
    refused = await take(store, limit, lease="next")
    assert 0 < refused.retry_after <= 0.3
    await anyio.sleep(refused.retry_after + 0.02)
    assert (await take(store, limit, lease="next")).admitted


# all or nothing


async def test_a_rejection_in_a_group_takes_nothing_from_it(store: Store) -> None:
    rate, day, slots = bucket(10), window(2), concurrency(5, group="t:acme")
    await clear_of_a_boundary(3600)
    for n in range(2):
        assert (await take(store, rate, day, slots, lease=f"l{n}")).admitted
    refused = await take(store, rate, day, slots, lease="l2")
    assert not refused.admitted
    assert [s.remaining for s in refused.states] == [8, 0, 3]
    assert [s.name for s in refused.states] == ["rate", "day", "concurrency"]
    assert (await take(store, rate, slots, lease="l3")).states[0].remaining == 7


async def test_a_later_group_that_rejects_refunds_the_earlier(store: Store) -> None:
    """Groups are decided in sorted order: 'a:…' takes first, 'z:…' rejects, 'a:…' gets it back."""
    tokens, quota = bucket(10, group="a:first"), window(5, group="a:first")
    slots = concurrency(2, group="a:first")
    gate = bucket(1, group="z:last")
    await clear_of_a_boundary(3600)
    assert (await take(store, gate, tokens, quota, slots, lease="l1")).admitted
    refused = await take(store, gate, tokens, quota, slots, lease="l2")
    assert not refused.admitted
    assert [s.group for s in refused.states] == ["z:last", "a:first", "a:first", "a:first"]
    assert [s.remaining for s in refused.states] == [0, 9, 4, 1]
    assert 0 < refused.retry_after <= 1 / SLOW
    after = await take(store, tokens, quota, slots, lease="l3")
    assert [s.remaining for s in after.states] == [8, 3, 0]


async def test_groups_after_a_rejection_are_reported_untouched(store: Store) -> None:
    first, blocked, last = bucket(5, group="a"), bucket(1, rate=10, group="b"), window(1, group="c")
    await clear_of_a_boundary(3600)
    assert (await take(store, first, blocked, last)).admitted
    refused = await take(store, last, blocked, first)
    assert [s.remaining for s in refused.states] == [0, 0, 4]
    assert refused.retry_after == pytest.approx(refused.states[0].reset, abs=0.5)  # the largest
    assert refused.retry_after > 1
    await anyio.sleep(0.1)  # 'b' refilled: only 'c' blocks, and 'a' still has 4
    again = await take(store, first, blocked, last)
    assert [s.remaining for s in again.states] == [4, 1, 0]


async def test_takes_racing_for_a_bucket_admit_exactly_its_burst(store: Store) -> None:
    limit, slots = bucket(10), concurrency(5)
    verdicts = await asyncio.gather(*(take(store, limit) for _ in range(40)))
    assert sum(v.admitted for v in verdicts) == 10
    verdicts = await asyncio.gather(*(take(store, slots, lease=f"l{n}") for n in range(40)))
    assert sum(v.admitted for v in verdicts) == 5


async def test_no_limits_admit(store: Store) -> None:
    assert await store.take([]) == (Verdict(admitted=True, states=(), retry_after=0.0), None)


BAD_TAKES: list[tuple[str, Callable[[Store], Awaitable[object]]]] = [
    ("lease", lambda s: s.take([concurrency(1)])),
    ("twice", lambda s: s.take([bucket(1), bucket(2)])),
    ("cost", lambda s: s.take([bucket(1)], cost=-1)),
    ("cost", lambda s: s.take([bucket(1)], cost=math.nan)),
]


@pytest.mark.parametrize(("match", "call"), BAD_TAKES, ids=[m for m, _ in BAD_TAKES])
async def test_a_take_it_cannot_decide_is_refused(
    store: Store, match: str, call: Callable[[Store], Awaitable[object]]
) -> None:
    with pytest.raises(ValueError, match=match):
        await call(store)


# Redis only


async def test_replicas_share_one_bucket_on_the_servers_clock(
    make_redis_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = await make_redis_store(), await make_redis_store()
    limit = bucket(4, rate=SLOW)
    assert [(await take(store, limit)).admitted for store in (one, two, one, two)] == [True] * 4
    clock = time.time
    monkeypatch.setattr(time, "time", lambda: clock() + 86_400)  # a gateway a day ahead
    assert not (await take(two, limit)).admitted  # the refill is Redis TIME's, not ours


async def test_the_layout_of_limit_keys(
    redis_store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    rate, day, slots = bucket(10, rate=5), window(3, length=60), concurrency(2, ttl=30)
    await clear_of_a_boundary(60)
    assert (await take(redis_store, rate, day, slots, lease="l1")).admitted
    admin = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        base = f"{redis_prefix}{{t:acme}}:l:"
        assert await admin.type(f"{base}rate") == "hash"
        assert float(await admin.hget(f"{base}rate", "tokens") or 0) == 9
        assert 0 < await admin.pttl(f"{base}rate") <= 200 + 1000  # one token at 5/s + margin
        index = int(time.time() // 60)
        assert await admin.get(f"{base}day:{index}") == "1"
        assert 0 < await admin.pttl(f"{base}day:{index}") <= 61_000
        leases = f"{redis_prefix}{{m:fraud}}:l:concurrency"
        assert await admin.zrange(leases, 0, -1) == ["l1"]
        assert 29_000 < await admin.pttl(leases) <= 31_000
    finally:
        await admin.aclose()


async def test_the_script_is_loaded_again_after_a_script_flush(start_redis: StartRedis) -> None:
    server = start_redis()  # its own server: SCRIPT FLUSH is server-wide
    store = RedisStore.from_url(server.url)
    admin = aredis.Redis.from_url(server.url)
    first, gate = bucket(3, group="a"), bucket(1, group="b")
    try:
        assert (await take(store, first, gate)).admitted  # not loaded yet: EVAL
        await admin.script_flush()
        await store.cache_set("c", "k", b"v", 60)
        verdict, value = await store.take([first], cache=("c", "k"))  # a pipeline
        assert (verdict.states[0].remaining, value) == (1, b"v")
        await admin.script_flush()
        refused = await take(store, first, gate)  # 'a' takes (EVAL), 'b' rejects, 'a' refunds
        assert [s.remaining for s in refused.states] == [1, 0]
        await admin.script_flush()
        verdict, value = await store.take([first], cache=("a", "k"))
        assert (verdict.states[0].remaining, value) == (0, None)
    finally:
        await admin.aclose()
        await store.close()


LIMIT_OPERATIONS: list[tuple[str, Callable[[Store], Awaitable[object]]]] = [
    ("take", lambda s: s.take([bucket(1)])),
    ("take-groups", lambda s: s.take([bucket(1, group="a"), bucket(1, group="b")])),
    ("take-cache", lambda s: s.take([bucket(1)], cache=("other", "k"))),
    ("release", lambda s: s.release([concurrency(1)], "l1")),
]


DEAD_REDIS_OPERATIONS = LIMIT_OPERATIONS + CACHE_OPERATIONS


@pytest.mark.parametrize(
    ("name", "operation"), DEAD_REDIS_OPERATIONS, ids=[n for n, _ in DEAD_REDIS_OPERATIONS]
)
async def test_a_dead_redis_is_store_unavailable(
    name: str, operation: Callable[[Store], Awaitable[object]]
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}", retries=0, connect_timeout=0.5)
    try:
        with anyio.fail_after(WAIT), pytest.raises(StoreUnavailable) as caught:
            await operation(store)
        assert caught.value.status == 503
    finally:
        await store.close()


async def test_two_replicas_hammering_one_bucket_stay_within_its_rate(
    redis_url: str, redis_prefix: str
) -> None:
    """20 tasks on two stores for ~1.5 s: admitted <= burst + rate*T, and at least 99% of it."""
    burst, rate, duration = 100, 1000.0, 1.5
    limit = bucket(burst, rate=rate, group="t:hammer")
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    admitted = 0
    began, ended = math.inf, -math.inf

    async def hammer(store: RedisStore, deadline: float) -> None:
        nonlocal admitted, began, ended
        while time.monotonic() < deadline:
            start = time.monotonic()
            verdict = await take(store, limit)
            began, ended = min(began, start), max(ended, time.monotonic())
            admitted += verdict.admitted

    try:
        # a connection per task, and the script loaded, before the clock starts
        warm = bucket(100, group="t:warm")
        await asyncio.gather(*(take(stores[n % 2], warm) for n in range(20)))
        deadline = time.monotonic() + duration
        async with anyio.create_task_group() as tasks:
            for n in range(20):
                tasks.start_soon(hammer, stores[n % 2], deadline)
    finally:
        for store in stores:
            await store.close()
    bound = burst + rate * (ended - began)
    print(f"admitted {admitted} of a bound of {bound:.1f} ({admitted / bound:.2%})")
    assert 0.99 * bound <= admitted <= bound
