"""Rollout state, events, figures and the driver's lease on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``::

    P lease:<name>                          string  the holder's id, expiring (PX)
    P rollouts                              set     every model with a rollout state
    P{rollout:<model>}:state                hash    rev = revision, state = the state's JSON
    P{rollout:<model>}:events               list    event JSON, newest first, trimmed
    P{rollout:<model>}:f:<step>:<version>   hash    n, e, b<i>: one step's summed figures

Each Lua call touches one key; the rest are pipelines of single-key commands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from redis.asyncio import Redis, RedisCluster

from gateway.store.redis.keys import KeyLayout, mapped

LEASE: Final = """
-- KEYS[1]  the lease (P lease:<name>)
-- ARGV[1]  the holder's id
-- ARGV[2]  time to live, milliseconds
-- Takes a free lease or renews the holder's own; 1 if ARGV[1] holds it now.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RELEASE: Final = """
-- KEYS[1]  the lease; ARGV[1] the holder's id. Deletes it only if ARGV[1] holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

SWAP: Final = """
-- KEYS[1]  the model's state hash (P{rollout:<model>}:state)
-- ARGV[1]  the revision the writer read (0: none)
-- ARGV[2]  the new state's JSON
-- Compare and set: writes and bumps the revision only if it is still ARGV[1].
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'rev', rev + 1, 'state', ARGV[2])
return 1
"""


class RedisRollouts:
    """The rollout part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._rollout_client = client
        self._rollout_keys = keys
        self._lease_script = client.register_script(LEASE)
        self._release_script = client.register_script(RELEASE)
        self._swap_script = client.register_script(SWAP)

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        if ttl <= 0:
            raise ValueError(f"lease: ttl must be positive, got {ttl}")
        key = self._rollout_keys.lease(name)
        with mapped("lease"):
            return bool(await self._lease_script(keys=[key], args=[holder, _ms(ttl)]))

    async def release_lease(self, name: str, holder: str) -> None:
        with mapped("release_lease"):
            await self._release_script(keys=[self._rollout_keys.lease(name)], args=[holder])

    async def rollout_state(self, model: str) -> tuple[int, str | None]:
        with mapped("rollout_state"):
            rev, state = await self._rollout_client.hmget(
                self._rollout_keys.rollout_state(model), ["rev", "state"]
            )
        return (0, None) if rev is None or state is None else (int(rev), str(state))

    async def rollout_swap(self, model: str, rev: int, state: str) -> bool:
        keys = self._rollout_keys
        with mapped("rollout_swap"):
            swapped = await self._swap_script(keys=[keys.rollout_state(model)], args=[rev, state])
            if swapped:
                await self._rollout_client.sadd(keys.rollouts(), model)
        return bool(swapped)

    async def rollout_models(self) -> list[str]:
        with mapped("rollout_models"):
            names = await self._rollout_client.smembers(self._rollout_keys.rollouts())
        return sorted(str(n) for n in names)

    async def rollout_event(self, model: str, event: str, cap: int) -> None:
        key = self._rollout_keys.rollout_events(model)
        with mapped("rollout_event"):
            async with self._rollout_client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, event)
                pipe.ltrim(key, 0, cap - 1)
                await pipe.execute()

    async def rollout_events(self, model: str, limit: int) -> list[str]:
        if limit <= 0:
            return []
        with mapped("rollout_events"):
            texts = await self._rollout_client.lrange(
                self._rollout_keys.rollout_events(model), 0, limit - 1
            )
        return [str(t) for t in texts]

    async def rollout_count(
        self, model: str, step: str, counts: Mapping[str, Mapping[str, int]], ttl: float
    ) -> None:
        if not any(counts.values()):
            return
        with mapped("rollout_count"):
            async with self._rollout_client.pipeline(transaction=False) as pipe:
                for version, fields in counts.items():
                    key = self._rollout_keys.rollout_figures(model, step, version)
                    for name, value in fields.items():
                        pipe.hincrby(key, name, value)
                    pipe.pexpire(key, _ms(ttl))
                await pipe.execute()

    async def rollout_figures(
        self, model: str, step: str, versions: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        keys = [self._rollout_keys.rollout_figures(model, step, v) for v in versions]
        with mapped("rollout_figures"):
            async with self._rollout_client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                rows: list[Any] = await pipe.execute()
        return {
            v: {str(k): int(n) for k, n in row.items()}
            for v, row in zip(versions, rows, strict=True)
        }


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
