"""The store's console sessions: an opaque record under an id, kept for a time to live.

The console (``gateway.console``) stores one record per signed-in operator so that every
replica accepts the session and a logout ends it everywhere at once. Ids are digests of the
cookie's secret, never the cookie itself.
"""

from __future__ import annotations

from typing import Protocol


class SessionStore(Protocol):
    async def session_put(self, session_id: str, record: str, ttl: float) -> None:
        """Store ``record`` under ``session_id`` for ``ttl`` seconds (``ttl > 0``), replacing
        any record there."""

    async def session_get(self, session_id: str) -> str | None:
        """The record, or ``None`` when there is none or it expired."""
        ...

    async def session_delete(self, session_id: str) -> None:
        """Forget the session (nothing happens when there is none)."""
