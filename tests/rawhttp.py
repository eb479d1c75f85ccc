"""Raw HTTP/1.1 servers for the tests of the h1 client and the replica pool:
``asyncio.start_server`` on a loopback port, each connection handed to the test's own handler,
which reads requests and writes exactly the bytes it wants (framing, interim replies, closes
and resets at chosen points)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server read it."""

    line: str  # "POST /path HTTP/1.1"
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[0] if found else None


@dataclass(eq=False)
class Peer:
    """One accepted connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int  # 1 for the server's first connection
    requests: list[Request]  # the server's: every request read on any of its connections

    async def request(self) -> Request | None:
        """The next request on this connection, or None when the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line, *fields = head.decode("latin-1").split("\r\n")[:-2]
        headers = [(k, v.strip()) for k, _, v in (f.partition(":") for f in fields)]
        length = int(Request(line, headers, b"").header("content-length") or 0)
        body = await self.reader.readexactly(length) if length else b""
        found = Request(line, headers, body)
        self.requests.append(found)
        return found

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def closed_by_client(self) -> bool:
        """Whether the client ended the connection (EOF or reset), waiting for it."""
        try:
            return await self.reader.read(1) == b""
        except ConnectionError:
            return True


Handler = Callable[[Peer], Awaitable[None]]


@dataclass(eq=False)
class RawServer:
    """Serves each connection with ``handler``; counts connections and records requests read
    through :meth:`Peer.request`."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    peers: list[Peer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self.peers)

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in self.peers:
            peer.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, len(self.peers) + 1, self.requests)
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)


def reply(
    status: int = 200,
    body: bytes = b"ok",
    headers: list[tuple[str, str]] | None = None,
    version: str = "1.1",
) -> bytes:
    """A reply with ``Content-Length`` (unless ``headers`` frame it otherwise)."""
    fields = headers if headers is not None else [("Content-Length", str(len(body)))]
    head = f"HTTP/{version} {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    return head.encode("latin-1") + b"\r\n" + body


def answering(*replies: bytes) -> Handler:
    """A handler that answers each request of a connection with the next of ``replies`` (the
    last one again when they run out) and keeps the connection until the client closes it."""

    async def handle(peer: Peer) -> None:
        count = 0
        while await peer.request() is not None:
            await peer.send(replies[min(count, len(replies) - 1)])
            count += 1

    return handle


async def read_and_close(peer: Peer) -> None:
    """A handler that reads the request and closes the connection without a byte of reply."""
    await peer.request()
    await peer.close()


def blackhole_port() -> tuple[int, list[socket.socket]]:
    """A loopback port where a connect neither succeeds nor fails: a listener that never
    accepts, its accept queue filled (Linux drops the SYNs that do not fit, and the client
    keeps retrying them). Returns the port and the sockets to close after the test."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = [listener]
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        held.append(filler)
    return port, held
