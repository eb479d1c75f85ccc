"""The store's rollout records, one contract for every store: the driver's lease, the state's
compare-and-set, the capped event log and the summed per-step figures. Two Redis stores of a
test share their keys (two replicas); in memory, "two replicas" are two callers of one store."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store import MemoryStore, Store
from tests.system.store.conftest import MakeStore

pytestmark = pytest.mark.anyio


async def pair(make_store: MakeStore) -> tuple[Store, Store]:
    a = await make_store()
    return (a, a) if isinstance(a, MemoryStore) else (a, await make_store())


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(
    make_store: MakeStore,
) -> None:
    a, b = await pair(make_store)
    assert await a.lease("driver", "one", 5.0)
    assert not await b.lease("driver", "two", 5.0)
    assert await a.lease("driver", "one", 0.05)  # the holder renews (here: shortens) it
    await b.release_lease("driver", "two")  # not the holder's: nothing happens
    assert not await b.lease("driver", "two", 5.0)
    for _ in range(200):  # bounded: 0.05 s to expire
        if await b.lease("driver", "two", 5.0):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the expired lease was never free again")
    await b.release_lease("driver", "two")
    assert await a.lease("driver", "one", 5.0)


async def test_state_writes_are_compare_and_set(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    assert await a.rollout_state("fraud") == (0, None)
    assert await a.rollout_swap("fraud", 0, '{"v": 1}')
    assert not await b.rollout_swap("fraud", 0, '{"v": "lost"}')
    assert await b.rollout_state("fraud") == (1, '{"v": 1}')
    assert await b.rollout_swap("fraud", 1, '{"v": 2}')
    assert await a.rollout_state("fraud") == (2, '{"v": 2}')
    assert await a.rollout_models() == ["fraud"]


async def test_events_are_newest_first_and_capped(store: Store) -> None:
    for n in range(7):
        await store.rollout_event("fraud", f"e{n}", 5)
    assert await store.rollout_events("fraud", 3) == ["e6", "e5", "e4"]
    assert await store.rollout_events("fraud", 100) == ["e6", "e5", "e4", "e3", "e2"]
    assert await store.rollout_events("other", 10) == []


async def test_figures_are_summed_per_step_and_version(make_store: MakeStore) -> None:
    a, b = await pair(make_store)
    await a.rollout_count("fraud", "s1", {"2": {"n": 3, "e": 1, "b4": 3}}, 60)
    await b.rollout_count("fraud", "s1", {"2": {"n": 2, "b4": 1, "b9": 1}, "1": {"n": 5}}, 60)
    await b.rollout_count("fraud", "s2", {"2": {"n": 100}}, 60)
    figures = await a.rollout_figures("fraud", "s1", ["1", "2", "3"])
    assert figures == {"1": {"n": 5}, "2": {"n": 5, "e": 1, "b4": 4, "b9": 1}, "3": {}}
    assert (await a.rollout_figures("fraud", "s2", ["2"]))["2"] == {"n": 100}
