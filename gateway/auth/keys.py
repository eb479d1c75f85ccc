"""Tenant API keys: ``gk_<key id>_<secret>``, stored only as an HMAC of the secret.

Verification needs no store round trip once a key is cached: the record (never the secret) is
kept in process, and every replica drops it the moment it is revoked, rotated or its tenant
changes, through the store's pub/sub channel. Last-used times are written behind, in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.errors import GatewayError, Unauthorized
from gateway.store import RESYNC, APIKey, Store, Tenant

logger = logging.getLogger("gateway.auth")
PREFIX = "gk_"
CHANNEL = "auth"
_KEY = re.compile(r"^gk_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="model-gateway", error="invalid_token"'}


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as shown once, at creation: the full text and its stored record."""

    key: str
    record: APIKey


def hash_secret(server_secret: bytes, secret: str) -> str:
    return SecretHasher(server_secret)(secret)


class SecretHasher:
    """:func:`hash_secret` under one server secret, for a verifier that hashes on every
    request: the HMAC keyed once, then copied per secret (half the cost of keying it again)."""

    __slots__ = ("_keyed",)

    def __init__(self, server_secret: bytes) -> None:
        self._keyed = hmac.new(server_secret, digestmod="sha256")

    def __call__(self, secret: str) -> str:
        mac = self._keyed.copy()
        mac.update(secret.encode())
        return mac.hexdigest()


def make_key(server_secret: bytes, **record: object) -> NewKey:
    """A fresh key: 64 bits of public id, 256 bits of secret."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    stored = APIKey(key_id=key_id, secret_hash=hash_secret(server_secret, secret), **record)  # type: ignore[arg-type]
    return NewKey(key=f"{PREFIX}{key_id}_{secret}", record=stored)


def split_key(text: str) -> tuple[str, str] | None:
    match = _KEY.match(text)
    return (match.group(1), match.group(2)) if match else None


def looks_like_key(text: str) -> bool:
    return text.startswith(PREFIX)


def rejected(reason: str) -> Unauthorized:
    headers = {
        "WWW-Authenticate": f'{_CHALLENGE["WWW-Authenticate"]}, error_description="{reason}"'
    }
    return Unauthorized(f"invalid API key: {reason}", headers=headers)


class KeyVerifier:
    """Checks API keys against the store, caching records and following invalidations."""

    def __init__(
        self,
        store: Store,
        server_secret: bytes,
        *,
        cache_size: int = 100_000,
        ttl: float = 300.0,
        flush_every: float = 5.0,
    ) -> None:
        self.store = store
        self._hash = SecretHasher(server_secret)
        self._cache: OrderedDict[str, tuple[float, APIKey, Tenant | None]] = OrderedDict()
        self._tenants: dict[str, tuple[float, Tenant | None]] = {}
        self._size = cache_size
        self._ttl = ttl
        self._flush_every = flush_every
        self._used: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    @property
    def cache_size(self) -> int:
        """How many key records the LRU keeps (``GATEWAY_KEY_CACHE_SIZE``)."""
        return self._size

    @property
    def cached(self) -> int:
        """How many key records it keeps now."""
        return len(self._cache)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow_invalidations(), name="keys:invalidations"),
            asyncio.create_task(self._flush_loop(), name="keys:last-used"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def verify(self, text: str) -> tuple[APIKey, Tenant | None]:
        parts = split_key(text)
        if parts is None:
            raise rejected("malformed key")
        key_id, secret = parts
        cached = self._cached(key_id)  # no coroutine to run for a key kept in process
        record, tenant = cached if cached is not None else await self._lookup(key_id)
        if record is None:
            raise rejected("unknown key")
        expected = self._hash(secret)
        if not hmac.compare_digest(expected, record.secret_hash):
            raise rejected("unknown key")
        now = time.time()
        if record.revoked_at is not None and record.revoked_at <= now:
            raise rejected("key revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise rejected("key expired")
        if tenant is None or tenant.disabled:
            raise rejected("tenant disabled or gone")
        self._used[key_id] = now
        return record, tenant

    def _cached(self, key_id: str) -> tuple[APIKey, Tenant | None] | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            self._cache.move_to_end(key_id)
            return cached[1], cached[2]
        return None

    async def _lookup(self, key_id: str) -> tuple[APIKey | None, Tenant | None]:
        """A key not cached (or expired there): from the store, then cached."""
        now = time.monotonic()
        record = await self.store.get_key(key_id)
        if record is None:
            return None, None
        tenant = await self.store.get_tenant(record.tenant)
        self._cache[key_id] = (now + self._ttl, record, tenant)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return record, tenant

    async def tenant(self, name: str) -> Tenant | None:
        """A tenant record, cached like keys (JWT callers name their tenant in a claim)."""
        cached = self._tenants.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = await self.store.get_tenant(name)
        if len(self._tenants) >= self._size:
            self._tenants.clear()
        self._tenants[name] = (now + self._ttl, tenant)
        return tenant

    def invalidate(self, message: str) -> None:
        """``key:<id>`` drops one key, ``tenant:<name>`` a tenant's keys, RESYNC everything."""
        if message == RESYNC:
            self._cache.clear()
            self._tenants.clear()
        elif message.startswith("key:"):
            self._cache.pop(message[4:], None)
        elif message.startswith("tenant:"):
            name = message[7:]
            self._tenants.pop(name, None)
            for key_id in [k for k, v in self._cache.items() if v[1].tenant == name]:
                del self._cache[key_id]

    async def _follow_invalidations(self) -> None:
        while True:
            try:
                async for message in self.store.subscribe(CHANNEL):
                    self.invalidate(message)
                    self.subscribed.set()
            except GatewayError:  # a broken channel must not end revocation: drop all, resubscribe
                logger.exception("invalidation channel failed; resubscribing")
                self.invalidate(RESYNC)
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        used, self._used = self._used, {}
        if used:
            try:
                await self.store.touch_keys(used)
            except GatewayError:  # last-used times are best effort; keep serving
                logger.warning("could not record key use", exc_info=True)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            await self.flush()
