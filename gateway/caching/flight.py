"""Collapsing identical misses: one backend call per key.

Within a process, identical misses wait on the first one's future. Across replicas, one takes a
short lock in the store and the others poll for its entry (:func:`wait_for_entry`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

_POLL = 0.02


class SingleFlight:
    """Within one process, identical misses wait for the first one's result.

    It also remembers which fill locks this process holds. The lock is taken by the rate-limit
    step's round trip for one request, but the request that leads the flight may be another
    one (their store replies can come back in either order): the leader fills and unlocks for
    the process, and the lock's taker simply joins the flight.
    """

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Any] | None] = {}  # None: nobody joined yet
        self._held: dict[str, float] = {}  # flight key -> monotonic end of the store lock

    def hold(self, key: str, ttl: float) -> None:
        if len(self._held) >= self._PRUNE_AT:
            now = time.monotonic()
            self._held = {k: end for k, end in self._held.items() if end > now}
        self._held[key] = time.monotonic() + ttl

    def holds(self, key: str) -> bool:
        end = self._held.get(key)
        return end is not None and end > time.monotonic()

    def drop(self, key: str) -> None:
        self._held.pop(key, None)

    async def run(
        self, key: str, work: Callable[..., Awaitable[Any]], *args: Any
    ) -> tuple[Any, bool]:
        """(result, collapsed): ``collapsed`` is True when another caller's result was reused;
        ``work(*args)`` runs for the first caller only. A flight gets its future when a second
        caller joins it: none for a lone miss."""
        flights = self._flights
        if key in flights:
            flight = flights[key]
            if flight is None:
                flight = flights[key] = asyncio.get_running_loop().create_future()
            return await asyncio.shield(flight), True
        flights[key] = None
        try:
            result = await work(*args)
        except BaseException as exc:
            flight = flights.pop(key)
            if flight is not None:
                flight.set_exception(exc)
                flight.exception()  # retrieved here; waiters re-raise it
            raise
        flight = flights.pop(key)
        if flight is not None:
            flight.set_result(result)
        return result, False


async def wait_for_entry(
    get: Callable[[], Awaitable[bytes | None]],
    seconds: float,
    stop: Callable[[], bool] = lambda: False,
) -> bytes | None:
    """Poll the store for an entry another replica is producing (bounded by its lock), until
    ``stop()`` says to give up waiting."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = await get()
        if raw is not None or stop():
            return raw
        await asyncio.sleep(_POLL)
    return None
