"""One contract, every store: in memory, on Redis, and on a three-node Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import pytest
import redis.asyncio as aredis

from gateway.store import (
    AUDIT_CAP,
    RESYNC,
    APIKey,
    AuditEntry,
    MemoryStore,
    Store,
    StoreUnavailable,
    Tenant,
    open_store,
)
from gateway.store.memory.store import SUBSCRIBER_BACKLOG
from gateway.store.redis.store import RedisStore
from tests.redis_plugin import StartRedis
from tests.support import free_port
from tests.system.store.conftest import WAIT, MakeStore

pytestmark = pytest.mark.anyio


def key(key_id: str, tenant: str = "acme", **fields: Any) -> APIKey:
    return APIKey(key_id=key_id, tenant=tenant, secret_hash="ab" * 32, **fields)


def entry(n: int) -> AuditEntry:
    return AuditEntry(at=1000.0 + n, actor="admin-token", action="key.create", target=f"key:{n}")


@asynccontextmanager
async def subscribed(store: Store, channel: str) -> AsyncIterator[AsyncGenerator[str, None]]:
    """A subscription whose first item (RESYNC) has arrived, closed on the way out."""
    messages = store.subscribe(channel)
    assert isinstance(messages, AsyncGenerator)
    try:
        assert await receive(messages) == RESYNC
        yield messages
    finally:
        await messages.aclose()


async def receive(messages: AsyncIterator[str]) -> str:
    with anyio.fail_after(WAIT):
        return await anext(messages)


# tenants


async def test_tenant_round_trip_and_replace(store: Store) -> None:
    tenant = Tenant(
        "acme",
        plan="pro",
        models=("fraud*", "ocr"),
        scopes=("predict:fraud",),
        metadata={"owner": "ops@acme.test"},
        created_at=1700000000.25,
    )
    assert await store.get_tenant("acme") is None
    await store.put_tenant(tenant)
    assert await store.get_tenant("acme") == tenant
    await store.put_tenant(replace(tenant, disabled=True, plan=None))
    assert await store.get_tenant("acme") == replace(tenant, disabled=True, plan=None)
    assert await store.list_tenants() == [replace(tenant, disabled=True, plan=None)]


async def test_list_tenants_is_sorted_by_name(store: Store) -> None:
    assert await store.list_tenants() == []
    for name in ["zeta", "acme", "m{x}", "beta"]:
        await store.put_tenant(Tenant(name))
    assert [t.name for t in await store.list_tenants()] == ["acme", "beta", "m{x}", "zeta"]


async def test_delete_tenant_removes_it_and_only_its_keys(store: Store) -> None:
    await store.put_tenant(Tenant("acme"))
    await store.put_tenant(Tenant("other"))
    await store.put_key(key("k1"))
    await store.put_key(key("k2"))
    await store.put_key(key("k3", tenant="other"))
    assert await store.delete_tenant("acme") is True
    assert await store.get_tenant("acme") is None
    assert await store.get_key("k1") is None
    assert await store.get_key("k2") is None
    assert await store.list_keys("acme") == []
    assert [t.name for t in await store.list_tenants()] == ["other"]
    assert await store.get_key("k3") == key("k3", tenant="other")
    assert await store.delete_tenant("acme") is False
    assert await store.delete_tenant("never") is False


# keys


async def test_key_round_trip(store: Store) -> None:
    full = key(
        "abcd1234",
        scopes=("predict:fraud", "admin"),
        created_at=1700000000.5,
        expires_at=1700003600.0,
        revoked_at=1700000100.0,
        last_used_at=1700000050.125,
        name="ci",
        rotated_to="efgh5678",
    )
    assert await store.get_key("abcd1234") is None
    await store.put_key(full)
    await store.put_key(key("bare"))
    assert await store.get_key("abcd1234") == full
    assert await store.get_key("bare") == key("bare")


async def test_list_keys_is_the_tenants_sorted_by_created_at(store: Store) -> None:
    for key_id, created in [("c", 30.0), ("a", 10.0), ("b", 20.0)]:
        await store.put_key(key(key_id, created_at=created))
    await store.put_key(key("x", tenant="other", created_at=5.0))
    assert [k.key_id for k in await store.list_keys("acme")] == ["a", "b", "c"]
    assert [k.key_id for k in await store.list_keys("other")] == ["x"]
    assert await store.list_keys("nobody") == []


async def test_touch_keys_never_lowers_last_used_at(store: Store) -> None:
    await store.put_key(key("k1"))
    await store.put_key(key("k2", last_used_at=500.0))
    await store.touch_keys({"k1": 100.0, "k2": 400.0})
    assert (await store.get_key("k1")) == key("k1", last_used_at=100.0)
    assert (await store.get_key("k2")) == key("k2", last_used_at=500.0)
    await store.touch_keys({"k1": 50.0, "k2": 600.5})
    assert [k.last_used_at for k in await store.list_keys("acme")] == [100.0, 600.5]
    await store.touch_keys({})


async def test_touch_keys_ignores_unknown_ids_and_never_resurrects(store: Store) -> None:
    await store.put_tenant(Tenant("acme"))
    await store.put_key(key("k1"))
    await store.touch_keys({"ghost": 100.0, "k1": 100.0})
    assert await store.get_key("ghost") is None
    assert await store.delete_tenant("acme")
    await store.touch_keys({"k1": 200.0})
    assert await store.get_key("k1") is None
    assert await store.list_keys("acme") == []


async def test_put_key_keeps_a_later_concurrent_use(store: Store) -> None:
    await store.put_key(key("k1", last_used_at=100.0))
    read = await store.get_key("k1")
    assert read is not None
    await store.touch_keys({"k1": 300.0})  # a request lands between an admin's read and write
    await store.put_key(replace(read, revoked_at=250.0))
    assert await store.get_key("k1") == key("k1", last_used_at=300.0, revoked_at=250.0)


# idempotency


async def test_remember_keeps_the_first_value(store: Store) -> None:
    assert await store.remember("idem-1", "first", 60) is None
    assert await store.remember("idem-1", "second", 60) == "first"
    assert await store.remember("idem-2", "other", 60) is None


async def test_remember_is_atomic_under_concurrency(store: Store) -> None:
    values = [f"value-{i}" for i in range(50)]
    results = await asyncio.gather(*(store.remember("race", v, 60) for v in values))
    winners = [v for v, r in zip(values, results, strict=True) if r is None]
    assert len(winners) == 1
    assert {r for r in results if r is not None} == {winners[0]}


async def test_remember_expires(store: Store) -> None:
    assert await store.remember("short", "a", 0.2) is None
    assert await store.remember("short", "b", 60) == "a"
    with anyio.fail_after(WAIT):
        while await store.remember("short", "c", 60) is not None:  # noqa: ASYNC110 - no event
            await anyio.sleep(0.05)
    assert await store.remember("short", "d", 60) == "c"


@pytest.mark.parametrize("ttl", [0, -1.0])
async def test_remember_rejects_a_ttl_that_is_not_positive(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.remember("k", "v", ttl)


# audit


async def test_audit_log_is_newest_first_and_limited(store: Store) -> None:
    assert await store.audit_log() == []
    detailed = AuditEntry(
        at=999.5,
        actor="jwt:alice@issuer",
        action="tenant.create",
        target="tenant:acme",
        detail={"plan": "pro", "models": ["a", "b"], "n": 3},
        request_id="req-1",
    )
    await store.audit(detailed)
    for n in range(5):
        await store.audit(entry(n))
    assert await store.audit_log() == [entry(n) for n in reversed(range(5))] + [detailed]
    assert await store.audit_log(limit=2) == [entry(4), entry(3)]
    assert await store.audit_log(limit=0) == []


async def test_audit_keeps_only_the_newest_entries(make_store: MakeStore) -> None:
    store = await make_store(audit_cap=5)
    for n in range(8):
        await store.audit(entry(n))
    assert await store.audit_log(limit=100) == [entry(n) for n in reversed(range(3, 8))]


async def test_audit_cap_is_ten_thousand(store: Store) -> None:
    assert AUDIT_CAP == 10_000
    batch = 50  # concurrent writes; RedisCluster's pools fail (not wait) past 100 per node
    for start in range(0, AUDIT_CAP + 3, batch):
        numbers = range(start, min(start + batch, AUDIT_CAP + 3))
        await asyncio.gather(*(store.audit(entry(n)) for n in numbers))
    log = await store.audit_log(limit=AUDIT_CAP + 100)
    assert len(log) == AUDIT_CAP  # 3 of the first batch (written concurrently) are gone
    assert {f"key:{n}" for n in range(batch, AUDIT_CAP + 3)} <= {e.target for e in log}


# publish / subscribe


async def test_publish_reaches_every_subscriber_after_resync(store: Store) -> None:
    async with subscribed(store, "events") as first, subscribed(store, "events") as second:
        await store.publish("elsewhere", "not for us")
        await store.publish("events", "m1")
        await store.publish("events", "m2")
        for messages in (first, second):
            assert [await receive(messages), await receive(messages)] == ["m1", "m2"]


async def test_a_subscription_ends_when_its_task_is_cancelled(store: Store) -> None:
    received: list[str] = []
    resynced = anyio.Event()

    async def consume() -> None:
        async for message in store.subscribe("events"):
            received.append(message)
            resynced.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consume)
        with anyio.fail_after(WAIT):
            await resynced.wait()
        tasks.cancel_scope.cancel()
    assert received == [RESYNC]
    await store.publish("events", "after")  # nobody listens, nothing breaks


async def test_a_memory_subscriber_that_falls_behind_is_told_to_resync() -> None:
    store = MemoryStore()
    async with subscribed(store, "events") as messages:
        for n in range(SUBSCRIBER_BACKLOG + 1):
            await store.publish("events", f"m{n}")
        assert await receive(messages) == RESYNC
        await store.publish("events", "fresh")
        assert await receive(messages) == "fresh"


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


# records


def test_records_ignore_unknown_fields_and_fill_missing_ones() -> None:
    assert Tenant.from_json('{"name": "acme", "added_in_v2": 1}') == Tenant("acme")
    assert APIKey.from_json(key("k", scopes=("a",)).to_json()) == key("k", scopes=("a",))
    assert AuditEntry.from_json(entry(1).to_json()) == entry(1)
    with pytest.raises(ValueError, match="JSON object"):
        Tenant.from_json("[]")


# Redis only


async def test_a_subscriber_survives_client_kill(start_redis: StartRedis) -> None:
    server = start_redis()  # its own server: CLIENT KILL TYPE pubsub hits every subscriber
    store = RedisStore.from_url(server.url)
    admin = aredis.Redis.from_url(server.url)
    try:
        async with subscribed(store, "events") as messages:
            await store.publish("events", "before")
            assert await receive(messages) == "before"
            assert await admin.client_kill_filter(_type="pubsub") == 1
            assert await receive(messages) == RESYNC
            await store.publish("events", "after")
            assert await receive(messages) == "after"
    finally:
        await admin.aclose()
        await store.close()


async def test_a_subscriber_waits_out_a_redis_restart(start_redis: StartRedis) -> None:
    server = start_redis()
    store = RedisStore.from_url(server.url, retries=0, connect_timeout=0.5)
    try:
        async with subscribed(store, "events") as messages:
            server.stop()
            server = start_redis(port=server.port)
            assert await receive(messages) == RESYNC
            await store.publish("events", "back")
            assert await receive(messages) == "back"
    finally:
        await store.close()


async def test_a_quiet_subscription_stays_alive_on_keepalive_pings(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, keepalive=0.05)
    try:
        async with subscribed(store, "events") as messages:
            await anyio.sleep(0.5)  # ten keepalive periods without traffic
            await store.publish("events", "still here")
            assert await receive(messages) == "still here"
    finally:
        await store.close()


async def test_closing_a_subscription_releases_its_connection(
    redis_store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    admin = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with subscribed(redis_store, "events"):
            assert await admin.pubsub_numsub(f"{redis_prefix}events") == [
                (f"{redis_prefix}events", 1)
            ]
        assert await admin.pubsub_numsub(f"{redis_prefix}events") == [(f"{redis_prefix}events", 0)]
    finally:
        await admin.aclose()


async def test_scripts_are_reloaded_after_a_script_flush(start_redis: StartRedis) -> None:
    server = start_redis()  # its own server: SCRIPT FLUSH is server-wide
    store = RedisStore.from_url(server.url)
    admin = aredis.Redis.from_url(server.url)
    try:
        await store.put_key(key("k1"))
        await admin.script_flush()
        await store.touch_keys({"k1": 10.0})
        await admin.script_flush()
        await store.put_key(key("k2"))
        await admin.script_flush()
        assert await store.remember("r", "v", 60) is None
        assert [k.last_used_at for k in await store.list_keys("acme")] == [10.0, None]
    finally:
        await admin.aclose()
        await store.close()


async def test_the_pool_waits_for_a_connection_instead_of_failing(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, max_connections=2)
    try:
        results = await asyncio.gather(*(store.remember(f"k{i}", "v", 60) for i in range(40)))
        assert results == [None] * 40
    finally:
        await store.close()


OPERATIONS: list[tuple[str, Callable[[Store], Awaitable[object]]]] = [
    ("put_tenant", lambda s: s.put_tenant(Tenant("acme"))),
    ("get_tenant", lambda s: s.get_tenant("acme")),
    ("list_tenants", lambda s: s.list_tenants()),
    ("delete_tenant", lambda s: s.delete_tenant("acme")),
    ("put_key", lambda s: s.put_key(key("k"))),
    ("get_key", lambda s: s.get_key("k")),
    ("list_keys", lambda s: s.list_keys("acme")),
    ("touch_keys", lambda s: s.touch_keys({"k": 1.0})),
    ("remember", lambda s: s.remember("k", "v", 60)),
    ("audit", lambda s: s.audit(entry(1))),
    ("audit_log", lambda s: s.audit_log()),
    ("publish", lambda s: s.publish("events", "m")),
]


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=[n for n, _ in OPERATIONS])
async def test_a_dead_redis_is_store_unavailable(
    name: str, operation: Callable[[Store], Awaitable[object]]
) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}", retries=0, connect_timeout=0.5)
    try:
        with anyio.fail_after(WAIT), pytest.raises(StoreUnavailable) as caught:
            await operation(store)
        assert caught.value.status == 503
        assert caught.value.code == "store_unavailable"
        assert await store.ping() is False
    finally:
        await store.close()


async def test_open_store_chooses_by_url(redis_url: str) -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(""), MemoryStore)
    store = open_store(redis_url, prefix="gwtest:open:")
    try:
        assert isinstance(store, RedisStore)
        assert await store.ping() is True
    finally:
        await store.close()
    with pytest.raises(ValueError, match="redis://"):
        open_store("http://localhost:6379")
