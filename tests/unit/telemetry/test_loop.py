"""The loop watch: a stall of the worker's own event loop is seen, and only after it began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from gateway.telemetry import loop

pytestmark = pytest.mark.anyio


@pytest.fixture
async def watch() -> AsyncIterator[loop.LoopWatch]:
    registry = CollectorRegistry()
    async with loop.watching(registry) as watch:
        yield watch
    assert loop.current() is not watch  # gone with its worker


def stall(seconds: float) -> None:
    time.sleep(seconds)  # the test's point: the loop does nothing else meanwhile


async def test_a_stall_is_seen_by_timers_started_before_or_during_it(
    watch: loop.LoopWatch,
) -> None:
    assert loop.current() is watch
    await asyncio.sleep(loop.TICK * 2)
    before = time.monotonic()
    stall(0.4)
    assert watch.stalled(before, 0.3)  # under way: the tick is overdue
    assert loop.stalled(before, 1.0)  # a 1 s timer: a quarter of it stalled
    await asyncio.sleep(loop.TICK * 2)  # the late tick records it
    assert watch.stalled(before, 0.3)
    assert not watch.stalled(before, 0.6)  # not that long
    assert not loop.stalled(time.monotonic(), 1.0)  # a timer started after it


async def test_no_watch_means_no_excuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "_WATCHES", [])
    stall(0.3)
    assert not loop.stalled(time.monotonic() - 1, 1.0)


async def test_workers_may_stop_in_any_order() -> None:
    first, second = loop.watching(CollectorRegistry()), loop.watching(CollectorRegistry())
    one, two = await first.__aenter__(), await second.__aenter__()
    assert loop.current() is two
    await first.__aexit__(None, None, None)  # the first one stops first
    assert loop.current() is two
    await second.__aexit__(None, None, None)
    assert loop.current() not in (one, two)


async def test_the_lag_is_exported() -> None:
    registry = CollectorRegistry()
    async with loop.watching(registry):
        await asyncio.sleep(loop.TICK / 2)  # the watch's first tick is under way
        stall(0.1)
        await asyncio.sleep(loop.TICK * 2)
    count = registry.get_sample_value("gateway_event_loop_lag_seconds_count")
    slow = registry.get_sample_value("gateway_event_loop_lag_seconds_bucket", {"le": "0.025"})
    assert count is not None
    assert count >= 2
    assert slow is not None
    assert slow < count
