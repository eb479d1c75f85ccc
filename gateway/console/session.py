"""Console sessions: who signed in to the console, kept in the store for a time to live.

A sign-in makes a random secret, sent to the browser once as the session cookie (``HttpOnly``,
``SameSite=Strict``, ``Path=/``; ``Secure`` and the ``__Host-`` name over TLS). The store keeps
a record under an HMAC of that secret (keyed with ``GATEWAY_SECRET``), so every replica
accepts the session, a sign-out ends it everywhere at once, and the store never holds a cookie
that would work. The CSRF token of a session is another HMAC of its secret: bound to the
session, never stored, the same on every replica.

A session made with the admin token remembers a fingerprint of that token: when the token
changes (``GATEWAY_ADMIN_TOKEN`` rotated), the sessions it opened stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Final

from gateway.headers import Headers
from gateway.store import Store

COOKIE: Final = "gateway_console"
SECURE_COOKIE: Final = "__Host-gateway_console"  # over TLS: Secure, Path=/, no Domain
_MAX_COOKIE: Final = 128


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in operator: ``actor`` names them in the audit log (``admin-token``,
    ``oidc:<subject>``)."""

    actor: str
    created_at: float
    expires_at: float
    csrf_token: str


class Sessions:
    """Sign-in, look-up and sign-out of console sessions over the shared store."""

    def __init__(
        self, store: Store, secret: bytes, ttl: float, admin_token: str | None = None
    ) -> None:
        self.store = store
        self.secret = secret
        self.ttl = ttl
        self._token_print = self._fingerprint(admin_token) if admin_token else ""

    async def open(self, actor: str, *, with_admin_token: bool) -> tuple[str, ConsoleSession]:
        """A new session for ``actor``: (the cookie's value, the session)."""
        value = secrets.token_urlsafe(32)
        now = time.time()
        record = {
            "actor": actor,
            "created_at": now,
            "expires_at": now + self.ttl,
            "token": self._token_print if with_admin_token else "",
        }
        await self.store.session_put(self._id(value), json.dumps(record), self.ttl)
        return value, ConsoleSession(actor, now, now + self.ttl, self._csrf(value))

    async def find(self, value: str | None) -> ConsoleSession | None:
        """The live session of a cookie value, or None (none, expired, signed out, or made
        with an admin token that has changed since)."""
        if not value or len(value) > _MAX_COOKIE:
            return None
        text = await self.store.session_get(self._id(value))
        if text is None:
            return None
        record = json.loads(text)
        made_with = record.get("token", "")
        if made_with and not hmac.compare_digest(made_with, self._token_print):
            return None
        if float(record["expires_at"]) <= time.time():
            return None
        return ConsoleSession(
            str(record["actor"]),
            float(record["created_at"]),
            float(record["expires_at"]),
            self._csrf(value),
        )

    async def close(self, value: str | None) -> None:
        """Sign out: the session stops working on every replica."""
        if value and len(value) <= _MAX_COOKIE:
            await self.store.session_delete(self._id(value))

    def _id(self, value: str) -> str:
        return hmac.new(self.secret, b"console-session:" + value.encode(), "sha256").hexdigest()

    def _csrf(self, value: str) -> str:
        mac = hmac.new(self.secret, b"console-csrf:" + value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _fingerprint(self, token: str) -> str:
        return hmac.new(self.secret, b"console-admin-token:" + token.encode(), "sha256").hexdigest()


def cookie_value(headers: Headers) -> str | None:
    """The console's session cookie in a request's ``Cookie`` headers (either name)."""
    for line in headers.getall("cookie"):
        for part in line.split(";"):
            name, _, value = part.strip().partition("=")
            if name in (COOKIE, SECURE_COOKIE) and value:
                return value
    return None


def set_cookie(value: str, ttl: float, *, tls: bool) -> str:
    """The ``Set-Cookie`` header value of a new session."""
    name = SECURE_COOKIE if tls else COOKIE
    secure = "; Secure" if tls else ""
    return f"{name}={value}; Max-Age={int(ttl)}; Path=/; HttpOnly; SameSite=Strict{secure}"


def clear_cookie(*, tls: bool) -> str:
    """The ``Set-Cookie`` header value that removes the session cookie."""
    name = SECURE_COOKIE if tls else COOKIE
    secure = "; Secure" if tls else ""
    return f"{name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{secure}"
