"""Console sessions on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``::

    P session:<id>   string  the session's record, expiring (PX)
"""

from __future__ import annotations

import math

from redis.asyncio import Redis, RedisCluster

from gateway.store.redis.keys import KeyLayout, mapped


class RedisSessions:
    """The session part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._session_client = client
        self._session_keys = keys

    async def session_put(self, session_id: str, record: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"session_put: ttl must be positive, got {ttl}")
        key = self._session_keys.session(session_id)
        with mapped("session_put"):
            await self._session_client.set(key, record, px=max(1, math.ceil(ttl * 1000)))

    async def session_get(self, session_id: str) -> str | None:
        with mapped("session_get"):
            record = await self._session_client.get(self._session_keys.session(session_id))
        return None if record is None else str(record)

    async def session_delete(self, session_id: str) -> None:
        with mapped("session_delete"):
            await self._session_client.delete(self._session_keys.session(session_id))
