"""The store's live-series records, one contract for every store: each replica's steps under
its id, replaced not summed, forgotten out of the window, and the replica gone when it stops
publishing. Two Redis stores of a test share their keys (two replicas); in memory, "two
replicas" are two callers of one store (the memory store is one process)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store import Store
from gateway.store.redis.store import RedisStore
from tests.system.store.conftest import MakeStore
from tests.system.store.test_rollout_store import pair

pytestmark = pytest.mark.anyio


async def test_each_replicas_steps_read_back_under_its_id(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    await a.series_publish("r1", {100: "a100", 105: "a105"}, keep_from=0, ttl=60)
    await b.series_publish("r2", {105: "b105"}, keep_from=0, ttl=60)
    assert await a.series_read([100, 105, 110]) == {
        "r1": {100: "a100", 105: "a105"},
        "r2": {105: "b105"},
    }
    assert await b.series_read([110]) == {"r1": {}, "r2": {}}  # live, nothing in that range
    assert await b.series_read([]) == {"r1": {}, "r2": {}}


async def test_a_step_published_again_is_replaced_and_old_ones_forgotten(store: Store) -> None:
    await store.series_publish("r1", {100: "first", 105: "x"}, keep_from=0, ttl=60)
    await store.series_publish("r1", {100: "second"}, keep_from=0, ttl=60)
    assert await store.series_read([100, 105]) == {"r1": {100: "second", 105: "x"}}
    await store.series_publish("r1", {110: "y"}, keep_from=105, ttl=60)  # 100 left the window
    assert await store.series_read([100, 105, 110]) == {"r1": {105: "x", 110: "y"}}


async def test_a_replica_that_stops_publishing_is_gone_after_its_ttl(
    make_store: MakeStore,
) -> None:
    a, b = await pair(make_store)
    await a.series_publish("quiet", {100: "q"}, keep_from=0, ttl=0.2)
    await b.series_publish("alive", {}, keep_from=0, ttl=60)  # a heartbeat: no steps
    assert set(await b.series_read([100])) == {"quiet", "alive"}
    for _ in range(200):  # bounded: 0.2 s to expire
        if set(await b.series_read([100])) == {"alive"}:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the silent replica never left the fleet")
    await b.series_publish("alive", {}, keep_from=0, ttl=60)  # prunes the index
    assert await a.series_read([100]) == {"alive": {}}


@pytest.mark.parametrize("ttl", [0, -1])
async def test_series_publish_refuses_a_ttl_that_is_not_positive(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.series_publish("r1", {}, keep_from=0, ttl=ttl)


async def test_on_redis_the_keys_share_one_hash_tag_and_expire(redis_store: RedisStore) -> None:
    await redis_store.series_publish("r1", {100: "a"}, keep_from=0, ttl=30)
    client = redis_store._client
    keys = sorted([str(k) async for k in client.scan_iter(match=f"{redis_store._keys.prefix}*")])
    prefix = redis_store._keys.prefix
    assert keys == [f"{prefix}{{series}}:r:r1", f"{prefix}{{series}}:replicas"]
    for key in keys:
        assert 0 < await client.pttl(key) <= 30_000


async def test_each_live_replicas_summary_is_its_last_and_leaves_with_it(
    make_store: MakeStore,
) -> None:
    a, b = await pair(make_store)
    await a.series_publish("r1", {}, keep_from=0, ttl=60, summary="one")
    await a.series_publish("r1", {}, keep_from=0, ttl=60, summary="two")  # replaced
    await b.series_publish("r2", {100: "x"}, keep_from=0, ttl=0.2)  # no summary: ""
    assert await b.series_summaries() == {"r1": "two", "r2": ""}
    for _ in range(200):  # bounded: 0.2 s to expire
        if await a.series_summaries() == {"r1": "two"}:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the silent replica's summary never left")
