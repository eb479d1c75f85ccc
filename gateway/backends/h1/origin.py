"""The connections to one origin (scheme, host, port and TLS settings): idle keep-alive
connections reused last-in first-out, new ones made as needed, each request in a slot of the
client's shared limit.

An idle connection is dropped as soon as the server closes it (``connection_lost``), when it
is found closing at checkout, and after ``keepalive_timeout`` seconds unused (at checkout, and
by a sweep armed while any connection is idle). A connection goes back to the idle ones only
after a reply read whole that allows keep-alive; a failed, cancelled or timed-out exchange
closes it, so a half-read connection is never reused.

The keep-alive race: a server may close an idle connection just as a request goes out on it.
When a reused connection ends before any byte of its reply, the request is sent once more on
a new connection (as browsers and urllib3 do: the server closed an idle socket, it did not
process the request); on a new connection the same failure is the caller's
(:class:`~gateway.backends.h1.errors.ClosedBeforeReply`).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import sys

from gateway.backends.h1.connection import Connection, Reply
from gateway.backends.h1.errors import (
    ClosedBeforeReply,
    ConnectFailed,
    ConnectTimeout,
    TLSHandshakeFailed,
)
from gateway.backends.h1.wire import Body, Headers, Heads, body_size

_ONE_WRITE = 64 * 1024  # up to this size the head and body are joined; above, written as two


class Slots:
    """The client's limit of connections in use (aiohttp's ``limit``: idle connections do not
    count); a caller waits, first come first served, for a slot to free. 0: no limit."""

    __slots__ = ("_waiters", "free")

    def __init__(self, limit: int) -> None:
        self.free = limit or sys.maxsize
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def wait(self) -> None:
        """Wait for a slot (call when ``free`` is 0); on return the caller holds one."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot, then cancelled
                self.release()
            raise

    def release(self) -> None:
        """Give the slot to the first caller still waiting, or back to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class OriginPool:
    """The connections to one origin; ``request`` sends one request and reads its reply."""

    def __init__(
        self,
        host: str,
        port: int,
        host_header: str,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
        slots: Slots,
        keepalive_timeout: float,
    ) -> None:
        self.host, self.port, self.host_header = host, port, host_header
        self._heads = Heads(host_header)
        self._tls = tls
        self._server_hostname = server_hostname if tls is not None else None
        self._slots = slots
        self._keepalive = keepalive_timeout
        self._idle: dict[Connection, float] = {}  # connection -> idle since; insertion order
        self._open: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers | None = None,
        body: Body | None = None,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Reply:
        """Send a request and read its whole reply.

        Raises ``ConnectFailed`` (never sent), ``ReadTimeout`` or ``ExchangeFailed``
        (``ReplyCutOff`` after the reply's head); ``ValueError`` for headers that cannot be
        sent. Cancelled, the exchange's connection is closed and its slot freed.
        """
        head = self._heads.encode(method, target, headers, body)
        data: bytes | tuple[bytes, ...]
        if body is None:
            data = head
        elif body_size(body) <= _ONE_WRITE:
            data = head + body
        else:
            data = (head, bytes(body) if type(body) is not bytes else body)
        head_only = method == "HEAD"
        slots = self._slots
        if slots.free:
            slots.free -= 1
        else:
            await slots.wait()
        try:
            conn = self._checkout()
            fresh = conn is None
            if conn is None:
                conn = await self._connect(connect_timeout)
            while True:
                try:
                    reply = await conn.send(data, read_timeout, head_only)
                except ClosedBeforeReply:
                    conn.close()
                    if fresh:
                        raise
                    fresh = True  # the keep-alive race: once more, on a new connection
                    conn = await self._connect(connect_timeout)
                    continue
                except BaseException:
                    conn.close()
                    raise
                break
            if conn.reusable and not conn.transport.is_closing():  # type: ignore[union-attr]
                self._checkin(conn)
            else:
                conn.close()
            return reply
        finally:
            slots.release()

    def close(self) -> None:
        """Close every connection, idle or in use (their exchanges fail)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for conn in list(self._open):
            conn.close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    # -- connections -------------------------------------------------------------------------

    def _checkout(self) -> Connection | None:
        idle = self._idle
        if not idle:
            return None
        oldest = asyncio.get_running_loop().time() - self._keepalive
        while idle:
            conn, since = idle.popitem()  # the most recently used
            if since > oldest and not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                return conn
            conn.close()
        return None

    def _checkin(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        self._idle[conn] = loop.time()
        if self._sweep is None:
            self._sweep = loop.call_at(loop.time() + self._keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close the connections idle for ``keepalive_timeout``; come back for the next."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        oldest = loop.time() - self._keepalive
        idle = self._idle
        for conn, since in list(idle.items()):  # oldest first
            if since > oldest:
                self._sweep = loop.call_at(since + self._keepalive, self._sweep_idle)
                return
            del idle[conn]
            conn.close()

    def _forget(self, conn: Connection) -> None:
        """``connection_lost``: the connection is gone, whoever ended it."""
        self._idle.pop(conn, None)
        self._open.discard(conn)

    async def _connect(self, within: float) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, self._forget),
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self._server_hostname,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection within {within:g}s") from exc
        except ssl.SSLError as exc:
            raise TLSHandshakeFailed(f"TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {exc}") from exc
        self._open.add(conn)
        if conn.closed:  # lost already (a server that accepts and closes at once)
            self._open.discard(conn)
        return conn
