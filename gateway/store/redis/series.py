"""The replicas' live series on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``, all with the hash tag ``{series}`` (one slot)::

    P{series}:replicas        zset  replica id -> until when it is live (ms, Redis TIME)
    P{series}:r:<replica>     hash  step start (unix s) -> the step's text; '-' -> the
                                    replica's summary text ('' for none; the field also says
                                    the replica is live); expires (PX) a few steps after its
                                    last publish

A publish is one Lua call on both keys; a read is the index, then one pipeline of HMGETs.
A replica that stops publishing is gone from reads when its hash expires, and from the
index at the next publish of any replica.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from redis.asyncio import Redis, RedisCluster

from gateway.store.redis.keys import KeyLayout, mapped

PUBLISH: Final = """
-- KEYS[1]  the replica's steps (P{series}:r:<replica>)   KEYS[2]  the index (P{series}:replicas)
-- ARGV[1]  the replica's id   ARGV[2]  time to live (ms)   ARGV[3]  forget steps before this
-- ARGV[4]  the replica's summary text   ARGV[5], ARGV[6], ...  step start, text, ...
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], '-', ARGV[4])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local keep = tonumber(ARGV[3])
for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
  if name ~= '-' and tonumber(name) < keep then redis.call('HDEL', KEYS[1], name) end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""


class RedisSeries:
    """The live-series part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._series_client = client
        self._series_keys = keys
        self._series_publish = client.register_script(PUBLISH)

    async def series_publish(
        self,
        replica: str,
        steps: Mapping[int, str],
        *,
        keep_from: int,
        ttl: float,
        summary: str = "",
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"series_publish: ttl must be positive, got {ttl}")
        keys = [self._series_keys.series(f"r:{replica}"), self._series_keys.series("replicas")]
        args: list[str | int] = [replica, max(1, math.ceil(ttl * 1000)), keep_from, summary]
        for start, text in steps.items():
            args += [start, text]
        with mapped("series_publish"):
            await self._series_publish(keys=keys, args=args)

    async def series_read(self, steps: Sequence[int]) -> dict[str, dict[int, str]]:
        fields = ["-", *(str(s) for s in steps)]
        with mapped("series_read"):
            names = await self._series_client.zrange(self._series_keys.series("replicas"), 0, -1)
            replicas = [str(name) for name in names]
            async with self._series_client.pipeline(transaction=False) as pipe:
                for replica in replicas:
                    pipe.hmget(self._series_keys.series(f"r:{replica}"), fields)
                rows: list[Any] = await pipe.execute() if replicas else []
        found: dict[str, dict[int, str]] = {}
        for replica, (live, *texts) in zip(replicas, rows, strict=True):
            if live is not None:  # else its hash expired: it stopped publishing
                found[replica] = {
                    s: str(text) for s, text in zip(steps, texts, strict=True) if text is not None
                }
        return found

    async def series_summaries(self) -> dict[str, str]:
        with mapped("series_summaries"):
            names = await self._series_client.zrange(self._series_keys.series("replicas"), 0, -1)
            replicas = [str(name) for name in names]
            async with self._series_client.pipeline(transaction=False) as pipe:
                for replica in replicas:
                    pipe.hget(self._series_keys.series(f"r:{replica}"), "-")
                texts: list[Any] = await pipe.execute() if replicas else []
        # a replica whose hash expired stopped publishing: not live
        return {r: str(t) for r, t in zip(replicas, texts, strict=True) if t is not None}
