"""``open_store`` on a ``redis+cluster://`` URL: a working store on the three-master cluster,
safe under many first calls at once, and an unreachable cluster is an outage, not a bug."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gateway.store import Limit, StoreUnavailable, Tenant, open_store
from gateway.store.redis.store import RedisStore
from tests.support import free_port

pytestmark = pytest.mark.anyio


def cluster_url(redis_url: str, query: str = "") -> str:
    """``redis+cluster://`` on a dead node first, then the cluster's first node."""
    node = redis_url.split("//", 1)[1].split("/", 1)[0]
    return f"redis+cluster://127.0.0.1:{free_port()},{node}/{query}"


async def test_open_store_on_a_cluster_url(redis_cluster_url: str) -> None:
    prefix = f"gwtest:{uuid.uuid4().hex[:8]}:"
    store = open_store(cluster_url(redis_cluster_url, "?socket_timeout=3"), prefix=prefix)
    assert isinstance(store, RedisStore)
    try:
        # fifty first calls at once, none made before: the client reads the slot map once
        limits = [Limit(f"t:{i}", "rate", "bucket", 5, rate=1) for i in range(50)]
        answers = await asyncio.gather(*(store.take([limit], cost=2) for limit in limits))
        assert all(verdict.admitted for verdict, _ in answers)
        assert [verdict.states[0].remaining for verdict, _ in answers] == [3.0] * 50
        await store.put_tenant(Tenant("acme", plan="gold"))
        assert await store.get_tenant("acme") == Tenant("acme", plan="gold")
        await store.cache_set("t:acme", "k", b"\x00\xff", 60)
        assert await store.cache_purge("t:acme|*") == 1
        assert await store.ping() is True
    finally:
        await store.close()


async def test_an_unreachable_cluster_is_an_outage() -> None:
    store = open_store(f"redis+cluster://127.0.0.1:{free_port()}", prefix="gwtest:none:")
    try:
        started = time.monotonic()
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.take([Limit("t:a", "rate", "bucket", 5, rate=1)])
        with pytest.raises(StoreUnavailable):
            await store.get_tenant("acme")
        assert time.monotonic() - started < 5
    finally:
        await store.close()
