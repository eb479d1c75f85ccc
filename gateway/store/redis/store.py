"""The shared store on Redis, standalone or Cluster (``redis.asyncio`` with hiredis).

Key layout, every key under the prefix ``P`` (``gw:`` by default)::

    P tenants              set     every tenant name (the index behind list_tenants)
    P{t:<name>}:tenant     string  Tenant JSON
    P{t:<name>}:keys       set     the tenant's key ids; same slot as its record ({t:<name>})
    P key:<key_id>         hash    record = APIKey JSON, used = last_used_at (only ever grows)
    P idem:<key>           string  a remember() value, expiring (PX)
    P session:<id>         string  a console session, expiring (PX)
    P audit                list    AuditEntry JSON, newest first, trimmed to the cap
    P<channel>             pub/sub channel
    P{<group>}:l:… / :c:…  limits and cache entries: see :mod:`gateway.store.redis.limits`
    P lease:… P rollouts P{rollout:<model>}:…  rollouts: see :mod:`gateway.store.redis.rollout`
    P{jobs}:…              the job queue: see :mod:`gateway.store.redis.jobs`
    P{t:<name>}:webhook_secret P{webhooks}:…   webhooks: see :mod:`gateway.store.redis.webhooks`
    P{b:<id>}:… P{batches}:…  batch files: see :mod:`gateway.store.redis.batches`
    P{series}:…            the replicas' live series: see :mod:`gateway.store.redis.series`
    P usage:…              usage counters: see :mod:`gateway.store.redis.usage`

Every Lua call touches one key, or two keys of one hash slot (``{t:<name>}``); every other
multi-key operation is a pipeline of single-key commands. So the store runs unchanged on a
:class:`~redis.asyncio.RedisCluster` client.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, cast

import hiredis
from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, Connection, Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

from gateway.store.base import AUDIT_CAP, RESYNC, APIKey, AuditEntry, DelegatedLimits, Tenant
from gateway.store.redis.batches import RedisBatches
from gateway.store.redis.cluster_url import url_scheme
from gateway.store.redis.jobs import RedisJobs
from gateway.store.redis.keys import UNAVAILABLE, KeyLayout, mapped
from gateway.store.redis.limits import RedisLimits
from gateway.store.redis.rollout import RedisRollouts
from gateway.store.redis.series import RedisSeries
from gateway.store.redis.sessions import RedisSessions
from gateway.store.redis.usage import RedisUsage
from gateway.store.redis.webhooks import RedisWebhooks

logger = logging.getLogger(__name__)

PUT_KEY: Final = """
-- KEYS[1]  the key's hash (P key:<key_id>)
-- ARGV[1]  APIKey JSON
-- ARGV[2]  its last_used_at, or '' for none
-- Replaces the record; 'used' only moves forward, so a concurrent touch is not lost.
redis.call('HSET', KEYS[1], 'record', ARGV[1])
if ARGV[2] ~= '' then
  local used = redis.call('HGET', KEYS[1], 'used')
  if not used or tonumber(used) < tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'used', ARGV[2])
  end
end
return 1
"""

TOUCH_KEY: Final = """
-- KEYS[1]  the key's hash (P key:<key_id>)
-- ARGV[1]  when it was used (unix seconds)
-- Raises 'used' to ARGV[1]; never lowers it, never creates a key that does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local used = redis.call('HGET', KEYS[1], 'used')
if used and tonumber(used) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
return 1
"""

DELETE_TENANT: Final = """
-- KEYS[1]  the tenant's record (P{t:<name>}:tenant)
-- KEYS[2]  its set of key ids (P{t:<name>}:keys), same hash slot
-- Returns {1 if the record existed else 0, key_id...}; the caller deletes those keys.
local existed = redis.call('DEL', KEYS[1])
local ids = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
table.insert(ids, 1, existed)
return ids
"""

REMEMBER: Final = """
-- KEYS[1]  the idempotency record (P idem:<key>)
-- ARGV[1]  value to store if absent
-- ARGV[2]  time to live, milliseconds
-- Returns nil when ARGV[1] was stored, else the value already there.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""

AUDIT: Final = """
-- KEYS[1]  the audit list (P audit), newest first
-- ARGV[1]  AuditEntry JSON
-- ARGV[2]  how many entries to keep
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
"""

_BACKOFF_FIRST: Final = 0.05
_BACKOFF_MAX: Final = 1.0

_Pipe = Pipeline | ClusterPipeline


class PackedConnection(Connection):
    """redis-py's asyncio connection, packing commands with hiredis's C packer (as redis-py's
    synchronous client already does) instead of its pure-Python one, which cost more CPU per
    rate-limit call than the rest of the call. Arguments hiredis would encode differently
    from redis-py's encoder (numbers, booleans, memoryviews) keep the Python packer."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if all(type(arg) is str or type(arg) is bytes for arg in args):
            head = args[0]
            if " " in head if type(head) is str else b" " in head:
                return super().pack_command(*args)  # 'CONFIG GET' style: split by redis-py
            try:
                return [hiredis.pack_command(args)]
            except (TypeError, UnicodeEncodeError):
                pass
        return super().pack_command(*args)


class RedisStore(
    DelegatedLimits,
    RedisRollouts,
    RedisJobs,
    RedisBatches,
    RedisWebhooks,
    RedisUsage,
    RedisSeries,
    RedisSessions,
):
    """:class:`~gateway.store.base.Store` on Redis, shared by every gateway process.

    Build it with :meth:`from_url`, or hand it a ``Redis`` / ``RedisCluster`` client made with
    ``decode_responses=True``; :meth:`close` closes that client. Initialise a ``RedisCluster``
    first (``await client.initialize()``): redis-py 8.1 corrupts connections when many first
    calls race to initialise it. Its per-node pools also fail at ``max_connections`` (100)
    rather than wait, which surfaces here as :class:`StoreUnavailable`.
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "gw:",
        audit_cap: int = AUDIT_CAP,
        keepalive: float = 15.0,
    ) -> None:
        if not client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs a client made with decode_responses=True")
        self._client = client
        self._keys = KeyLayout(prefix)
        self._audit_cap = audit_cap
        self._keepalive = keepalive
        self._put_key = client.register_script(PUT_KEY)
        self._touch_key = client.register_script(TOUCH_KEY)
        self._delete_tenant = client.register_script(DELETE_TENANT)
        self._remember = client.register_script(REMEMBER)
        self._audit = client.register_script(AUDIT)
        self._limits = self._lua = RedisLimits(client, self._keys)
        RedisRollouts.__init__(self, client, self._keys)
        RedisJobs.__init__(self, client, self._keys)
        RedisWebhooks.__init__(self, client, self._keys)
        RedisBatches.__init__(self, client, self._keys)
        RedisSeries.__init__(self, client, self._keys)
        RedisUsage.__init__(self, client, self._keys)
        RedisSessions.__init__(self, client, self._keys)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "gw:",
        max_connections: int = 64,
        timeout: float = 5.0,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        retries: int = 2,
        audit_cap: int = AUDIT_CAP,
        keepalive: float = 15.0,
    ) -> RedisStore:
        """A store on a ``BlockingConnectionPool``: past ``max_connections`` a call waits up to
        ``timeout`` seconds for a connection instead of failing (redis-py's default pool fails
        at once). Query-string options in ``url`` (``?max_connections=128``) win."""
        client = standalone_client(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retries=retries,
        )
        return cls(client, prefix=prefix, audit_cap=audit_cap, keepalive=keepalive)

    async def put_tenant(self, tenant: Tenant) -> None:
        # record first, index second: a racing delete can only leave a dangling index entry,
        # which list_tenants skips
        with mapped("put_tenant"):
            await self._client.set(self._keys.tenant(tenant.name), tenant.to_json())
            await self._client.sadd(self._keys.tenants(), tenant.name)

    async def get_tenant(self, name: str) -> Tenant | None:
        with mapped("get_tenant"):
            text = await self._client.get(self._keys.tenant(name))
        return None if text is None else Tenant.from_json(text)

    async def list_tenants(self) -> list[Tenant]:
        with mapped("list_tenants"):
            names = [str(n) for n in await self._client.smembers(self._keys.tenants())]
            texts = await self._run(lambda pipe: [pipe.get(self._keys.tenant(n)) for n in names])
        tenants = [Tenant.from_json(text) for text in texts if text is not None]
        return sorted(tenants, key=lambda t: t.name)

    async def delete_tenant(self, name: str) -> bool:
        with mapped("delete_tenant"):
            await self._client.srem(self._keys.tenants(), name)
            keys = [self._keys.tenant(name), self._keys.tenant_keys(name)]
            existed, *key_ids = await self._delete_tenant(keys=keys)
            await self._client.delete(self._keys.webhook_secret(name))
            if key_ids:
                await self._run(lambda pipe: [pipe.delete(self._keys.key(k)) for k in key_ids])
        return bool(existed)

    async def put_key(self, key: APIKey) -> None:
        used = "" if key.last_used_at is None else repr(float(key.last_used_at))

        def queue(pipe: _Pipe) -> None:
            _queue_script(pipe, self._put_key, self._keys.key(key.key_id), key.to_json(), used)
            pipe.sadd(self._keys.tenant_keys(key.tenant), key.key_id)

        with mapped("put_key"):
            await self._run(queue, self._put_key)

    async def get_key(self, key_id: str) -> APIKey | None:
        with mapped("get_key"):
            row = await self._client.hmget(self._keys.key(key_id), ["record", "used"])
        return _api_key(row)

    async def list_keys(self, tenant: str) -> list[APIKey]:
        with mapped("list_keys"):
            ids = [str(i) for i in await self._client.smembers(self._keys.tenant_keys(tenant))]
            rows = await self._run(
                lambda pipe: [pipe.hmget(self._keys.key(i), ["record", "used"]) for i in ids]
            )
        keys = [k for k in map(_api_key, rows) if k is not None and k.tenant == tenant]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    async def touch_keys(self, used: Mapping[str, float]) -> None:
        if not used:
            return

        def queue(pipe: _Pipe) -> None:
            for key_id, at in used.items():
                _queue_script(pipe, self._touch_key, self._keys.key(key_id), repr(float(at)))

        with mapped("touch_keys"):
            await self._run(queue, self._touch_key)

    async def remember(self, key: str, value: str, ttl: float) -> str | None:
        if ttl <= 0:
            raise ValueError(f"remember: ttl must be positive, got {ttl}")
        milliseconds = max(1, math.ceil(ttl * 1000))
        with mapped("remember"):
            stored = await self._remember(
                keys=[self._keys.idempotency(key)], args=[value, milliseconds]
            )
        return None if stored is None else str(stored)

    async def audit(self, entry: AuditEntry) -> None:
        with mapped("audit"):
            await self._audit(keys=[self._keys.audit()], args=[entry.to_json(), self._audit_cap])

    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        if limit <= 0:
            return []
        with mapped("audit_log"):
            texts = await self._client.lrange(self._keys.audit(), 0, limit - 1)
        return [AuditEntry.from_json(text) for text in texts]

    async def publish(self, channel: str, message: str) -> None:
        with mapped("publish"):
            await self._client.publish(self._keys.channel(channel), message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        name = self._keys.channel(channel)
        delay = _BACKOFF_FIRST
        while True:
            # its own connection, held while subscribed; redis-py resubscribes it after a
            # reconnect and the server confirms with a 'subscribe' message: RESYNC
            pubsub = self._client.pubsub()
            try:
                if isinstance(self._client, RedisCluster):
                    await self._client.initialize()  # its pubsub needs the slot map; no-op after
                await pubsub.subscribe(name)
                pinged = False
                while True:
                    message = await pubsub.get_message(timeout=self._keepalive)
                    if message is None:
                        if pinged:  # a PING went unanswered for a whole period: half-open
                            logger.warning("store: no answer on the %r subscription", channel)
                            break
                        await pubsub.ping()
                        pinged = True
                        continue
                    pinged = False
                    if message["type"] == "subscribe":
                        delay = _BACKOFF_FIRST
                        yield RESYNC
                    elif message["type"] == "message":
                        yield str(message["data"])
            except UNAVAILABLE as exc:
                logger.warning("store: the %r subscription lost Redis: %s", channel, exc)
            finally:
                await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(2 * delay, _BACKOFF_MAX)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except UNAVAILABLE:
            return False

    async def close(self) -> None:
        await self._lua.close()
        await self._close_jobs()
        await self._client.aclose()

    async def _run(self, queue: Callable[[_Pipe], object], *scripts: AsyncScript) -> list[Any]:
        """Run a non-transactional pipeline of single-key commands (so on Cluster too). If the
        server lost a script (restart, failover, SCRIPT FLUSH), load it and run once more: the
        pipelined writes are idempotent."""
        try:
            return await self._pipeline(queue)
        except rx.NoScriptError:
            if not scripts:
                raise
        for script in scripts:
            await self._client.script_load(script.script)
        return await self._pipeline(queue)

    async def _pipeline(self, queue: Callable[[_Pipe], object]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            queue(pipe)
            return list(await pipe.execute())


def standalone_client(
    url: str,
    *,
    max_connections: int = 64,
    timeout: float = 5.0,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    retries: int = 2,
) -> Redis:
    """The client :meth:`RedisStore.from_url` builds for one server (see there)."""
    # hiredis packing on plain TCP only: a connection_class given to from_url replaces the TLS
    # and unix socket classes that rediss:// and unix:// URLs choose (rediss:// went out in
    # plain text)
    packed = {"connection_class": PackedConnection} if url_scheme(url) == "redis" else {}
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries),
        decode_responses=True,
        **packed,
    )
    return Redis.from_pool(pool)


def _queue_script(pipe: _Pipe, script: AsyncScript, key: str, *args: str) -> None:
    if isinstance(pipe, ClusterPipeline):
        # redis-py refuses EVALSHA in a cluster pipeline; EVAL carries the (short) script
        pipe.eval(cast(str, script.script), 1, key, *args)  # registered from a str constant
    else:
        pipe.evalsha(script.sha, 1, key, *args)


def _api_key(row: Sequence[str | bytes | None]) -> APIKey | None:
    record, used = row
    if record is None:
        return None
    return replace(APIKey.from_json(record), last_used_at=None if used is None else float(used))
