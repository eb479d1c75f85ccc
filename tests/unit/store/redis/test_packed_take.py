"""A one-group take on the lane sends its Lua call packed from the plan's prepared parts: the
very bytes ``pack_command`` makes of the whole command, for every shape (no cache entry, an
entry, an entry and its fill lock), EVALSHA first and EVAL when the server lost the script."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis

from gateway.store import Limit
from gateway.store.redis.keys import KeyLayout
from gateway.store.redis.lane import Lane, pack_command
from gateway.store.redis.limits import RedisLimits

pytestmark = pytest.mark.anyio

LIMITS = [
    Limit("t:acme", "rate", "bucket", 10.0, rate=2.5),
    Limit("t:acme", "quota-day", "window", 1000.0, window=86400.0),
    Limit("t:acme", "concurrency", "concurrency", 4.0, lease_ttl=30.0),
    Limit("t:acme", "key-ab12", "bucket", 5.0, rate=0.5),
]


class _Recorder:
    """Stands for the lane: records what is sent, answers an admitted take (and, once, the
    NOSCRIPT error when asked to)."""

    def __init__(self, count: int, lost: bool) -> None:
        self.sent: list[bytes] = []
        self.count, self.lost = count, lost

    async def call_packed(self, packed: bytes) -> Any:
        self.sent.append(packed)
        if self.lost:
            self.lost = False
            raise rx.NoScriptError("NOSCRIPT No matching script.")
        return [1, b"0", *[b"1", b"0", b""] * self.count, None, 1]


def _expected(verb: str, body: str | bytes, keys: list[str], args: list[str]) -> bytes:
    return pack_command((verb, body, str(len(keys)), *keys, *args))


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("shape", ["limits", "cache", "cache and lock"])
@pytest.mark.parametrize("lost", [False, True], ids=["evalsha", "eval"])
@pytest.mark.parametrize("lease", [None, "l-1"])
@pytest.mark.parametrize("container", [list, tuple])
async def test_the_packed_take_is_the_whole_command_packed(
    count: int, shape: str, lost: bool, lease: str | None, container: type[Sequence[Limit]]
) -> None:
    client = Redis()  # connects nothing here: the lane stands in
    layout = KeyLayout("gw:")
    limits = RedisLimits(client, layout)
    assert isinstance(limits._lane, Lane)
    recorder = _Recorder(count, lost)
    limits._lane = recorder  # type: ignore[assignment]
    chosen = container(LIMITS[:count])  # type: ignore[call-arg]
    if lease is None:
        chosen = container([x for x in chosen if x.kind != "concurrency"])  # type: ignore[call-arg]
    cache = None if shape == "limits" else ("t:acme", "m:1:abc")
    lock = 2.5 if shape == "cache and lock" else None
    for _ in range(2):  # the plan made, then taken from the memo
        await limits.take(chosen, lease=lease, cache=cache, lock=lock)
    keys = [layout.limit(x.group, x.name) for x in chosen]
    if cache is not None:
        keys.append(layout.cache(*cache))
    if lock is not None:
        keys.append(layout.cache_lock(*cache))  # type: ignore[misc]
    args = ["take", "1.0", lease or "", "2500" if lock is not None else ""]
    for x in chosen:
        args += [x.kind, repr(x.limit), repr(x.rate), repr(x.window), repr(x.lease_ttl), ""]
    script = limits._script
    evalsha = _expected("EVALSHA", script.sha, keys, args)
    evaled = _expected("EVAL", script.script, keys, args)  # type: ignore[arg-type]
    assert recorder.sent == ([evalsha, evaled, evalsha] if lost else [evalsha, evalsha])
    await client.aclose()


async def test_plans_known_by_identity_are_bounded_and_never_confused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tuple of limits is known by identity (no hash of its limits per take): the memo holds
    the tuple (its id is not reused meanwhile), is bounded, and a tuple of other limits never
    gets another's plan."""
    monkeypatch.setattr("gateway.store.redis.limits._SEEN", 4)
    client = Redis()
    layout = KeyLayout("gw:")
    limits = RedisLimits(client, layout)
    recorder = _Recorder(1, False)
    limits._lane = recorder  # type: ignore[assignment]
    for round_ in range(3):
        for i in range(6):
            mine = (Limit(f"t:{i}", "rate", "bucket", 10.0 + round_, rate=1.0),)
            await limits.take(mine)
            assert layout.limit(f"t:{i}", "rate").encode() in recorder.sent[-1]
            assert (
                f"${len(repr(10.0 + round_))}\r\n{10.0 + round_!r}\r\n".encode()
                in (recorder.sent[-1])
            )
            assert len(limits._seen) <= 4
    await client.aclose()
