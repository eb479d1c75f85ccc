"""A response's head and body in one write: the transport as uvicorn's response cycle sees it.

uvicorn writes a response's status line and headers (``http.response.start``) and then its
body, each with a ``transport.write``: two ``send`` calls, two TCP segments and, on loopback,
two wake-ups of the client for one small answer. :class:`OneWrite` holds a write back until
the next one (the body, which for a whole response follows in the same step of the event
loop) and sends both joined; whatever is held is sent at the latest on the loop's next
iteration, so a streamed response's head, or ``100 Continue``, is never kept waiting.
"""

from __future__ import annotations

import asyncio


class OneWrite:
    """The subset of ``asyncio.Transport`` a uvicorn ``RequestResponseCycle`` uses (``write``,
    ``close``, ``is_closing``), over the connection's transport. Contract: bytes go out in the
    order written, and none is held past the current iteration of the event loop or a
    ``close``."""

    __slots__ = ("_held", "_loop", "_scheduled", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._scheduled = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._flush_soon)
            return
        self._held = None
        self.transport.write(held + data)

    def write_now(self, data: bytes) -> None:
        """``data`` out now, after whatever is held (a whole answer: nothing to wait for)."""
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self.transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held)

    def _flush_soon(self) -> None:
        self._scheduled = False
        if not self.transport.is_closing():
            self.flush()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()
