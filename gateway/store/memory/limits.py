"""Limits and the response cache in this process's memory: the math of
:data:`~gateway.store.redis.limits.LIMITS`, with ``time.time()`` as the clock."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from fnmatch import fnmatchcase

from gateway.store.base import Limit, LimitState, Verdict, check_cache_key, check_take

_SWEEP_FLOOR = 1024  # sweep stale state when a table reaches this size (then twice its size)


class MemoryLimits:
    """The limits and cache half of :class:`~gateway.store.memory.MemoryStore`.

    Every call runs without awaiting, so all limits of a request are decided at once.
    """

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float, float]] = {}  # tokens, at, full
        self._windows: dict[tuple[str, str], tuple[int, float, float]] = {}  # index, count, end
        self._leases: dict[tuple[str, str], dict[str, float]] = {}  # lease -> expiry
        self._cache: dict[tuple[str, str], tuple[bytes, float]] = {}  # (value, monotonic end)
        self._locks: dict[tuple[str, str], float] = {}  # monotonic end
        self._sweep_at = _SWEEP_FLOOR

    async def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> tuple[Verdict, bytes | None]:
        check_take(limits, cost, lease)
        value = await self.cache_get(*cache) if cache is not None else None
        now = time.time()
        self._sweep(now)
        levels = [self._level(limit, lease or "", now) for limit in limits]
        waits = [
            self._wait(x, level, cost, lease or "", now)
            for x, level in zip(limits, levels, strict=True)
        ]
        admitted = all(wait is None for wait in waits)
        if admitted:
            levels = [
                self._take(x, level, cost, lease or "", now)
                for x, level in zip(limits, levels, strict=True)
            ]
        states = tuple(_state(x, level, now) for x, level in zip(limits, levels, strict=True))
        held = admitted and any(x.kind == "concurrency" for x in limits)
        retry = 0.0 if admitted else max(w for w in waits if w is not None)
        filling = None
        if lock is not None and cache is not None and value is None and admitted:
            filling = await self.cache_lock(*cache, lock)
        verdict = Verdict(admitted, states, retry, lease if held else None, filling)
        return verdict, value

    async def release(self, limits: Sequence[Limit], lease: str) -> None:
        for limit in limits:
            if limit.kind == "concurrency":
                self._leases.get((limit.group, limit.name), {}).pop(lease, None)

    async def cache_get(self, group: str, key: str) -> bytes | None:
        check_cache_key(group, key)
        entry = self._cache.get((group, key))
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def cache_set(
        self, group: str, key: str, value: bytes, ttl: float, *, unlock: bool = False
    ) -> None:
        check_cache_key(group, key)
        self._cache[(group, key)] = (bytes(value), time.monotonic() + _positive(ttl))
        if unlock:
            self._locks.pop((group, key), None)

    async def cache_lock(self, group: str, key: str, ttl: float) -> bool:
        check_cache_key(group, key)
        now = time.monotonic()
        if self._locks.get((group, key), 0.0) > now:
            return False
        self._locks[(group, key)] = now + _positive(ttl)
        return True

    async def cache_unlock(self, group: str, key: str) -> None:
        check_cache_key(group, key)
        self._locks.pop((group, key), None)

    async def cache_purge(self, pattern: str) -> int:
        now = time.monotonic()
        doomed = [
            entry
            for entry, (_, end) in self._cache.items()
            if end > now and fnmatchcase(f"{entry[0]}|{entry[1]}", pattern)
        ]
        for entry in doomed:
            del self._cache[entry]
        return len(doomed)

    def _level(self, limit: Limit, lease: str, now: float) -> float:
        """Tokens in a bucket, the count of the current window, the leases held."""
        where = (limit.group, limit.name)
        if limit.kind == "bucket":
            tokens, at, _ = self._buckets.get(where, (limit.limit, now, now))
            return min(limit.limit, tokens + max(0.0, now - at) * limit.rate)
        if limit.kind == "window":
            index, count, _ = self._windows.get(where, (-1, 0.0, now))
            return count if index == _window(limit, now)[0] else 0.0
        leases = self._leases.setdefault(where, {})
        for expired in [held for held, end in leases.items() if end <= now]:
            del leases[expired]
        return float(len(leases))

    def _wait(
        self, limit: Limit, level: float, cost: float, lease: str, now: float
    ) -> float | None:
        """``None`` if ``limit`` admits, else how long until it could."""
        if limit.kind == "bucket":
            if level >= cost:
                return None
            return math.inf if cost > limit.limit else (cost - level) / limit.rate
        if limit.kind == "window":
            if level + cost <= limit.limit:
                return None
            return math.inf if cost > limit.limit else _window(limit, now)[1]
        leases = self._leases[(limit.group, limit.name)]
        if lease in leases or level < limit.limit:
            return None
        return max(min(leases.values()) - now, 0.001) if leases else math.inf

    def _take(self, limit: Limit, level: float, cost: float, lease: str, now: float) -> float:
        where = (limit.group, limit.name)
        if limit.kind == "bucket":
            full = now + (limit.limit - level + cost) / limit.rate
            self._buckets[where] = (level - cost, now, full)
            return level - cost
        if limit.kind == "window":
            index, ends = _window(limit, now)
            self._windows[where] = (index, level + cost, now + ends)
            return level + cost
        leases = self._leases[where]
        leases[lease] = now + limit.lease_ttl
        return float(len(leases))

    def _sweep(self, now: float) -> None:
        """Forget full buckets, past windows and empty lease sets once the tables doubled."""
        size = len(self._buckets) + len(self._windows) + len(self._leases) + len(self._cache)
        if size < self._sweep_at:
            return
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        self._windows = {k: v for k, v in self._windows.items() if v[2] > now}
        self._leases = {k: v for k, v in self._leases.items() if any(e > now for e in v.values())}
        clock = time.monotonic()
        self._cache = {k: v for k, v in self._cache.items() if v[1] > clock}
        self._locks = {k: v for k, v in self._locks.items() if v > clock}
        size = len(self._buckets) + len(self._windows) + len(self._leases) + len(self._cache)
        self._sweep_at = max(2 * size, _SWEEP_FLOOR)


def _window(limit: Limit, now: float) -> tuple[int, float]:
    """The index of the window ``now`` falls in, and the seconds until it ends."""
    length = round(limit.window * 1_000_000)
    now_us = round(now * 1_000_000)
    index = now_us // length
    return index, ((index + 1) * length - now_us) / 1_000_000


def _state(limit: Limit, level: float, now: float) -> LimitState:
    remaining: float
    if limit.kind == "bucket":
        remaining, reset = math.floor(level), (limit.limit - level) / limit.rate
    elif limit.kind == "window":
        remaining, reset = limit.limit - level, _window(limit, now)[1]
    else:
        remaining, reset = limit.limit - level, 0.0
    return LimitState(limit.group, limit.name, limit.limit, float(remaining), reset)


def _positive(ttl: float) -> float:
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"cache: ttl must be positive, got {ttl}")
    return ttl
