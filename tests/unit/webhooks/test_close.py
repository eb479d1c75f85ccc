"""Closing webhook delivery whose store call lost the cancel (as redis-py can while a command
is in flight, redis/redis-py#2028): ``close`` still returns."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from gateway.store import Claimed
from gateway.store.memory.store import MemoryStore
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.service import Webhooks
from tests.support import sleep_losing_a_cancel

pytestmark = pytest.mark.anyio


class Stubborn(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.claiming = asyncio.Event()
        self.swallowed = 0

    async def webhook_claim(self, lease: float, limit: int) -> list[Claimed]:
        self.claiming.set()
        self.swallowed += await sleep_losing_a_cancel(0.05)
        return await super().webhook_claim(lease, limit)

    async def webhook_next(self) -> float | None:
        return 0.01  # one is due soon: the loop claims again


async def test_close_returns_although_the_store_lost_the_cancel() -> None:
    store = Stubborn()
    webhooks = Webhooks(store, b"s" * 32, WebhookConfig(poll=0.01), CollectorRegistry())
    webhooks.start()
    await asyncio.wait_for(store.claiming.wait(), 5)
    store.claiming.clear()
    await asyncio.wait_for(store.claiming.wait(), 5)  # claiming again: inside the call now
    closing = asyncio.create_task(webhooks.close())
    finished, _ = await asyncio.wait({closing}, timeout=5)  # a bound on a hang, not a timing
    assert finished, "close() hung: the delivery loop outlived its cancel"
    assert store.swallowed == 1
