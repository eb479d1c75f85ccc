"""Auto-pipelining against a real Redis: one round trip per event-loop turn, and every command
still gets its own reply or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from redis import exceptions as rx

from gateway.store.redis.batch import AutoPipeline

pytestmark = pytest.mark.anyio


class Counted:
    """The real client, counting the pipelines opened on it."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client = client
        self.pipelines = 0

    def pipeline(self, **options: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(**options)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await self.client.execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest.fixture
async def counted(redis_url: str) -> AsyncIterator[Counted]:
    client = aredis.Redis.from_url(redis_url)
    try:
        yield Counted(client)
    finally:
        await client.aclose()


async def test_commands_of_one_turn_share_one_pipeline(counted: Counted, redis_prefix: str) -> None:
    batch = AutoPipeline(counted)  # type: ignore[arg-type]
    key = f"{redis_prefix}n"
    replies = await asyncio.gather(*(batch.call("INCR", key) for _ in range(20)))
    assert sorted(int(r) for r in replies) == list(range(1, 21))
    assert counted.pipelines == 1
    assert int(await batch.call("GET", key)) == 20  # a lone command goes out alone
    assert counted.pipelines == 1
    await batch.close()


async def test_a_batch_is_capped(counted: Counted, redis_prefix: str) -> None:
    batch = AutoPipeline(counted, max_batch=8)  # type: ignore[arg-type]
    await asyncio.gather(*(batch.call("INCR", f"{redis_prefix}n") for _ in range(20)))
    assert counted.pipelines == 3  # 8 + 8 + 4


async def test_each_command_keeps_its_own_error(counted: Counted, redis_prefix: str) -> None:
    batch = AutoPipeline(counted)  # type: ignore[arg-type]
    await counted.client.set(f"{redis_prefix}text", "abc")
    results = await asyncio.gather(
        batch.call("INCR", f"{redis_prefix}text"),
        batch.call("EVALSHA", "0" * 40, "0"),
        batch.call("GET", f"{redis_prefix}text"),
        return_exceptions=True,
    )
    assert isinstance(results[0], rx.ResponseError)
    assert isinstance(results[1], rx.NoScriptError)
    assert results[2] == b"abc"


async def test_a_caller_that_gave_up_sends_nothing(counted: Counted, redis_prefix: str) -> None:
    batch = AutoPipeline(counted)  # type: ignore[arg-type]
    key = f"{redis_prefix}n"
    gone = asyncio.ensure_future(batch.call("INCR", key))
    await asyncio.sleep(0)  # queued, not yet sent
    gone.cancel()
    kept = await batch.call("INCR", key)
    assert int(kept) == 1  # the cancelled INCR never reached Redis
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_lost_connection_fails_every_caller_of_the_batch() -> None:
    client = aredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    batch = AutoPipeline(client)
    results = await asyncio.gather(
        *(batch.call("GET", "k") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, rx.ConnectionError) for r in results), results
    await client.aclose()
