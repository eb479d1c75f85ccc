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


async def test_callers_that_join_a_flight_share_its_result_and_the_work_runs_once() -> None:
    flights = SingleFlight()
    release = asyncio.Event()
    runs: list[str] = []

    async def work(tag: str) -> str:
        runs.append(tag)
        await release.wait()
        return f"done-{tag}"

    leader = asyncio.ensure_future(flights.run("k", work, "a"))
    await asyncio.sleep(0)
    joiners = [asyncio.ensure_future(flights.run("k", work, t)) for t in ("b", "c")]
    await asyncio.sleep(0)
    release.set()
    assert await leader == ("done-a", False)
    assert [await j for j in joiners] == [("done-a", True), ("done-a", True)]
    assert runs == ["a"]
    # the flight is over: the next caller runs the work again, alone
    release.set()
    assert await flights.run("k", work, "d") == ("done-d", False)
    assert runs == ["a", "d"]


async def test_a_failed_flight_fails_its_joiners_and_a_lone_one_leaves_nothing_behind() -> None:
    flights = SingleFlight()
    release = asyncio.Event()

    async def fail() -> str:
        await release.wait()
        raise RuntimeError("backend down")

    async def alone() -> str:
        raise RuntimeError("alone")

    with pytest.raises(RuntimeError, match="alone"):  # nobody joined: no future to fail
        await flights.run("k", alone)
    leader = asyncio.ensure_future(flights.run("k", fail))
    await asyncio.sleep(0)
    joiner = asyncio.ensure_future(flights.run("k", fail))
    await asyncio.sleep(0)
    release.set()
    for task in (leader, joiner):
        with pytest.raises(RuntimeError, match="backend down"):
            await task
    assert not flights._flights
