"""The batch files' store contract, on memory, Redis and Redis Cluster: create, feed in order,
settle once, cancel, finish (and only when nothing is left), list per owner, entries."""

from __future__ import annotations

import time

import pytest

from gateway.batches.model import Batch, BatchLine, new_batch_id
from gateway.jobs.model import Job
from gateway.store import Store

pytestmark = pytest.mark.anyio


def lines(n: int) -> list[BatchLine]:
    return [BatchLine(f"c{i}", "linear", None, "v2", b'{"inputs": []}') for i in range(n)]


async def create(store: Store, owner: str, n: int) -> Batch:
    now = time.time()
    batch = Batch(new_batch_id(now), owner, n, now)
    await store.batch_create(batch, lines(n))
    return batch


async def job(store: Store, owner: str, batch: Batch, index: int) -> Job:
    line = lines(batch.total)[index]
    made = Job(
        id=f"j{batch.id}{index:04d}",
        owner=owner,
        model="linear",
        protocol="v2",
        body=line.body,
        created_at=time.time(),
        batch_id=batch.id,
        custom_id=line.custom_id,
    )
    outcome, stored = await store.job_submit(made, max_queued=100)
    assert outcome == "created"
    assert stored is not None
    return stored


async def test_a_batch_is_fed_settled_and_finished(store: Store) -> None:
    batch = await create(store, "t1", 3)
    assert [b.id for b in await store.batch_active()] == [batch.id]
    got = await store.batch_get(batch.id)
    assert got is not None
    assert (got.status, got.fed, got.total, got.open) == ("queued", 0, 3, ())
    assert [line.custom_id for line in await store.batch_lines(batch.id, 1, 5)] == ["c1", "c2"]

    first = await job(store, "t1", batch, 0)
    assert await store.batch_fed(batch.id, 0, first.id)
    assert await store.batch_fed(batch.id, 0, first.id)  # recorded again: the same
    got = await store.batch_get(batch.id)
    assert got is not None
    assert (got.status, got.fed, got.open) == ("in_progress", 1, (first.id,))
    assert await store.batch_entries(batch.id, 0, 10) == [
        ("c0", first.id),
        ("c1", None),
        ("c2", None),
    ]
    assert [j.id if j else None for j in await store.batch_jobs([first.id, "nope"])] == [
        first.id,
        None,
    ]
    # not finished while lines are left or a job is open
    assert await store.batch_finish(batch.id, time.time(), 60) is None

    await store.batch_settle(batch.id, {first.id: "succeeded"})
    await store.batch_settle(batch.id, {first.id: "succeeded"})  # once only
    for index in (1, 2):
        fed = await job(store, "t1", batch, index)
        assert await store.batch_fed(batch.id, index, fed.id)
        await store.batch_settle(batch.id, {fed.id: "failed"})
    got = await store.batch_get(batch.id)
    assert got is not None
    assert (got.succeeded, got.failed, got.cancelled, got.open, got.fed) == (1, 2, 0, (), 3)
    done = await store.batch_finish(batch.id, time.time(), 60)
    assert done is not None
    assert done.status == "completed"
    assert done.finished_at is not None
    assert await store.batch_finish(batch.id, time.time(), 60) is None  # once
    assert await store.batch_active() == []
    assert await store.batch_lines(batch.id, 0, 3) == []  # dropped once finished
    assert [cid for cid, _ in await store.batch_entries(batch.id, 0, 3)] == ["c0", "c1", "c2"]


async def test_cancel_stops_feeding_and_lists_per_owner(store: Store) -> None:
    mine = await create(store, "t1", 2)
    theirs = await create(store, "t2", 1)
    newer = await create(store, "t1", 1)
    page, cursor = await store.batch_list("t1", limit=1)
    assert ([b.id for b in page], cursor) == ([newer.id], newer.id)
    page, cursor = await store.batch_list("t1", limit=1, cursor=cursor)
    assert ([b.id for b in page], cursor) == ([mine.id], None)
    everyone, _ = await store.batch_list(None)
    assert {b.id for b in everyone} == {mine.id, theirs.id, newer.id}

    cancelled = await store.batch_cancel(mine.id, time.time())
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    fed = await job(store, "t1", mine, 0)
    assert not await store.batch_fed(mine.id, 0, fed.id)  # nothing recorded
    assert await store.batch_cancel("b-nope", time.time()) is None
    done = await store.batch_finish(mine.id, time.time(), 60)
    assert done is not None
    assert done.status == "cancelled"
    assert {b.id for b in await store.batch_active()} == {theirs.id, newer.id}
