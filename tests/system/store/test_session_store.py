"""The store's console sessions, one contract for every store: a record written by one
replica is read by another, replaced by a second put, gone after its time to live or a
delete. In memory, "two replicas" are two callers of one store."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store import MemoryStore, Store
from tests.system.store.conftest import MakeStore

pytestmark = pytest.mark.anyio


async def pair(make_store: MakeStore) -> tuple[Store, Store]:
    a = await make_store()
    return (a, a) if isinstance(a, MemoryStore) else (a, await make_store())


async def test_a_session_is_shared_replaced_and_deleted(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    assert await b.session_get("s1") is None
    await a.session_put("s1", '{"actor": "one"}', 60.0)
    assert await b.session_get("s1") == '{"actor": "one"}'
    await b.session_put("s1", '{"actor": "two"}', 60.0)
    assert await a.session_get("s1") == '{"actor": "two"}'
    assert await a.session_get("s2") is None
    await a.session_delete("s1")
    assert await b.session_get("s1") is None
    await a.session_delete("s1")  # deleting what is gone is fine


async def test_a_session_expires_after_its_time_to_live(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    await a.session_put("short", "x", 0.05)
    await a.session_put("long", "y", 60.0)
    for _ in range(200):  # bounded: 0.05 s to expire
        if await b.session_get("short") is None:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the session never expired")
    assert await b.session_get("long") == "y"


async def test_a_session_needs_a_positive_time_to_live(store: Store) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        await store.session_put("s", "x", 0)
