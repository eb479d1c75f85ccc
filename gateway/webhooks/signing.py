"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec version 1.0.0).

A secret is shown as ``whsec_<base64 of 32 random bytes>``; the HMAC key is the decoded bytes.
Each delivery carries ``webhook-id`` (``msg_...``, the same on every attempt),
``webhook-timestamp`` (unix seconds of the attempt) and ``webhook-signature``: a space-separated
list of ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per secret in use (two
during a rotation's grace), which receivers try in turn.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import orjson

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32  # the spec asks for 24 to 64 random bytes
ID_PREFIX: Final = "msg_"


def new_secret() -> tuple[str, bytes]:
    """A fresh secret: as shown to the tenant (``whsec_...``), and its key bytes."""
    key = secrets.token_bytes(SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(key).decode(), key


def secret_key(text: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    return base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)


def new_message_id() -> str:
    """A ``webhook-id``: ``msg_`` and 26 URL-safe characters (never a '.', which the signed
    content uses as its delimiter)."""
    return ID_PREFIX + secrets.token_urlsafe(20).replace("-", "0").replace("_", "1")[:26]


def payload(event_type: str, data: Mapping[str, object], at: float) -> str:
    """The body: ``{"type", "timestamp" (RFC 3339, UTC), "data"}`` as compact JSON."""
    when = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event_type, "timestamp": when, "data": data}).decode()


def signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """One ``v1,<base64>`` signature of the body with ``key``."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every key given (newest first)."""
    if not keys:
        raise ValueError("no key to sign with")
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, message_id, timestamp, body) for k in keys),
    }
