"""Idle job workers and batch feeders wait to be woken instead of polling: with
``jobs.poll_interval`` an hour, a job submitted by another replica is still taken, a job
another replica put back is taken when its delay is over, and a new batch is fed (memory and
Redis and Redis Cluster stores; on Redis the submitting store is a second client, as another
replica is)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from gateway.auth.keys import KeyVerifier
from gateway.batches.feeder import BatchFeeder
from gateway.batches.metrics import BatchFileMetrics
from gateway.batches.model import BatchLine
from gateway.batches.service import BatchService
from gateway.config.live import Runtime
from gateway.jobs.config import JobsConfig
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.model import Job, new_job_id
from gateway.jobs.service import JobService
from gateway.jobs.worker import JobWorker
from gateway.store import MemoryStore, Store
from tests.system.store.conftest import MakeStore

pytestmark = pytest.mark.anyio
WAIT = 10.0  # a bound on a hang, far under the hour the stores would otherwise be polled at
CONFIG = JobsConfig(poll_interval=3600.0)


class Sink:
    async def check_callback(self, tenant: str | None, url: str) -> str:
        return url

    async def enqueue(self, tenant: str, url: str, event_type: str, data: Any) -> str:
        return ""


@pytest.fixture
async def stores(make_store: MakeStore) -> tuple[Store, Store]:
    """The worker's store and another replica's (in memory: the same one)."""
    mine = await make_store()
    return mine, (mine if isinstance(mine, MemoryStore) else await make_store())


def worker(store: Store) -> JobWorker:
    runtime = cast(Runtime, SimpleNamespace(table=SimpleNamespace(jobs=CONFIG)))
    service = JobService(store, lambda: CONFIG, Sink())
    keys = cast(KeyVerifier, None)  # the stand-in runtime fails the replay: taken is enough
    return JobWorker(store, lambda: runtime, service, keys, JobMetrics(CollectorRegistry()))


def new_job() -> Job:
    now = time.time()
    return Job(
        id=new_job_id(now), owner="acme", model="m", protocol="v2", body=b"{}", created_at=now
    )


async def taken(store: Store, job_id: str) -> Job:
    async with asyncio.timeout(WAIT):
        while True:
            job = await store.job_get(job_id)
            assert job is not None
            if job.status != "queued":
                return job
            await asyncio.sleep(0.02)


async def test_an_idle_worker_takes_a_job_another_replica_submitted(
    stores: tuple[Store, Store],
) -> None:
    mine, other = stores
    running = worker(mine)
    running.start()
    try:
        await asyncio.sleep(0.2)  # its first look found nothing: it waits now
        submitted = new_job()
        await other.job_submit(submitted, max_queued=10)
        job = await taken(other, submitted.id)
        assert job.started_at is not None
        assert job.attempts == 1
    finally:
        await running.close()


async def test_a_put_back_job_is_taken_when_its_delay_is_over(stores: tuple[Store, Store]) -> None:
    mine, other = stores
    submitted = new_job()
    await other.job_submit(submitted, max_queued=10)
    [claimed] = await other.job_claim("another-replica", 1, time.time())
    assert await other.job_release(claimed, 0.3, time.time(), attempt=False)
    running = worker(mine)
    running.start()  # its first look finds the job not yet due: it promotes it when it is
    try:
        job = await taken(other, submitted.id)
        assert job.started_at is not None
        assert job.started_at >= claimed.job.started_at + 0.3  # type: ignore[operator]
    finally:
        await running.close()


async def test_an_idle_feeder_feeds_a_batch_another_replica_stored(
    stores: tuple[Store, Store],
) -> None:
    mine, other = stores
    feeder = BatchFeeder(
        mine,
        JobService(mine, lambda: CONFIG, Sink()),
        lambda: CONFIG,
        BatchFileMetrics(CollectorRegistry()),
    )
    feeder.start()
    try:
        await asyncio.sleep(0.2)  # its first round found no batch: it waits now
        service = BatchService(
            other,
            JobService(other, lambda: CONFIG, Sink()),
            lambda: CONFIG,
            BatchFileMetrics(CollectorRegistry()),
        )
        line = BatchLine("c1", "m", None, "v2", b'{"inputs": []}')
        batch = await service.create([line], None, "acme")
        async with asyncio.timeout(WAIT):
            while True:
                stored = await other.batch_get(batch.id)
                if stored is not None and stored.fed > 0:
                    break
                await asyncio.sleep(0.02)
        [(custom_id, job_id)] = await other.batch_entries(batch.id, 0, 1)
        assert custom_id == "c1"
        assert job_id is not None
        assert await other.job_get(job_id) is not None
    finally:
        await feeder.close()
