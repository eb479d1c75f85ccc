"""The store's webhook records, one contract for every store: sealed secrets, and the delivery
queue's claims (one taker at a time, a dead taker's deliveries taken again), retries and dead
letters. Two Redis stores of a test share their keys (two replicas)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway.store import Delivery, MemoryStore, Store, Tenant, WebhookSecret
from tests.system.store.conftest import MakeStore

pytestmark = pytest.mark.anyio


async def pair(make_store: MakeStore) -> tuple[Store, Store]:
    a = await make_store()
    return (a, a) if isinstance(a, MemoryStore) else (a, await make_store())


def delivery(n: int) -> Delivery:
    return Delivery(
        id=f"msg_{n}",
        tenant="acme",
        url="https://hooks.acme.test/cb",
        event_type="job.succeeded",
        body=f'{{"n":{n}}}',
        created_at=1000.0 + n,
    )


async def test_a_secret_round_trips_and_goes_with_its_tenant(store: Store) -> None:
    secret = WebhookSecret("acme", "whs_1", "c2VhbGVk", 1000.0, "whs_0", "b2xk", 2000.0)
    assert await store.get_webhook_secret("acme") is None
    await store.put_webhook_secret(secret)
    assert await store.get_webhook_secret("acme") == secret
    assert await store.delete_webhook_secret("acme")
    assert not await store.delete_webhook_secret("acme")
    await store.put_tenant(Tenant("acme", callback_hosts=("hooks.acme.test", "*.acme.test")))
    assert (await store.get_tenant("acme")).callback_hosts == (  # type: ignore[union-attr]
        "hooks.acme.test",
        "*.acme.test",
    )
    await store.put_webhook_secret(secret)
    assert await store.delete_tenant("acme")
    assert await store.get_webhook_secret("acme") is None  # a new "acme" starts without it


async def test_a_due_delivery_is_taken_by_one_replica_at_a_time(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    await a.webhook_put(delivery(1))
    await a.webhook_put(delivery(2), delay=60.0)  # not due yet
    [taken] = await a.webhook_claim(30.0, 10)
    assert taken.delivery == delivery(1)
    assert await b.webhook_claim(30.0, 10) == []  # held by a's lease
    assert await b.webhook_delivered(replace(taken, token="stale")) is False
    assert await a.webhook_delivered(taken)
    assert await a.webhook_get("msg_1") is None
    assert await a.webhook_get("msg_2") == delivery(2)


async def test_a_dead_takers_delivery_is_taken_again_and_its_late_answer_ignored(
    make_store: MakeStore,
) -> None:
    a, b = await pair(make_store)
    await a.webhook_put(delivery(1))
    [first] = await a.webhook_claim(0.05, 10)
    for _ in range(200):  # bounded: the lease is 50 ms
        again = await b.webhook_claim(30.0, 10)
        if again:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the expired claim was never taken again")
    [second] = again
    assert second.delivery.id == "msg_1"
    assert second.token != first.token
    assert not await a.webhook_retry(first, replace(first.delivery, attempts=1), 0.0)
    assert not await a.webhook_bury(first, first.delivery)
    assert await b.webhook_delivered(second)


async def test_a_retry_keeps_the_record_and_waits_its_delay(store: Store) -> None:
    await store.webhook_put(delivery(1))
    [taken] = await store.webhook_claim(30.0, 10)
    failed = replace(taken.delivery, attempts=1, last_status=500, last_error="HTTP 500")
    assert await store.webhook_retry(taken, failed, 0.05)
    assert await store.webhook_get("msg_1") == failed
    for _ in range(200):
        retaken = await store.webhook_claim(30.0, 10)
        if retaken:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the retry never came due")
    assert retaken[0].delivery == failed


async def test_claims_take_the_oldest_due_first_up_to_the_limit(store: Store) -> None:
    for n in range(5):
        await store.webhook_put(delivery(n))
        await asyncio.sleep(0.002)  # distinct due times (ms)
    taken = await store.webhook_claim(30.0, 3)
    assert [c.delivery.id for c in taken] == ["msg_0", "msg_1", "msg_2"]
    assert [c.delivery.id for c in await store.webhook_claim(30.0, 10)] == ["msg_3", "msg_4"]


async def test_dead_letters_are_listed_newest_first_and_revived(
    make_store: MakeStore,
) -> None:
    a, b = await pair(make_store)
    for n in range(3):
        await a.webhook_put(delivery(n))
        [taken] = await a.webhook_claim(30.0, 1)
        dead = replace(taken.delivery, attempts=3, last_error="HTTP 503", dead_at=2000.0 + n)
        assert await a.webhook_bury(taken, dead)
        await asyncio.sleep(0.002)
    assert await a.webhook_claim(30.0, 10) == []  # the dead are not queued
    listed = await b.webhook_dead(10)
    assert [d.id for d in listed] == ["msg_2", "msg_1", "msg_0"]
    assert listed[0].attempts == 3
    assert listed[0].last_error == "HTTP 503"
    assert [d.id for d in await b.webhook_dead(1)] == ["msg_2"]
    revived = await b.webhook_revive("msg_1")
    assert revived is not None
    assert revived.attempts == 0
    assert revived.dead_at is None
    assert revived.body == delivery(1).body
    assert await b.webhook_revive("msg_1") is None  # no longer dead
    assert await b.webhook_revive("msg_9") is None
    assert [d.id for d in await a.webhook_dead(10)] == ["msg_2", "msg_0"]
    [taken] = await a.webhook_claim(30.0, 10)
    assert taken.delivery == revived


async def test_the_dead_letters_keep_the_newest(store: Store) -> None:
    store._dead_cap = 2  # type: ignore[attr-defined]  # DEAD_CAP (10,000) made small
    for n in range(4):
        await store.webhook_put(delivery(n))
        [taken] = await store.webhook_claim(30.0, 1)
        assert await store.webhook_bury(taken, taken.delivery)
        await asyncio.sleep(0.002)
    assert [d.id for d in await store.webhook_dead(10)] == ["msg_3", "msg_2"]
    assert await store.webhook_get("msg_0") is None  # its record went with it


async def test_next_tells_when_the_earliest_delivery_is_due(store: Store) -> None:
    assert await store.webhook_next() is None
    await store.webhook_put(delivery(1), delay=600.0)
    later = await store.webhook_next()
    assert later is not None
    assert 590.0 < later <= 600.0
    await store.webhook_put(delivery(2))
    assert await store.webhook_next() == 0.0  # due now
    [taken] = await store.webhook_claim(120.0, 10)
    leased = await store.webhook_next()  # the lease's end is the next time it is due
    assert leased is not None
    assert 110.0 < leased <= 120.0
    assert await store.webhook_delivered(taken)
    assert await store.webhook_claim(60.0, 10) == []
    left = await store.webhook_next()
    assert left is not None
    assert 590.0 < left <= 600.0
