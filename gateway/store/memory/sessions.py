"""Console sessions in this process's memory."""

from __future__ import annotations

import time


class MemorySessions:
    """The session part of :class:`~gateway.store.memory.MemoryStore` (a mixin)."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (record, monotonic deadline)

    async def session_put(self, session_id: str, record: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"session_put: ttl must be positive, got {ttl}")
        now = time.monotonic()
        if len(self._sessions) >= 64:  # sessions are few: a sweep on each put is cheap
            for key in [k for k, (_, end) in self._sessions.items() if end <= now]:
                del self._sessions[key]
        self._sessions[session_id] = (record, now + ttl)

    async def session_get(self, session_id: str) -> str | None:
        stored = self._sessions.get(session_id)
        if stored is None or stored[1] <= time.monotonic():
            return None
        return stored[0]

    async def session_delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
