"""Webhook secrets and deliveries in this process's memory (gone when it ends)."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from gateway.store.webhooks import DEAD_CAP, Claimed, Delivery, WebhookSecret


class MemoryWebhooks:
    """The webhook part of :class:`~gateway.store.memory.MemoryStore` (a mixin). Time is
    ``time.time()``: the only clock of a single process."""

    def __init__(self, dead_cap: int = DEAD_CAP) -> None:
        self._webhook_secrets: dict[str, WebhookSecret] = {}
        self._deliveries: dict[str, Delivery] = {}  # queued and dead, by id
        self._due: dict[str, float] = {}  # queued id -> due (unix seconds)
        self._claims: dict[str, str] = {}  # id -> the current claim token
        self._dead: dict[str, float] = {}  # dead id -> when it died (insertion order = age)
        self._dead_cap = dead_cap

    async def put_webhook_secret(self, secret: WebhookSecret) -> None:
        self._webhook_secrets[secret.tenant] = secret

    async def get_webhook_secret(self, tenant: str) -> WebhookSecret | None:
        return self._webhook_secrets.get(tenant)

    async def delete_webhook_secret(self, tenant: str) -> bool:
        return self._webhook_secrets.pop(tenant, None) is not None

    async def webhook_put(self, delivery: Delivery, delay: float = 0.0) -> None:
        self._deliveries[delivery.id] = delivery
        self._due[delivery.id] = time.time() + max(delay, 0.0)

    async def webhook_claim(self, lease: float, limit: int) -> list[Claimed]:
        now = time.time()
        due = sorted((at, i) for i, at in self._due.items() if at <= now)[: max(limit, 0)]
        taken = []
        for _, delivery_id in due:
            token = secrets.token_hex(8)
            self._claims[delivery_id] = token
            self._due[delivery_id] = now + lease
            taken.append(Claimed(self._deliveries[delivery_id], token))
        return taken

    async def webhook_next(self) -> float | None:
        due = min(self._due.values(), default=None)
        return None if due is None else max(0.0, due - time.time())

    async def webhook_delivered(self, claimed: Claimed) -> bool:
        delivery_id = claimed.delivery.id
        if not self._holds(claimed):
            return False
        del self._claims[delivery_id], self._due[delivery_id], self._deliveries[delivery_id]
        return True

    async def webhook_retry(self, claimed: Claimed, delivery: Delivery, delay: float) -> bool:
        if not self._holds(claimed):
            return False
        del self._claims[delivery.id]
        self._deliveries[delivery.id] = delivery
        self._due[delivery.id] = time.time() + max(delay, 0.0)
        return True

    async def webhook_bury(self, claimed: Claimed, delivery: Delivery) -> bool:
        if not self._holds(claimed):
            return False
        del self._claims[delivery.id], self._due[delivery.id]
        self._deliveries[delivery.id] = delivery
        self._dead.pop(delivery.id, None)
        self._dead[delivery.id] = time.time()
        while len(self._dead) > self._dead_cap:
            oldest = next(iter(self._dead))
            del self._dead[oldest], self._deliveries[oldest]
        return True

    async def webhook_dead(self, limit: int) -> list[Delivery]:
        newest = list(reversed(self._dead))[: max(limit, 0)]
        return [self._deliveries[i] for i in newest]

    async def webhook_revive(self, delivery_id: str) -> Delivery | None:
        if self._dead.pop(delivery_id, None) is None:
            return None
        revived = replace(self._deliveries[delivery_id], attempts=0, dead_at=None)
        await self.webhook_put(revived)
        return revived

    async def webhook_get(self, delivery_id: str) -> Delivery | None:
        return self._deliveries.get(delivery_id)

    def _holds(self, claimed: Claimed) -> bool:
        return self._claims.get(claimed.delivery.id) == claimed.token
