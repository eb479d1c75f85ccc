"""Webhook secrets and deliveries on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``::

    P{t:<tenant>}:webhook_secret   string  WebhookSecret JSON (sealed), in its tenant's slot
    P{webhooks}:due                zset    queued delivery id -> due (ms, Redis TIME)
    P{webhooks}:records            hash    delivery id -> Delivery JSON (queued and dead)
    P{webhooks}:claims             hash    delivery id -> the current claim token
    P{webhooks}:dead               zset    dead delivery id -> when it died (ms)

Every queue operation is one Lua call on the ``{webhooks}`` keys (one slot), timed by the
server's clock: replicas with skewed clocks agree on what is due.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import replace
from typing import Any, Final

from redis.asyncio import Redis, RedisCluster

from gateway.store.redis.keys import KeyLayout, mapped
from gateway.store.webhooks import DEAD_CAP, Claimed, Delivery, WebhookSecret

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

PUT: Final = (
    """
-- KEYS[1] due  KEYS[2] records
-- ARGV[1] id  ARGV[2] Delivery JSON  ARGV[3] delay (ms)
"""
    + _NOW
    + """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

CLAIM: Final = (
    """
-- KEYS[1] due  KEYS[2] records  KEYS[3] claims
-- ARGV[1] lease (ms)  ARGV[2] how many at most  ARGV[3] a token prefix unique to this call
-- Returns {id, record, token, ...} of the due deliveries now held for the lease.
"""
    + _NOW
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    local token = ARGV[3] .. ':' .. i
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    redis.call('HSET', KEYS[3], id, token)
    table.insert(out, id)
    table.insert(out, record)
    table.insert(out, token)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
)

NEXT: Final = (
    """
-- KEYS[1] due
-- Milliseconds until the earliest queued delivery is due (0: due now), or false for none.
"""
    + _NOW
    + """
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if not first[2] then return false end
return math.max(0, tonumber(first[2]) - now)
"""
)

FINISH: Final = (
    """
-- KEYS[1] due  KEYS[2] records  KEYS[3] claims  KEYS[4] dead
-- ARGV[1] id  ARGV[2] claim token  ARGV[3] 'delivered' | 'retry' | 'bury'
-- ARGV[4] Delivery JSON (retry, bury)  ARGV[5] delay ms (retry)  ARGV[6] dead cap (bury)
-- Only the holder of the current claim finishes a delivery: 1, else 0 and nothing changes.
"""
    + _NOW
    + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[3] == 'delivered' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
elseif ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[4], over)
    for i = 1, #oldest, 2 do redis.call('HDEL', KEYS[2], oldest[i]) end
  end
end
return 1
"""
)

REVIVE: Final = (
    """
-- KEYS[1] due  KEYS[2] records  KEYS[3] dead
-- ARGV[1] id  ARGV[2] the Delivery JSON to queue (attempts reset)
-- Moves a dead delivery back to the queue, due now: 1, or 0 if it is not dead.
"""
    + _NOW
    + """
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1
"""
)


class RedisWebhooks:
    """The webhook part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(
        self, client: Redis | RedisCluster, keys: KeyLayout, dead_cap: int = DEAD_CAP
    ) -> None:
        self._webhook_client = client
        self._webhook_keys = keys
        self._dead_cap = dead_cap
        self._put_script = client.register_script(PUT)
        self._claim_script = client.register_script(CLAIM)
        self._next_script = client.register_script(NEXT)
        self._finish_script = client.register_script(FINISH)
        self._revive_script = client.register_script(REVIVE)

    async def put_webhook_secret(self, secret: WebhookSecret) -> None:
        key = self._webhook_keys.webhook_secret(secret.tenant)
        with mapped("put_webhook_secret"):
            await self._webhook_client.set(key, secret.to_json())

    async def get_webhook_secret(self, tenant: str) -> WebhookSecret | None:
        with mapped("get_webhook_secret"):
            text = await self._webhook_client.get(self._webhook_keys.webhook_secret(tenant))
        return None if text is None else WebhookSecret.from_json(text)

    async def delete_webhook_secret(self, tenant: str) -> bool:
        key = self._webhook_keys.webhook_secret(tenant)
        with mapped("delete_webhook_secret"):
            return bool(await self._webhook_client.delete(key))

    async def webhook_put(self, delivery: Delivery, delay: float = 0.0) -> None:
        keys = [self._queue("due"), self._queue("records")]
        with mapped("webhook_put"):
            await self._put_script(keys=keys, args=[delivery.id, delivery.to_json(), _ms(delay)])

    async def webhook_claim(self, lease: float, limit: int) -> list[Claimed]:
        if limit <= 0:
            return []
        keys = [self._queue("due"), self._queue("records"), self._queue("claims")]
        args: list[str | int] = [max(1, _ms(lease)), limit, secrets.token_hex(8)]
        with mapped("webhook_claim"):
            flat: list[Any] = await self._claim_script(keys=keys, args=args)
        return [
            Claimed(Delivery.from_json(flat[i + 1]), str(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    async def webhook_next(self) -> float | None:
        with mapped("webhook_next"):
            wait: int | None = await self._next_script(keys=[self._queue("due")])
        return None if wait is None else wait / 1000

    async def webhook_delivered(self, claimed: Claimed) -> bool:
        return await self._finish(claimed, "delivered", "", 0)

    async def webhook_retry(self, claimed: Claimed, delivery: Delivery, delay: float) -> bool:
        return await self._finish(claimed, "retry", delivery.to_json(), _ms(delay))

    async def webhook_bury(self, claimed: Claimed, delivery: Delivery) -> bool:
        return await self._finish(claimed, "bury", delivery.to_json(), 0)

    async def webhook_dead(self, limit: int) -> list[Delivery]:
        if limit <= 0:
            return []
        with mapped("webhook_dead"):
            found = await self._webhook_client.zrevrange(self._queue("dead"), 0, limit - 1)
            ids = [str(i) for i in found]
            if not ids:
                return []
            texts = await self._webhook_client.hmget(self._queue("records"), ids)
        return [Delivery.from_json(t) for t in texts if t is not None]

    async def webhook_revive(self, delivery_id: str) -> Delivery | None:
        delivery = await self.webhook_get(delivery_id)
        if delivery is None:
            return None
        revived = replace(delivery, attempts=0, dead_at=None)
        keys = [self._queue("due"), self._queue("records"), self._queue("dead")]
        with mapped("webhook_revive"):
            moved = await self._revive_script(keys=keys, args=[delivery_id, revived.to_json()])
        return revived if moved else None

    async def webhook_get(self, delivery_id: str) -> Delivery | None:
        with mapped("webhook_get"):
            text = await self._webhook_client.hget(self._queue("records"), delivery_id)
        return None if text is None else Delivery.from_json(text)

    async def _finish(self, claimed: Claimed, action: str, record: str, delay: int) -> bool:
        keys = [self._queue(p) for p in ("due", "records", "claims", "dead")]
        args: list[str | int] = [
            claimed.delivery.id,
            claimed.token,
            action,
            record,
            delay,
            self._dead_cap,
        ]
        with mapped(f"webhook_{action}"):
            return bool(await self._finish_script(keys=keys, args=args))

    def _queue(self, part: str) -> str:
        return self._webhook_keys.webhooks(part)


def _ms(seconds: float) -> int:
    return max(0, math.ceil(seconds * 1000))
