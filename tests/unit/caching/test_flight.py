"""Collapsing identical misses: a waiting leader and the process's own fill locks."""

from __future__ import annotations

import asyncio

import pytest

from gateway.caching.flight import SingleFlight, wait_for_entry

pytestmark = pytest.mark.anyio


async def test_a_waiting_leader_takes_over_when_its_process_gets_the_lock() -> None:
    # Two requests of one process miss together; the lock holder's store reply comes back
    # second, so the other leads the flight and starts waiting for an entry nobody else will
    # write. It must stop waiting once the holder registers the lock, not after the lock's TTL.
    flights = SingleFlight()
    polls: list[float] = []

    async def get() -> bytes | None:
        polls.append(asyncio.get_running_loop().time())
        return None

    async def holder_arrives() -> None:
        await asyncio.sleep(0.05)
        flights.hold("t:a|k", 5.0)

    arrival = asyncio.ensure_future(holder_arrives())
    raw = await wait_for_entry(get, 5.0, lambda: flights.holds("t:a|k"))
    await arrival
    assert raw is None
    assert flights.holds("t:a|k")
    assert len(polls) < 20  # stopped at the first poll after the hold (a 20 ms period), not at 5 s
    flights.drop("t:a|k")
    assert not flights.holds("t:a|k")
