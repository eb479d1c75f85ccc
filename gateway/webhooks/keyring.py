"""Each tenant's webhook secret: created or rotated (shown once), described without it, deleted,
and unsealed to sign.

The secret must be readable to sign with, so unlike an API key it cannot be kept as a hash: it
is sealed with AES-GCM under a key derived (HKDF-SHA256) from ``GATEWAY_SECRET``, the tenant's
name as associated data (a record copied to another tenant does not open). A rotation keeps the
previous secret for a grace period, during which deliveries carry both signatures.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import InternalError
from gateway.store import Store, WebhookSecret
from gateway.webhooks.signing import new_secret, secret_key


@dataclass(frozen=True, slots=True)
class Minted:
    """A secret just made, not yet installed: the only time its text exists outside a seal."""

    secret: str  # whsec_...
    secret_id: str
    created_at: float


def mint() -> Minted:
    text, _ = new_secret()
    return Minted(text, "whs_" + secrets.token_hex(8), time.time())


class Keyring:
    """Webhook secrets of every tenant, sealed in the store."""

    def __init__(self, store: Store, server_secret: bytes) -> None:
        self._store = store
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"webhook secrets v1"
        ).derive(server_secret)
        self._cipher = AESGCM(key)

    async def install(self, tenant: str, minted: Minted, grace: float) -> WebhookSecret:
        """Make ``minted`` the tenant's secret; the one it had keeps signing for ``grace``
        seconds (0: replaced at once). Installing the current secret again changes nothing."""
        old = await self._store.get_webhook_secret(tenant)
        if old is not None and old.secret_id == minted.secret_id:
            return old
        keep = old is not None and grace > 0
        record = WebhookSecret(
            tenant=tenant,
            secret_id=minted.secret_id,
            sealed=self._seal(tenant, secret_key(minted.secret)),
            created_at=minted.created_at,
            previous_id=old.secret_id if keep and old else None,
            previous_sealed=old.sealed if keep and old else None,
            previous_until=time.time() + grace if keep else None,
        )
        await self._store.put_webhook_secret(record)
        return record

    async def describe(self, tenant: str) -> WebhookSecret | None:
        return await self._store.get_webhook_secret(tenant)

    async def delete(self, tenant: str) -> bool:
        return await self._store.delete_webhook_secret(tenant)

    async def signing_keys(self, tenant: str) -> list[bytes]:
        """The keys to sign a delivery with now, newest first (none: no secret)."""
        record = await self._store.get_webhook_secret(tenant)
        if record is None:
            return []
        keys = [self._open(tenant, record.sealed)]
        if (
            record.previous_sealed is not None
            and record.previous_until is not None
            and record.previous_until > time.time()
        ):
            keys.append(self._open(tenant, record.previous_sealed))
        return keys

    def _seal(self, tenant: str, key: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._cipher.encrypt(nonce, key, tenant.encode())).decode()

    def _open(self, tenant: str, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        try:
            return self._cipher.decrypt(raw[:12], raw[12:], tenant.encode())
        except InvalidTag as exc:  # GATEWAY_SECRET changed, or the record was tampered with
            raise InternalError(f"tenant {tenant!r}: its webhook secret does not open") from exc


def secret_view(record: WebhookSecret | None) -> dict[str, object]:
    """What the admin API shows of a secret: never the secret."""
    if record is None:
        return {"exists": False}
    rotating = record.previous_until is not None and record.previous_until > time.time()
    return {
        "exists": True,
        "tenant": record.tenant,
        "secret_id": record.secret_id,
        "created_at": record.created_at,
        "previous_id": record.previous_id if rotating else None,
        "previous_expires_at": record.previous_until if rotating else None,
    }
