"""The store's webhook records and operations: tenants' sealed webhook secrets, and the
deliveries waiting, being attempted, or dead.

A delivery is scheduled at a due time on the store's clock. :meth:`WebhookStore.webhook_claim`
takes due deliveries for a lease: each is given to one caller at a time, with a claim token,
and becomes due again when the lease runs out (its taker died). Only the holder of the current
token can finish it (delivered, retry later, dead); a stale holder's answer is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from gateway.store.record import Record

DEAD_CAP: Final = 10_000
"""How many dead deliveries a store keeps (the newest)."""


@dataclass(frozen=True, slots=True)
class WebhookSecret(Record):
    """A tenant's webhook signing secret, sealed (never stored in the clear), and the one it
    replaced while that one's grace lasts."""

    tenant: str
    secret_id: str
    sealed: str  # base64 of nonce + AES-GCM ciphertext (gateway.webhooks.keyring)
    created_at: float
    previous_id: str | None = None
    previous_sealed: str | None = None
    previous_until: float | None = None  # unix seconds: the old secret signs until then


@dataclass(frozen=True, slots=True)
class Delivery(Record):
    """One webhook to deliver: the signed body is fixed at creation; ``id`` is its
    ``webhook-id``, the same on every attempt."""

    id: str
    tenant: str
    url: str
    event_type: str
    body: str  # the JSON payload exactly as sent and signed
    created_at: float
    attempts: int = 0
    last_status: int | None = None  # the receiver's last HTTP status, if it answered
    last_error: str | None = None
    dead_at: float | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken by :meth:`WebhookStore.webhook_claim`, with the token to finish it."""

    delivery: Delivery
    token: str


class WebhookStore(Protocol):
    """The webhook part of :class:`~gateway.store.base.Store`."""

    async def put_webhook_secret(self, secret: WebhookSecret) -> None:
        """Create or replace the tenant's secret record."""

    async def get_webhook_secret(self, tenant: str) -> WebhookSecret | None: ...

    async def delete_webhook_secret(self, tenant: str) -> bool:
        """``True`` if there was one."""
        ...

    async def webhook_put(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Store a new delivery, due ``delay`` seconds from now (store clock)."""

    async def webhook_claim(self, lease: float, limit: int) -> list[Claimed]:
        """Take up to ``limit`` due deliveries for ``lease`` seconds (oldest due first)."""
        ...

    async def webhook_next(self) -> float | None:
        """Seconds until the earliest queued delivery is due (a taken one: when its lease
        ends), 0 when one is due now; ``None`` when none is queued. An idle deliverer sleeps
        that long instead of looking every second."""
        ...

    async def webhook_delivered(self, claimed: Claimed) -> bool:
        """Forget a delivered delivery; ``False`` (and nothing done) if the claim is stale."""
        ...

    async def webhook_retry(self, claimed: Claimed, delivery: Delivery, delay: float) -> bool:
        """Store ``delivery`` (its attempts and last error updated) and make it due again in
        ``delay`` seconds; ``False`` (and nothing done) if the claim is stale."""
        ...

    async def webhook_bury(self, claimed: Claimed, delivery: Delivery) -> bool:
        """Move ``delivery`` to the dead letters (kept: the newest :data:`DEAD_CAP`);
        ``False`` (and nothing done) if the claim is stale."""
        ...

    async def webhook_dead(self, limit: int) -> list[Delivery]:
        """The newest ``limit`` dead deliveries, newest first."""
        ...

    async def webhook_revive(self, delivery_id: str) -> Delivery | None:
        """Move a dead delivery back to the queue, due now, its attempts reset; ``None`` if no
        dead delivery has that id."""
        ...

    async def webhook_get(self, delivery_id: str) -> Delivery | None:
        """A delivery still queued or dead (a delivered one is forgotten)."""
        ...
