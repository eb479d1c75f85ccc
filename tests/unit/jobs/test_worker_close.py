"""Closing a job worker whose store call swallows the cancel, as redis-py can while a command
is in flight (redis/redis-py#2028): the worker stops anyway, and a job it took while closing
goes back to the queue instead of starting."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from gateway.auth.keys import KeyVerifier
from gateway.config.live import Runtime
from gateway.jobs.config import JobsConfig
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.model import Claimed, Job
from gateway.jobs.service import JobService
from gateway.jobs.worker import JobWorker
from gateway.store.memory.store import MemoryStore
from tests.support import sleep_losing_a_cancel

pytestmark = pytest.mark.anyio


class Stubborn(MemoryStore):
    """``job_claim`` finishes what it started even when cancelled (once it is in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.claiming = asyncio.Event()
        self.swallowed = 0

    async def job_claim(
        self, consumer: str, count: int, now: float, *, block: float = 0.0
    ) -> list[Claimed]:
        self.claiming.set()
        # like redis-py: the reply is read and returned regardless of a cancel
        self.swallowed += await sleep_losing_a_cancel(0.05)
        return await super().job_claim(consumer, count, now)


class Sink:
    async def check_callback(self, tenant: str | None, url: str) -> str:
        return url

    async def enqueue(self, tenant: str, url: str, event_type: str, data: Any) -> str:
        return ""


async def test_close_ends_the_loop_although_the_store_swallowed_the_cancel() -> None:
    store = Stubborn()
    config = JobsConfig(poll_interval=0.01)
    runtime = cast(Runtime, SimpleNamespace(table=SimpleNamespace(jobs=config)))
    service = JobService(store, lambda: config, Sink())
    await store.job_submit(
        Job(id="j1", owner="", model="m", protocol="v2", body=b"{}", created_at=time.time()),
        max_queued=10,
    )
    worker = JobWorker(
        store,
        lambda: runtime,
        service,
        cast(KeyVerifier, None),
        JobMetrics(CollectorRegistry()),
    )
    worker.start()
    await asyncio.wait_for(store.claiming.wait(), 5)
    closing = asyncio.create_task(worker.close())
    finished, _ = await asyncio.wait({closing}, timeout=5)  # a bound on a hang, not a timing
    assert finished, "close() hung: the worker's loop outlived its cancel"
    assert store.swallowed == 1
    job = await store.job_get("j1")
    assert job is not None
    assert job.status == "queued"  # taken while closing: put back, never run
    assert job.attempts == 0
