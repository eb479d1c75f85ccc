"""The embedded store: one process, no Redis. State lives in this object and dies with it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from gateway.store.base import AUDIT_CAP, RESYNC, APIKey, AuditEntry, DelegatedLimits, Tenant
from gateway.store.memory.batches import MemoryBatches
from gateway.store.memory.jobs import MemoryJobs
from gateway.store.memory.limits import MemoryLimits
from gateway.store.memory.rollout import MemoryRollouts
from gateway.store.memory.series import MemorySeries
from gateway.store.memory.sessions import MemorySessions
from gateway.store.memory.usage import MemoryUsage
from gateway.store.memory.webhooks import MemoryWebhooks

SUBSCRIBER_BACKLOG = 1024
"""Messages a slow subscriber may fall behind before it is told to resync instead."""


class MemoryStore(
    DelegatedLimits,
    MemoryRollouts,
    MemoryJobs,
    MemoryBatches,
    MemoryWebhooks,
    MemoryUsage,
    MemorySeries,
    MemorySessions,
):
    """:class:`~gateway.store.base.Store` in this process's memory.

    Publish/subscribe fans out to in-process asyncio queues. A subscriber that falls
    :data:`SUBSCRIBER_BACKLOG` messages behind loses them and receives :data:`RESYNC`, just as a
    Redis subscriber does after a lost connection.
    """

    def __init__(self, *, audit_cap: int = AUDIT_CAP) -> None:
        self._tenants: dict[str, Tenant] = {}
        self._keys: dict[str, APIKey] = {}
        self._remembered: dict[str, tuple[str, float]] = {}  # key -> (value, monotonic deadline)
        self._sweep_at = 64  # sweep expired idempotency records when the table reaches this size
        self._audit: deque[AuditEntry] = deque(maxlen=audit_cap)
        self._subscribers: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._limits = MemoryLimits()
        MemoryRollouts.__init__(self)
        MemoryJobs.__init__(self)
        MemoryWebhooks.__init__(self)
        MemoryBatches.__init__(self)
        MemorySeries.__init__(self)
        MemoryUsage.__init__(self)
        MemorySessions.__init__(self)

    async def put_tenant(self, tenant: Tenant) -> None:
        self._tenants[tenant.name] = tenant

    async def get_tenant(self, name: str) -> Tenant | None:
        return self._tenants.get(name)

    async def list_tenants(self) -> list[Tenant]:
        return sorted(self._tenants.values(), key=lambda t: t.name)

    async def delete_tenant(self, name: str) -> bool:
        for key_id in [k.key_id for k in self._keys.values() if k.tenant == name]:
            del self._keys[key_id]
        await self.delete_webhook_secret(name)
        return self._tenants.pop(name, None) is not None

    async def put_key(self, key: APIKey) -> None:
        stored = self._keys.get(key.key_id)
        self._keys[key.key_id] = _later_use(key, stored.last_used_at if stored else None)

    async def get_key(self, key_id: str) -> APIKey | None:
        return self._keys.get(key_id)

    async def list_keys(self, tenant: str) -> list[APIKey]:
        keys = [k for k in self._keys.values() if k.tenant == tenant]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    async def touch_keys(self, used: Mapping[str, float]) -> None:
        for key_id, at in used.items():
            if (stored := self._keys.get(key_id)) is not None:
                self._keys[key_id] = _later_use(stored, at)

    async def remember(self, key: str, value: str, ttl: float) -> str | None:
        if ttl <= 0:
            raise ValueError(f"remember: ttl must be positive, got {ttl}")
        now = time.monotonic()
        stored = self._remembered.get(key)
        if stored is not None and stored[1] > now:
            return stored[0]
        self._forget_expired(now)
        self._remembered[key] = (value, now + ttl)
        return None

    async def audit(self, entry: AuditEntry) -> None:
        self._audit.append(entry)

    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        newest = reversed(self._audit)
        return [entry for _, entry in zip(range(max(limit, 0)), newest, strict=False)]

    async def publish(self, channel: str, message: str) -> None:
        for queue in self._subscribers.get(channel, ()):
            if queue.full():  # the subscriber fell behind: it must resync, not read stale news
                _drain(queue)
                queue.put_nowait(RESYNC)
            else:
                queue.put_nowait(message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers[channel].add(queue)
        try:
            yield RESYNC
            while True:
                yield await queue.get()
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release; open subscriptions end when their consumers close them."""

    def _forget_expired(self, now: float) -> None:
        # amortised O(1): sweep only when the table doubled since the last sweep
        if len(self._remembered) >= self._sweep_at:
            for key in [k for k, (_, deadline) in self._remembered.items() if deadline <= now]:
                del self._remembered[key]
            self._sweep_at = max(2 * len(self._remembered), 64)


def _later_use(key: APIKey, at: float | None) -> APIKey:
    if at is None or (key.last_used_at is not None and key.last_used_at >= at):
        return key
    return replace(key, last_used_at=at)


def _drain(queue: asyncio.Queue[str]) -> None:
    while not queue.empty():
        queue.get_nowait()
