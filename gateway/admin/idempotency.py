"""``Idempotency-Key`` on the admin API: a retried call gets the first call's reply.

That reply holds a new key's secret, so it is kept sealed (AES-GCM, its key derived from the
server secret with HKDF, the call's scope as associated data) and only for a day.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.errors import BadRequest
from gateway.headers import Headers
from gateway.store import Store

TTL = 24 * 3600.0
_HEADER = re.compile(r"[ -~]{1,255}")


def _cipher(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idempotency v1").derive(
        secret
    )
    return AESGCM(key)


async def remember(
    store: Store, secret: bytes, headers: Headers, scope: str, result: dict[str, Any]
) -> dict[str, Any] | None:
    """None for a first call (its result is now remembered) or a call without the header;
    else the first call's result."""
    header = headers.one("idempotency-key")
    if header is None:
        return None
    if not _HEADER.fullmatch(header):
        raise BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    digest = hashlib.sha256(header.encode()).hexdigest()
    nonce = os.urandom(12)
    sealed = nonce + _cipher(secret).encrypt(nonce, json.dumps(result).encode(), scope.encode())
    existing = await store.remember(
        f"idem:{scope}:{digest}", base64.b64encode(sealed).decode(), TTL
    )
    if existing is None:
        return None
    raw = base64.b64decode(existing)
    first: dict[str, Any] = json.loads(_cipher(secret).decrypt(raw[:12], raw[12:], scope.encode()))
    return first
