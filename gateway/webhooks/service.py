"""Webhooks as the rest of the gateway sees them: check a callback at submit time, queue a
signed delivery, and the admin side (secrets, dead letters)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from gateway.errors import CallbackNotAllowed
from gateway.store import Delivery, Store
from gateway.webhooks import signing
from gateway.webhooks.callbacks import CallbackGuard, Resolver, system_resolver
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.delivery import Deliverer
from gateway.webhooks.keyring import Keyring
from gateway.webhooks.metrics import WebhookMetrics


class Webhooks:
    """Signed callbacks (Standard Webhooks) to tenants' allow-listed hosts, delivered in the
    background with retries and a dead-letter list; durable in the store.

    The jobs side calls :meth:`check_callback` when a job is submitted with a ``Callback-URL``
    and :meth:`enqueue` when it ends. Built and started by the composition root.
    """

    def __init__(
        self,
        store: Store,
        server_secret: bytes,
        config: WebhookConfig,
        registry: CollectorRegistry,
        *,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.config = config
        self.store = store
        self.keyring = Keyring(store, server_secret)
        self.guard = CallbackGuard(
            config.allow_networks, allow_http=config.allow_http, resolver=resolver
        )
        self.metrics = WebhookMetrics(registry)
        self._deliverer = Deliverer(store, self.keyring, self.guard, config, self.metrics)

    def start(self) -> None:
        self._deliverer.start()

    async def close(self) -> None:
        await self._deliverer.close()

    async def check_callback(self, tenant: str | None, url: str) -> str:
        """The normalized URL if ``tenant`` may be called back there: 400 ``invalid_callback``
        for a malformed URL, 403 ``callback_not_allowed`` for an anonymous caller, a tenant
        without a webhook secret, a host not on its ``callback_hosts`` or one that resolves to
        an address the operator does not allow."""
        if tenant is None:
            raise CallbackNotAllowed("Callback-URL needs a tenant's credentials")
        record = await self.store.get_tenant(tenant)
        if record is None or record.disabled:
            raise CallbackNotAllowed(f"tenant {tenant!r} cannot receive callbacks")
        callback = self.guard.check_url(record, url)
        if await self.store.get_webhook_secret(tenant) is None:
            raise CallbackNotAllowed(
                f"tenant {tenant!r} has no webhook secret to sign callbacks with "
                "(POST /admin/tenants/{name}/webhook-secret)"
            )
        await self.guard.addresses(callback)
        return callback.url

    async def enqueue(
        self, tenant: str, url: str, event_type: str, data: Mapping[str, object]
    ) -> str:
        """Store a delivery of ``{"type": event_type, "timestamp", "data"}`` to ``url`` (as
        :meth:`check_callback` returned it) and return its ``webhook-id``; it is attempted in
        the background, on whichever replica takes it first."""
        now = time.time()
        delivery = Delivery(
            id=signing.new_message_id(),
            tenant=tenant,
            url=url,
            event_type=event_type,
            body=signing.payload(event_type, data, now),
            created_at=now,
        )
        await self.store.webhook_put(delivery)
        self._deliverer.wake()
        return delivery.id

    async def dead(self, limit: int = 100) -> list[Delivery]:
        """The newest dead deliveries, newest first."""
        return await self.store.webhook_dead(limit)

    async def redeliver(self, delivery_id: str) -> Delivery | None:
        """Queue a dead delivery again (same id, same body, attempts from zero)."""
        revived = await self.store.webhook_revive(delivery_id)
        if revived is not None:
            self._deliverer.wake()
        return revived
