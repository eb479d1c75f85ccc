"""The event loop's own lag: how late a tick every 50 ms runs.

A timer measured on a stalled loop says little about the peer it timed: when the worker spends
a second parsing large JSON bodies, a 1 s connect timer fires even though the model server
accepted the connection at once (the loop had no turn to notice). Outlier detection asks
:func:`stalled` before it blames a replica for a timeout, so a busy gateway does not eject its
own healthy upstreams. The lag is exported as ``gateway_event_loop_lag_seconds``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Histogram

logger = logging.getLogger("gateway.loop")
TICK = 0.05
STALL = 0.02  # a tick later than this is remembered as a stall
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopWatch:
    """Ticks every :data:`TICK` seconds on the running loop; remembers recent stalls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "gateway_event_loop_lag_seconds",
            "How late the worker's event loop ran a timer due every 50 ms (its turn time).",
            buckets=_BUCKETS,
            registry=registry,
        )
        self._stalls: collections.deque[tuple[float, float]] = collections.deque(maxlen=256)
        self._last_tick = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last_tick = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            late = max(0.0, now - self._last_tick - TICK)
            self._last_tick = now
            self.lag.observe(late)
            if late >= STALL:
                self._stalls.append((now, late))

    def stalled(self, since: float, threshold: float) -> bool:
        """Whether the loop stalled for ``threshold`` seconds or more at some time after
        ``since`` (``time.monotonic()``), the stall under way now included."""
        now = time.monotonic()
        if self._task is not None and now - self._last_tick - TICK >= threshold:
            return True
        for ended, late in reversed(self._stalls):  # newest first
            if ended < since:
                return False
            if late >= threshold:
                return True
        return False


_WATCHES: list[LoopWatch] = []  # the running workers' (several in one process in tests)


def current() -> LoopWatch | None:
    """The watch of the latest worker started and still running in this process."""
    return _WATCHES[-1] if _WATCHES else None


def stalled(since: float, limit: float) -> bool:
    """Whether a timer of ``limit`` seconds started at ``since`` may have fired because the
    gateway's loop stalled (for a quarter of ``limit`` or more) rather than because the peer
    was slow."""
    watch = current()
    return watch is not None and watch.stalled(since, max(STALL, limit / 4))


@contextlib.asynccontextmanager
async def watching(registry: CollectorRegistry) -> AsyncIterator[LoopWatch]:
    """Watch the running loop while the worker runs (the one :func:`stalled` consults)."""
    watch = LoopWatch(registry)
    watch.start()
    _WATCHES.append(watch)
    try:
        yield watch
    finally:
        _WATCHES.remove(watch)  # (workers may stop in any order)
        await watch.close()
