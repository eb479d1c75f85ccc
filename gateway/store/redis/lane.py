"""A lean lane to one Redis server for the hot-path commands (the rate-limit Lua, the cache).

redis-py's asyncio client spends tens of µs of Python per command on its pool, its connection
object and its parser driver (``bench/README.md``, "Redis client"). A lane is one connection
driven by an :class:`asyncio.Protocol`: each command is packed by ``hiredis.pack_command``;
the commands issued in one turn of the event loop leave in one write at the end of that turn
(natural pipelining: one syscall for many, 2-3x less CPU per command than a write each at 16
callers and more); the replies, parsed by ``hiredis.Reader`` as the bytes arrive, resolve the
callers' futures in the order the commands were written. One connection: a second one, round
robin, cost more CPU per command at every concurrency measured (1, 16, 64).

Contracts:

- Replies are undecoded (bytes, int, list, ``None``), as redis-py's ``NEVER_DECODE``.
- An error reply raises what redis-py raises for it (its own table: ``NoScriptError`` for
  NOSCRIPT, ``ReadOnlyError``, ``ResponseError``...), and the commands after it go on.
- The connection is made as the store's redis-py pool would make it (:meth:`Lane.from_pool`):
  TCP, TLS (``rediss://``) or a unix socket, AUTH (or the pool's credential provider),
  ``CLIENT SETNAME``, ``SELECT``, the connect timeout; no reply for ``socket_timeout`` seconds
  while one is due fails the connection with :class:`redis.exceptions.TimeoutError`.
- A lost connection fails the commands waiting on it with
  :class:`redis.exceptions.ConnectionError` (redis-py's ``Retry`` would have sent them again;
  the lane does not: a take is not idempotent); the next command reconnects. Nothing
  reconnects in the background, and the commands that arrive while a connect is under way
  wait for that one attempt (bounded by the connect timeout): a Redis that is down costs one
  connect attempt per wave of commands, and one that is back is used by the next command.
- A caller that gives up (cancelled) leaves its command in the line: its reply is read and
  dropped, so the others' replies stay in order.
- One server only: a ``RedisCluster`` keeps redis-py, which knows the slot map.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import hiredis
from redis import exceptions as rx
from redis._parsers import BaseParser
from redis.asyncio.connection import Connection as TCPConnection
from redis.asyncio.connection import (
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.credentials import CredentialProvider, UsernamePasswordCredentialProvider

_MORE: Final = object()  # hiredis.Reader.gets(): no whole reply yet
# A command in RESP, as the lane sends it (``Lane.call_packed`` takes its bytes). hiredis's stub
# types its argument as a 1-tuple; it takes a tuple of any length.
pack_command: Final = cast(
    "Callable[[tuple[str | bytes | int | float, ...]], bytes]", hiredis.pack_command
)
_CLOSE_WAIT: Final = 5.0  # the longest close() waits for replies without a socket timeout


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how a lane connects: what a connection of a redis-py pool would use."""

    where: str  # host:port or the socket's path, for messages
    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host and port
    tls: ssl.SSLContext | None = None
    credentials: CredentialProvider | None = None
    client_name: str | None = None
    db: int = 0
    connect_timeout: float | None = None
    timeout: float | None = None  # the longest wait for a reply that is due

    @classmethod
    def of(cls, pool: ConnectionPool) -> Endpoint | None:
        """The endpoint of ``pool``'s connections, or ``None`` for a kind of connection the
        lane does not make (Sentinel, a connection class of someone else's)."""
        kind = pool.connection_class
        if issubclass(kind, SentinelManagedConnection) or not issubclass(
            kind, (TCPConnection, UnixDomainSocketConnection)
        ):
            return None
        made = kind(**pool.connection_kwargs)  # connects nothing: read its parsed settings
        credentials = made.credential_provider
        if credentials is None and (made.username or made.password):
            credentials = UsernamePasswordCredentialProvider(made.username, made.password)
        common: dict[str, Any] = {
            "credentials": credentials,
            "client_name": made.client_name,
            "db": int(made.db),
            "connect_timeout": made.socket_connect_timeout,
            "timeout": made.socket_timeout,
        }
        if isinstance(made, UnixDomainSocketConnection):
            return cls(where=made.path, path=made.path, **common)
        assert isinstance(made, TCPConnection)
        # built now, as redis-py builds it, not in the first connect: it reads certificate files
        tls = made.ssl_context.get() if isinstance(made, SSLConnection) else None
        where = f"{made.host}:{made.port}"
        return cls(where=where, host=made.host, port=int(made.port), tls=tls, **common)


class Lane:
    """``await lane.call(*command)`` → the reply, undecoded, or the error redis-py would raise.

    Arguments are ``str``, ``bytes``, ``int`` or ``float`` (a wrong type raises ``TypeError``
    at the call, before anything is sent)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._wire: _Wire | None = None
        self._connecting: asyncio.Task[_Wire] | None = None

    @classmethod
    def from_pool(cls, pool: ConnectionPool) -> Lane | None:
        """A lane connecting as ``pool`` does (see :meth:`Endpoint.of`), or ``None``."""
        endpoint = Endpoint.of(pool)
        return None if endpoint is None else cls(endpoint)

    def call(self, *command: str | bytes | int | float) -> Awaitable[Any]:
        packed = pack_command(command)
        wire = self._wire
        if wire is not None and wire.open:
            return wire.send(packed)
        return self._send_connected(packed)

    def call_packed(self, packed: bytes) -> Awaitable[Any]:
        """:meth:`call` with the command already packed (:data:`pack_command`, or bytes a
        caller put together from packed parts: one command, whole)."""
        wire = self._wire
        if wire is not None and wire.open:
            return wire.send(packed)
        return self._send_connected(packed)

    async def close(self) -> None:
        """Wait (up to the socket timeout, else 5 s) for the replies due, then close. A
        later command connects again, as redis-py's pool does after ``aclose``."""
        if self._connecting is not None:
            await asyncio.wait([self._connecting])
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.close()

    async def _send_connected(self, packed: bytes) -> Any:
        if self._connecting is None:  # else join the attempt under way
            self._connecting = asyncio.get_running_loop().create_task(self._open())
            self._connecting.add_done_callback(self._opened)
        wire = await asyncio.shield(self._connecting)  # one caller's cancel stops no one else
        return await wire.send(packed)

    def _opened(self, task: asyncio.Task[_Wire]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved, even if every caller gave up: no warning

    async def _open(self) -> _Wire:
        at, loop = self._endpoint, asyncio.get_running_loop()

        def protocol() -> _Wire:
            return _Wire(loop, at.timeout, at.where)

        try:
            async with asyncio.timeout(at.connect_timeout):
                if at.path is not None:
                    _, wire = await loop.create_unix_connection(protocol, at.path)
                else:
                    connecting = loop.create_connection(protocol, at.host, at.port, ssl=at.tls)
                    _, wire = await connecting
        except TimeoutError as exc:
            raise rx.TimeoutError(f"Timeout connecting to {at.where}") from exc
        except OSError as exc:
            raise rx.ConnectionError(f"Error connecting to {at.where}: {exc}") from exc
        try:
            setup: list[tuple[str | bytes, ...]] = []
            if at.credentials is not None:
                setup.append(("AUTH", *await at.credentials.get_credentials_async()))
            if at.client_name:
                setup.append(("CLIENT", "SETNAME", at.client_name))
            if at.db:
                setup.append(("SELECT", str(at.db)))
            sent = [wire.send(pack_command(command)) for command in setup]
            for answer in await asyncio.gather(*sent, return_exceptions=True):
                if isinstance(answer, BaseException):
                    raise answer
        except BaseException:
            await wire.close()
            raise
        self._wire = wire
        return wire


class _Wire(asyncio.Protocol):
    """One connection: the futures of the commands written, in order, awaiting their replies."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None, where: str) -> None:
        self.open = False
        self._loop = loop
        self._timeout = timeout
        self._where = where
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader(
            protocolError=rx.InvalidResponse,
            replyError=BaseParser.parse_error,  # redis-py's own table of error replies
            notEnoughData=_MORE,
        )
        self._due: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []  # packed commands of this loop turn, not yet written
        self._progress = 0.0  # when a reply last arrived, or the line last became non-empty
        self._timer: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        if not self.open:  # lost between the connect and this command
            future.set_exception(rx.ConnectionError(f"Connection to {self._where} lost"))
            return future
        if not self._due:
            self._progress = self._loop.time()
            if self._timer is None and self._timeout is not None:
                self._timer = self._loop.call_at(self._progress + self._timeout, self._watch)
        self._due.append(future)
        if not self._out:
            self._loop.call_soon(self._flush)  # after every task already runnable this turn
        self._out.append(packed)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.open and self._transport is not None:
            self._transport.write(b"".join(out))  # one write (one syscall) per loop turn

    def data_received(self, data: bytes) -> None:
        reader, due = self._reader, self._due
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except rx.InvalidResponse as exc:
                self._fail(rx.ConnectionError(f"{self._where}: bad reply: {exc}"))
                return
            if reply is _MORE:
                break
            if not due:
                self._fail(rx.ConnectionError(f"{self._where}: a reply to no command"))
                return
            future = due.popleft()
            if future.done():  # its caller gave up
                continue
            if isinstance(reply, rx.ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        self._progress = self._loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        cause = f": {exc}" if exc is not None else ""
        self._fail(rx.ConnectionError(f"Connection to {self._where} lost{cause}"))
        if not self._lost.done():
            self._lost.set_result(None)

    async def close(self) -> None:
        if self._due and self.open:
            bound = self._timeout if self._timeout is not None else _CLOSE_WAIT
            await asyncio.wait(list(self._due), timeout=bound)
        self._fail(rx.ConnectionError(f"Connection to {self._where} closed"))
        await self._lost

    def _watch(self) -> None:
        self._timer = None
        if not self._due or not self.open:
            return
        assert self._timeout is not None
        due = self._progress + self._timeout
        if self._loop.time() >= due:
            self._fail(rx.TimeoutError(f"Timeout reading from {self._where}"))
        else:
            self._timer = self._loop.call_at(due, self._watch)

    def _fail(self, error: rx.RedisError) -> None:
        """Close the connection and fail every command waiting on it with ``error``."""
        self.open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows (if it has not run yet)
        due, self._due, self._out = self._due, deque(), []
        for future in due:
            if not future.done():
                future.set_exception(type(error)(*error.args))
