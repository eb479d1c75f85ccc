"""The background deliverer: takes due deliveries from the store, attempts them with bounded
concurrency, and records each outcome (delivered, retry later, dead).

Each attempt checks the callback again (the tenant's allow-list, then the addresses its host
resolves to), connects to the address it just checked (no second lookup for DNS rebinding to
change), sends the Host header and TLS server name of the URL, never follows a redirect, and
reads no more of the answer than its status. A 2xx is delivered; anything else (another status,
a timeout, a refused check) is retried after an exponential backoff with jitter (at least the
receiver's ``Retry-After``), until the attempts run out and the delivery is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from dataclasses import replace

import httpx

from gateway.errors import CallbackNotAllowed, GatewayError, StoreUnavailable
from gateway.store import Claimed, Delivery, Store
from gateway.webhooks import signing
from gateway.webhooks.callbacks import CallbackGuard
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.keyring import Keyring
from gateway.webhooks.metrics import WebhookMetrics

logger = logging.getLogger("gateway.webhooks")
USER_AGENT = "model-gateway-webhooks"


class Deliverer:
    """One per worker process; replicas share the store's queue, each delivery taken by one at
    a time (a lease; a dead replica's deliveries are taken again when it runs out)."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        guard: CallbackGuard,
        config: WebhookConfig,
        metrics: WebhookMetrics,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._guard = guard
        self._config = config
        self._metrics = metrics
        self._client = httpx.AsyncClient(
            timeout=config.timeout,
            follow_redirects=False,
            trust_env=False,  # a proxy would make the address check meaningless
            # a new connection per attempt: a pooled one would be keyed by address, not name
            limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )
        self._wake = asyncio.Event()
        self._attempts: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="webhook deliverer")

    def wake(self) -> None:
        """Look for due deliveries now (a new one was queued)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop taking deliveries and cancel attempts in flight: their leases run out and
        another replica (or this one, restarted) attempts them again."""
        # The loop also ends on this flag: a cancel can be lost where it lands as a timeout
        # fires or inside a store call (redis/redis-py#2028), and close must not hang on it.
        self._stopping = True
        self._wake.set()
        tasks = [t for t in (self._loop, *self._attempts) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        await self._client.aclose()

    async def _run(self) -> None:
        config = self._config
        while not self._stopping:
            self._wake.clear()
            free = config.concurrency - len(self._attempts)
            taken: list[Claimed] = []
            if free > 0:
                # a store outage is logged by the store; try again after the poll interval
                with contextlib.suppress(StoreUnavailable):
                    taken = await self._store.webhook_claim(config.lease, free)
            if self._stopping:
                break  # taken while closing: their leases run out, they are attempted again
            for claimed in taken:
                task = asyncio.create_task(self._attempt(claimed))
                self._attempts.add(task)
                task.add_done_callback(self._finished)
            if taken and len(taken) == free:
                continue  # maybe more are due: take them as attempts finish
            pause = config.poll
            if free > 0:  # idle: until the next one is due, not every poll
                with contextlib.suppress(StoreUnavailable):
                    due = await self._store.webhook_next()
                    pause = config.idle_look if due is None else min(due, config.idle_look)
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._wake.set()

    async def _attempt(self, claimed: Claimed) -> None:
        delivery = claimed.delivery
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            status, retry_after = await self._send(claimed)
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except StoreUnavailable:
            return  # the lease runs out and the delivery is taken again
        except GatewayError as exc:
            error = exc.message
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception:
            logger.exception("webhook %s: attempt failed unexpectedly", delivery.id)
            error = "internal error"
        ok = error is None
        self._metrics.attempt.labels("ok" if ok else "error").observe(time.perf_counter() - started)
        attempts = delivery.attempts + 1
        updated = replace(delivery, attempts=attempts, last_status=status, last_error=error)
        with contextlib.suppress(StoreUnavailable):  # as above: retaken when the lease ends
            await self._record(claimed, updated, ok, retry_after)

    async def _record(
        self, claimed: Claimed, updated: Delivery, ok: bool, retry_after: float | None
    ) -> None:
        store, config = self._store, self._config
        where = {"webhook_id": updated.id, "tenant": updated.tenant}
        if ok:
            if await store.webhook_delivered(claimed):
                self._metrics.outcome("delivered")
        elif updated.attempts >= config.max_attempts:
            dead = replace(updated, dead_at=time.time())
            if await store.webhook_bury(claimed, dead):
                self._metrics.outcome("dead")
                logger.warning(
                    "webhook dead after %d attempts: %s",
                    updated.attempts,
                    updated.last_error,
                    extra=where,
                )
        else:
            delay = backoff(config, updated.attempts, retry_after)
            if await store.webhook_retry(claimed, updated, delay):
                self._metrics.outcome("retried")

    async def _send(self, claimed: Claimed) -> tuple[int, float | None]:
        """Check, sign and send one attempt: the receiver's status and Retry-After."""
        delivery = claimed.delivery
        tenant = await self._store.get_tenant(delivery.tenant)
        if tenant is None or tenant.disabled:
            raise CallbackNotAllowed(f"tenant {delivery.tenant!r} is gone or disabled")
        callback = self._guard.check_url(tenant, delivery.url)
        addresses = await self._guard.addresses(callback)
        keys = await self._keyring.signing_keys(delivery.tenant)
        if not keys:
            raise CallbackNotAllowed(f"tenant {delivery.tenant!r} has no webhook secret")
        headers = signing.headers(keys, delivery.id, int(time.time()), delivery.body)
        headers |= {"content-type": "application/json", "host": callback.host_header}
        extensions = {}
        if callback.scheme == "https" and not _is_address(callback.host):
            extensions["sni_hostname"] = callback.host  # and the name the certificate must hold
        url = callback.with_address(addresses[0])
        request = self._client.build_request(
            "POST", url, content=delivery.body.encode(), headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        await response.aclose()  # the status is all we read
        return response.status_code, _retry_after(response.headers.get("retry-after"))


def backoff(config: WebhookConfig, attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``backoff`` doubled per
    attempt up to ``max_backoff``, half of it jittered, and never before ``Retry-After``."""
    ceiling = min(config.max_backoff, config.backoff * 2 ** (attempts - 1))
    delay: float = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, config.max_backoff))
    return delay


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is rare from webhook receivers; the backoff applies
    return float(value.strip())


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
