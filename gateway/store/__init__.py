"""The gateway's shared state behind one interface (``base.Store``): Redis when configured,
else in memory (the embedded default). ``open.open_store`` picks one from a URL, and imports
the Redis store (``gateway.store.redis.store.RedisStore``) only then."""

from gateway.store.base import (
    AUDIT_CAP,
    RESYNC,
    APIKey,
    AuditEntry,
    Limit,
    LimitState,
    Store,
    StoreUnavailable,
    Tenant,
    Verdict,
)
from gateway.store.memory.store import MemoryStore
from gateway.store.open import open_store
from gateway.store.webhooks import Claimed, Delivery, WebhookSecret

__all__ = [
    "AUDIT_CAP",
    "RESYNC",
    "APIKey",
    "AuditEntry",
    "Claimed",
    "Delivery",
    "Limit",
    "LimitState",
    "MemoryStore",
    "Store",
    "StoreUnavailable",
    "Tenant",
    "Verdict",
    "WebhookSecret",
    "open_store",
]
