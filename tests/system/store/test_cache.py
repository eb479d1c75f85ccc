"""The response cache, one contract for every store: bytes kept exact, TTLs, fill locks, purges,
and the read that rides along with :meth:`Store.take`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import pytest
import redis.asyncio as aredis
from redis.asyncio import BlockingConnectionPool, Connection

from gateway.store import Limit, Store
from gateway.store.redis.lane import Lane
from gateway.store.redis.store import RedisStore
from tests.system.store.conftest import WAIT

pytestmark = pytest.mark.anyio

VALUES = [b"", b"{}", bytes(range(256)), b"\xff\xfe\x00\x80 not UTF-8", "ü".encode(), b"x" * 2**20]


async def gone(store: Store, group: str, key: str) -> None:
    """Wait (bounded) until the entry has expired."""
    with anyio.fail_after(WAIT):
        while await store.cache_get(group, key) is not None:  # noqa: ASYNC110 - no event
            await anyio.sleep(0.05)


async def test_values_come_back_byte_for_byte(store: Store) -> None:
    assert await store.cache_get("m:fraud", "k0") is None
    for n, value in enumerate(VALUES):
        await store.cache_set("m:fraud", f"k{n}", value, 60)
    assert [await store.cache_get("m:fraud", f"k{n}") for n in range(len(VALUES))] == VALUES
    await store.cache_set("m:fraud", "k0", b"replaced", 60)
    assert await store.cache_get("m:fraud", "k0") == b"replaced"
    assert await store.cache_get("m:other", "k0") is None


async def test_an_entry_expires(store: Store) -> None:
    await store.cache_set("m:fraud", "short", b"v", 0.2)
    await store.cache_set("m:fraud", "long", b"w", 60)
    assert await store.cache_get("m:fraud", "short") == b"v"
    await gone(store, "m:fraud", "short")
    assert await store.cache_get("m:fraud", "long") == b"w"


async def test_a_fill_lock_is_held_once_until_unlocked_or_expired(store: Store) -> None:
    assert await store.cache_lock("m:fraud", "k", 60) is True
    assert await store.cache_lock("m:fraud", "k", 60) is False
    assert await store.cache_lock("m:fraud", "other", 60) is True
    assert await store.cache_get("m:fraud", "k") is None  # a lock is not an entry
    await store.cache_unlock("m:fraud", "k")
    assert await store.cache_lock("m:fraud", "k", 0.2) is True
    with anyio.fail_after(WAIT):
        while not await store.cache_lock("m:fraud", "k", 60):  # noqa: ASYNC110 - no event
            await anyio.sleep(0.05)
    await store.cache_unlock("m:fraud", "never-locked")


async def test_one_racer_gets_the_fill_lock(store: Store) -> None:
    results = await asyncio.gather(*(store.cache_lock("m:fraud", "k", 60) for _ in range(30)))
    assert results.count(True) == 1


ENTRIES = [
    ("t:acme", "fraud:3:a1"),
    ("t:acme", "fraud:4:a2"),
    ("t:acme", "ocr:1:a3"),
    ("t:beta", "fraud:3:b1"),
    ("t:beta", "ocr:1:b2"),
    ("m:fraud", "3:c1"),
]


@pytest.mark.parametrize(
    ("pattern", "purged"),
    [
        ("t:acme|*", {0, 1, 2}),  # a tenant
        ("*|fraud:3:*", {0, 3}),  # a model version
        ("*|fraud:*", {0, 1, 3}),  # a model
        ("t:*|ocr:?:*", {2, 4}),
        ("m:fraud|*", {5}),
        ("t:[ab]*|fraud:[34]:?1", {0, 3}),
        ("*", {0, 1, 2, 3, 4, 5}),
        ("t:gamma|*", set()),
        ("T:ACME|*", set()),  # case matters
    ],
)
async def test_purge_deletes_the_entries_a_glob_matches(
    store: Store, pattern: str, purged: set[int]
) -> None:
    for group, key in ENTRIES:
        await store.cache_set(group, key, key.encode(), 60)
        await store.cache_lock(group, key, 60)
    assert await store.cache_purge(pattern) == len(purged)
    left = [await store.cache_get(group, key) for group, key in ENTRIES]
    assert left == [None if n in purged else k.encode() for n, (_, k) in enumerate(ENTRIES)]
    assert await store.cache_lock(*ENTRIES[0], 60) is False  # locks are left to expire
    assert await store.cache_purge(pattern) == 0


async def test_purge_reaches_every_group_and_node(store: Store) -> None:
    """Many groups (on a cluster, spread over every master) and more than one DEL batch."""
    entries = [(f"t:{n % 40}", f"fraud:3:{n}") for n in range(1200)]
    for start in range(0, len(entries), 50):
        batch = entries[start : start + 50]
        await asyncio.gather(*(store.cache_set(g, k, b"v", 60) for g, k in batch))
    await store.cache_set("t:0", "ocr:1:x", b"kept", 60)
    assert await store.cache_purge("*|fraud:3:*") == 1200
    assert await store.cache_get("t:0", "ocr:1:x") == b"kept"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.cache_set("g", "k", b"v", 0),
        lambda s: s.cache_set("g", "k", b"v", -1),
        lambda s: s.cache_lock("g", "k", 0),
        lambda s: s.cache_get("g", "k:lock"),
        lambda s: s.cache_get("", "k"),
        lambda s: s.take([], cache=("g", "k:lock")),
    ],
)
async def test_a_cache_call_that_makes_no_sense_is_refused(
    store: Store, call: Callable[[Store], Awaitable[object]]
) -> None:
    with pytest.raises(ValueError, match=r"ttl|lock|group"):
        await call(store)


# the read that rides along with take()


async def test_take_reads_the_cache_entry(store: Store) -> None:
    rate = Limit("t:acme", "rate", "bucket", 1, rate=0.001)
    await store.cache_set("t:acme", "k", b"\xffsame group", 60)
    await store.cache_set("m:fraud", "k", b"\xffother group", 60)
    assert (await store.take([], cache=("t:acme", "k")))[1] == b"\xffsame group"
    verdict, value = await store.take([rate], cache=("t:acme", "k"))
    assert (verdict.admitted, value) == (True, b"\xffsame group")
    verdict, value = await store.take([rate], cache=("m:fraud", "k"))
    assert (verdict.admitted, value) == (False, b"\xffother group")  # read even when refused
    assert (await store.take([rate], cache=("t:acme", "missing")))[1] is None
    assert (await store.take([rate], cache=("m:fraud", "missing")))[1] is None


async def test_take_tries_the_fill_lock_of_a_missing_entry(store: Store) -> None:
    rate = Limit("t:acme", "rate", "bucket", 2, rate=0.001)
    first, value = await store.take([rate], cache=("t:acme", "k"), lock=60)
    assert (first.admitted, first.filling, value) == (True, True, None)
    second, _ = await store.take([rate], cache=("t:acme", "k"), lock=60)
    assert (second.admitted, second.filling) == (True, False)  # the first caller fills
    assert await store.cache_lock("t:acme", "k", 60) is False  # really held
    refused, _ = await store.take([rate], cache=("t:acme", "k2"), lock=60)
    assert (refused.admitted, refused.filling) == (False, None)  # no lock for a refusal
    assert await store.cache_lock("t:acme", "k2", 60) is True
    # no limits: the lookup alone, with the lock
    alone, _ = await store.take([], cache=("t:beta", "k"), lock=60)
    assert (alone.admitted, alone.filling) == (True, True)
    # an entry that is there: nothing to fill, no lock
    await store.cache_set("t:beta", "there", b"v", 60)
    found, value = await store.take([], cache=("t:beta", "there"), lock=60)
    assert (found.filling, value) == (None, b"v")
    assert await store.cache_lock("t:beta", "there", 60) is True


async def test_storing_an_entry_can_release_its_fill_lock(store: Store) -> None:
    assert await store.cache_lock("m:fraud", "k", 60) is True
    await store.cache_set("m:fraud", "k", b"v", 60)
    assert await store.cache_lock("m:fraud", "k", 60) is False  # a plain set keeps the lock
    await store.cache_set("m:fraud", "k", b"w", 60, unlock=True)
    assert await store.cache_get("m:fraud", "k") == b"w"
    assert await store.cache_lock("m:fraud", "k", 60) is True


# Redis only


async def test_entries_are_stored_as_the_bytes_given(
    redis_store: RedisStore, redis_url: str, redis_prefix: str
) -> None:
    value = b"\xff\xfe\x00\x80"
    await redis_store.cache_set("m:fraud", "k", value, 60)
    await redis_store.cache_lock("m:fraud", "k", 60)
    admin = aredis.Redis.from_url(redis_url)
    try:
        assert await admin.get(f"{redis_prefix}{{m:fraud}}:c:k") == value
        assert await admin.exists(f"{redis_prefix}{{m:fraud}}:c:k:lock") == 1
        assert 59_000 < await admin.pttl(f"{redis_prefix}{{m:fraud}}:c:k") <= 60_000
    finally:
        await admin.aclose()


def counting_store(
    url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[RedisStore, list[bytes]]:
    """A store that notes every round trip: each write of its redis-py connections (a
    pipeline is one), and each command on its lane, packed there or by the store (the store
    awaits each lane command before it sends the next, so each is a round trip of its own)."""
    sent: list[bytes] = []
    call = Lane.call

    def counted(lane: Lane, *command: str | bytes | int | float) -> Awaitable[Any]:
        sent.append(str(command[0]).encode())
        return call(lane, *command)

    monkeypatch.setattr(Lane, "call", counted)
    call_packed = Lane.call_packed

    def counted_packed(lane: Lane, packed: bytes) -> Awaitable[Any]:
        sent.append(packed)
        return call_packed(lane, packed)

    monkeypatch.setattr(Lane, "call_packed", counted_packed)

    class CountingConnection(Connection):
        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            sent.append(bytes(command) if isinstance(command, bytes) else b"...")
            await super().send_packed_command(command, check_health)

    pool = BlockingConnectionPool.from_url(
        url, connection_class=CountingConnection, decode_responses=True
    )
    return RedisStore(aredis.Redis.from_pool(pool), prefix=prefix), sent


@pytest.mark.parametrize(
    ("limits", "cache"),
    [
        (["t:acme"], ("t:acme", "k")),  # inside the Lua call
        (["t:acme"], ("m:fraud", "k")),  # another slot: the same pipeline
        (["t:acme", "t:beta"], ("t:acme", "k")),
        ([], ("t:acme", "k")),
    ],
)
async def test_take_reads_the_cache_in_one_round_trip(
    redis_url: str,
    redis_prefix: str,
    limits: list[str],
    cache: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, sent = counting_store(redis_url, redis_prefix, monkeypatch)
    try:
        given = [Limit(group, "rate", "bucket", 100, rate=1) for group in limits]
        await store.cache_set(*cache, b"v", 60)
        await store.take(given, cache=cache)  # connects, loads the script
        sent.clear()
        verdict, value = await store.take(given, cache=cache)
        assert (verdict.admitted, value) == (True, b"v")
        assert len(sent) == max(len(limits), 1)  # one per group decided
    finally:
        await store.close()


CACHE_OPERATIONS: list[tuple[str, Callable[[Store], Awaitable[object]]]] = [
    ("cache_get", lambda s: s.cache_get("g", "k")),
    ("cache_set", lambda s: s.cache_set("g", "k", b"v", 60)),
    ("cache_lock", lambda s: s.cache_lock("g", "k", 60)),
    ("cache_unlock", lambda s: s.cache_unlock("g", "k")),
    ("cache_purge", lambda s: s.cache_purge("g|*")),
    ("take-cache", lambda s: s.take([], cache=("g", "k"))),
    ("take-inline", lambda s: s.take([Limit("g", "r", "bucket", 1, rate=1)], cache=("g", "k"))),
]


# A dead Redis for every operation here: tests/system/store/test_limits.py, CACHE_OPERATIONS.
