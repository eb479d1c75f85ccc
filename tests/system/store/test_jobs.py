"""The job queue's contract, on every store: in memory, on Redis, on a Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from gateway.jobs.model import DEAD_LETTER_ERROR, CallerSnapshot, Job, new_job_id
from gateway.store import MemoryStore, Store
from gateway.store.base import JOB_GROUP
from gateway.store.redis.store import RedisStore
from tests.system.store.conftest import WAIT, MakeStore

pytestmark = pytest.mark.anyio
TTL = 60.0


def job(owner: str = "acme", model: str = "m", **fields: object) -> Job:
    now = time.time()
    base = Job(
        id=new_job_id(now),
        owner=owner,
        model=model,
        protocol="v2",
        body=b'{"inputs": []}\x00\xff',
        headers=(("content-type", "application/json"),),
        caller=CallerSnapshot("key1", owner, ("predict:m",), "api-key", "api_key", "key1"),
        created_at=now,
        fingerprint="f1",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


async def test_submit_get_round_trip(store: Store) -> None:
    submitted = job(batch_id="b1", custom_id="line-1", callback_url="https://hooks.test/x")
    outcome, stored = await store.job_submit(submitted, max_queued=10)
    assert outcome == "created"
    assert stored == submitted
    assert await store.job_get(submitted.id) == submitted
    assert await store.job_get("j-nope") is None
    assert await store.job_depth() == {"m": 1}


async def test_claim_runs_and_finish_keeps_the_result(store: Store) -> None:
    submitted = job()
    await store.job_submit(submitted, max_queued=10)
    claimed = await store.job_claim("w1", 10, 100.0)
    assert [c.job.id for c in claimed] == [submitted.id]
    running = claimed[0].job
    assert (running.status, running.attempts, running.started_at) == ("running", 1, 100.0)
    assert await store.job_depth() == {}
    assert await store.job_claim("w2", 10, 100.0) == []  # delivered once
    done = await store.job_finish(claimed[0], "succeeded", 101.0, TTL, result=b'{"x": 1}')
    assert done is not None
    assert (done.status, done.result, done.finished_at) == ("succeeded", b'{"x": 1}', 101.0)
    # a second finish of the same delivery (a duplicate) changes nothing
    again = await store.job_finish(claimed[0], "failed", 102.0, TTL, error=b"{}")
    assert again is None
    assert await store.job_get(submitted.id) == done


async def test_idempotency_key_returns_the_same_job(store: Store) -> None:
    first = job(idempotency_key="k1")
    assert (await store.job_submit(first, max_queued=10))[0] == "created"
    outcome, existing = await store.job_submit(job(idempotency_key="k1"), max_queued=10)
    assert outcome == "existing"
    assert existing == first
    other_owner = job(owner="globex", idempotency_key="k1")
    assert (await store.job_submit(other_owner, max_queued=10))[0] == "created"
    assert len(await store.job_claim("w", 10, 1.0)) == 2


async def test_queue_limit_per_owner(store: Store) -> None:
    for _ in range(2):
        assert (await store.job_submit(job(), max_queued=2))[0] == "created"
    assert await store.job_submit(job(), max_queued=2) == ("full", None)
    assert (await store.job_submit(job(owner="globex"), max_queued=2))[0] == "created"
    claimed = await store.job_claim("w", 1, 1.0)  # a running job no longer counts
    assert len(claimed) == 1
    assert (await store.job_submit(job(), max_queued=2))[0] == "created"


async def test_cancel_a_queued_job_only(store: Store) -> None:
    first, second = job(), job()
    await store.job_submit(first, max_queued=10)
    await store.job_submit(second, max_queued=10)
    cancelled = await store.job_cancel(first.id, 5.0, TTL)
    assert cancelled is not None
    assert (cancelled.status, cancelled.finished_at) == ("cancelled", 5.0)
    claimed = await store.job_claim("w", 10, 6.0)
    assert [c.job.id for c in claimed] == [second.id]  # the cancelled one never runs
    running = await store.job_cancel(second.id, 7.0, TTL)
    assert running is not None
    assert running.status == "running"
    assert await store.job_cancel("j-nope", 7.0, TTL) is None
    assert await store.job_depth() == {}


async def test_release_puts_back_after_the_delay(store: Store) -> None:
    submitted = job()
    await store.job_submit(submitted, max_queued=10)
    [claimed] = await store.job_claim("w", 10, 10.0)
    assert await store.job_release(claimed, 5.0, 10.0, attempt=False)
    queued = await store.job_get(submitted.id)
    assert queued is not None
    assert (queued.status, queued.attempts) == ("queued", 0)
    assert await store.job_depth() == {"m": 1}
    assert await store.job_promote(14.0) == 0
    assert await store.job_claim("w", 10, 14.0) == []
    assert await store.job_promote(15.0) == 1
    [again] = await store.job_claim("w", 10, 15.0)
    assert again.job.attempts == 1
    assert await store.job_release(again, 0.0, 16.0, attempt=True)
    await store.job_promote(16.0)
    [third] = await store.job_claim("w", 10, 16.0)
    assert third.job.attempts == 2


async def test_a_dead_consumers_job_is_reclaimed_and_touch_keeps_it(store: Store) -> None:
    submitted, kept = job(), job()
    await store.job_submit(submitted, max_queued=10)
    await store.job_submit(kept, max_queued=10)
    claims = await store.job_claim("dead-worker", 10, 1.0)
    assert len(claims) == 2
    assert await store.job_reclaim("w2", 60.0, 5, 10, 2.0, TTL) == ([], [])  # not idle enough
    await asyncio.sleep(0.3)
    await store.job_touch("dead-worker", [c.entry for c in claims if c.job.id == kept.id])
    reclaimed, dead = await store.job_reclaim("w2", 0.2, 5, 10, 3.0, TTL)
    assert dead == []
    assert [(c.job.id, c.deliveries) for c in reclaimed] == [(submitted.id, 2)]
    assert (reclaimed[0].job.status, reclaimed[0].job.attempts) == ("running", 2)
    done = await store.job_finish(reclaimed[0], "succeeded", 4.0, TTL, result=b"{}")
    assert done is not None
    assert done.status == "succeeded"


async def test_dead_letter_after_too_many_deliveries(store: Store) -> None:
    submitted = job()
    await store.job_submit(submitted, max_queued=10)
    await store.job_claim("w0", 10, 1.0)
    for n in range(2):
        await asyncio.sleep(0.05)
        assert len((await store.job_reclaim(f"w{n + 1}", 0.01, 3, 10, 2.0, TTL))[0]) == 1
    await asyncio.sleep(0.05)
    # the 4th delivery is one too many: dead-lettered
    assert await store.job_reclaim("w9", 0.01, 3, 10, 3.0, TTL) == ([], [submitted.id])
    failed = await store.job_get(submitted.id)
    assert failed is not None
    assert (failed.status, failed.error, failed.error_status) == ("failed", DEAD_LETTER_ERROR, 500)
    [letter] = await store.job_dead(10)
    assert (letter.job_id, letter.owner, letter.model, letter.deliveries) == (
        submitted.id,
        "acme",
        "m",
        4,
    )


async def test_list_newest_first_filtered_and_paged(store: Store) -> None:
    made = []
    for n in range(5):
        made.append(job(model="a" if n % 2 else "b", batch_id="b1" if n < 2 else None))
        await store.job_submit(made[-1], max_queued=10)
        await asyncio.sleep(0.002)  # ids are ordered by the millisecond
    await store.job_submit(job(owner="globex"), max_queued=10)
    newest = [j.id for j in reversed(made)]
    page, cursor = await store.job_list(owner="acme", limit=2)
    assert [j.id for j in page] == newest[:2]
    assert cursor is not None
    page, cursor = await store.job_list(owner="acme", limit=2, cursor=cursor)
    assert [j.id for j in page] == newest[2:4]
    assert cursor is not None
    page, cursor = await store.job_list(owner="acme", limit=2, cursor=cursor)
    assert [j.id for j in page] == newest[4:]
    assert cursor is None
    only_a, _ = await store.job_list(owner="acme", model="a")
    assert {j.model for j in only_a} == {"a"}
    assert len(only_a) == 2
    batch, _ = await store.job_list(batch_id="b1")
    assert [j.id for j in batch] == [made[1].id, made[0].id]
    everyone, _ = await store.job_list()
    assert len(everyone) == 6
    await store.job_cancel(made[0].id, 1.0, TTL)
    cancelled, _ = await store.job_list(owner="acme", status="cancelled")
    assert [j.id for j in cancelled] == [made[0].id]


async def test_finished_jobs_expire_after_their_ttl(make_store: MakeStore) -> None:
    store = await make_store()
    first, second = job(idempotency_key="k"), job()
    await store.job_submit(first, max_queued=10)
    await store.job_submit(second, max_queued=10)
    claims = await store.job_claim("w", 10, 1.0)
    for claimed in claims:
        await store.job_finish(claimed, "succeeded", 2.0, 0.2, result=b"{}")
    await asyncio.sleep(0.4)
    assert await store.job_get(first.id) is None
    assert await store.job_list(owner="acme") == ([], None)
    # the idempotency key went with its job: the key may name a new one
    assert (await store.job_submit(job(idempotency_key="k"), max_queued=10))[0] == "created"


async def test_a_blocked_claim_takes_a_job_submitted_meanwhile(make_store: MakeStore) -> None:
    worker = await make_store()
    # on Redis a second client of the same queue (another replica); in memory the same store
    replica = worker if isinstance(worker, MemoryStore) else await make_store()
    assert await worker.job_claim("w", 10, 1.0, block=0.05) == []  # nothing came: empty
    submitted = job()
    claiming = asyncio.create_task(worker.job_claim("w", 10, 1.0, block=WAIT))
    await asyncio.sleep(0.1)  # let it block (it takes the job either way)
    await replica.job_submit(submitted, max_queued=10)
    async with asyncio.timeout(WAIT):  # a bound on a hang: the block is as long
        [claimed] = await claiming
    assert claimed.job.id == submitted.id
    assert claimed.job.status == "running"
    assert claimed.job.started_at is not None
    assert claimed.job.started_at > 1.0  # the time it was taken, not the call's
    assert await replica.job_claim("w2", 10, 2.0) == []  # delivered once


async def test_schedule_promotes_and_tells_when_the_next_is_due(store: Store) -> None:
    assert await store.job_schedule(10.0) == (0, None)
    first, second = job(), job()
    for submitted in (first, second):
        await store.job_submit(submitted, max_queued=10)
    early, late = await store.job_claim("w", 10, 10.0)
    await store.job_release(early, 5.0, 10.0, attempt=False)
    await store.job_release(late, 7.5, 10.0, attempt=False)
    assert await store.job_schedule(11.0) == (0, 15.0)
    assert await store.job_schedule(15.0) == (1, 17.5)
    assert [c.job.id for c in await store.job_claim("w", 10, 15.0)] == [early.job.id]
    assert await store.job_schedule(20.0) == (1, None)
    assert [c.job.id for c in await store.job_claim("w", 10, 20.0)] == [late.job.id]


async def test_forsake_leaves_started_runs_alone(store: Store) -> None:
    submitted = job()
    await store.job_submit(submitted, max_queued=10)
    [claimed] = await store.job_claim("w", 10, 1.0)
    assert await store.job_forsake("w", []) == 0  # running: not put back
    running = await store.job_get(submitted.id)
    assert running is not None
    assert running.status == "running"
    assert await store.job_forsake("w", [claimed.entry]) == 0


async def test_a_delivery_never_read_is_put_back_at_once(make_redis_store: MakeStore) -> None:
    store = await make_redis_store()
    assert isinstance(store, RedisStore)
    assert await store.job_claim("w", 1, 1.0) == []  # an empty queue: makes the group
    lost, other = job(), job()
    for submitted in (lost, other):
        await store.job_submit(submitted, max_queued=10)
    # what a blocked XREADGROUP cancelled as its answer came leaves: delivered, never started
    client = store._jobs_client  # a raw read, as redis-py's lost answer
    queue = store._jk.jobs("queue")
    read: Any = await client.xreadgroup(JOB_GROUP, "gone", {queue: ">"}, count=1)
    [[_, [(entry, fields)]]] = read
    assert fields["job"] == lost.id
    assert await store.job_forsake("gone", [entry]) == 0  # kept
    assert await store.job_forsake("gone", []) == 1
    assert await store.job_forsake("gone", []) == 0
    taken = await store.job_claim("w2", 10, 2.0)  # at once, not after the visibility timeout
    assert sorted(c.job.id for c in taken) == sorted([lost.id, other.id])
    assert all(c.job.attempts == 1 for c in taken)
    assert await store.job_depth() == {}
