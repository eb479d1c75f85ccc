"""A counted HTTP/1.1 load: exactly N POSTs over C keep-alive connections (asyncio streams, h11),
every answer read whole and judged. For ``bench.instructions``, where what matters is the
number of requests the server answered, not how fast this client is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

# request number (1, 2, ...) -> its body and its headers besides Host and Content-Length
Build = Callable[[int], tuple[bytes, dict[str, str]]]
# (status, headers with lower-case names, body) -> what is wrong with the answer
Judge = Callable[[int, dict[str, str], bytes], list[str]]
KEPT = 5  # problems kept for the report (all are counted)


@dataclass
class Sent:
    requests: int  # answers read whole
    seconds: float
    failed: int = 0  # answers with a problem, or requests with no answer
    problems: list[str] = field(default_factory=list)  # the first few

    def note(self, number: int, what: str) -> None:
        self.failed += 1
        if len(self.problems) < KEPT:
            self.problems.append(f"request {number}: {what}")


class _Connection:
    """One keep-alive connection, opened again if the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.h11 = h11.Connection(h11.CLIENT)

    async def exchange(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[h11.Response, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
            self.h11 = h11.Connection(h11.CLIENT)
        reader, writer = self.streams
        head = [("Host", f"{self.host}:{self.port}"), ("Content-Length", str(len(body)))]
        head += list(headers.items())
        data = self.h11.send(h11.Request(method="POST", target=path, headers=head))
        data = (data or b"") + (self.h11.send(h11.Data(data=body)) or b"")
        writer.write(data + (self.h11.send(h11.EndOfMessage()) or b""))
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection mid-answer")
        assert response is not None
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        else:
            await self.close()
        return response, b"".join(chunks)

    async def close(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _send(
    url: str, requests: int, concurrency: int, build: Build, judge: Judge, limit: float
) -> Sent:
    """``send``; ``limit``: the seconds one request may take."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    numbers: Iterator[int] = iter(range(1, requests + 1))
    sent = Sent(0, 0.0)

    async def worker() -> None:
        connection = _Connection(host, port)
        try:
            for number in numbers:  # shared: each number is taken by one worker
                body, headers = build(number)
                try:
                    response, answer = await asyncio.wait_for(
                        connection.exchange(path, body, headers), limit
                    )
                except (OSError, TimeoutError, h11.ProtocolError) as exc:
                    sent.note(number, f"no answer: {exc!r}")
                    await connection.close()
                    continue
                sent.requests += 1
                names = {bytes(k).decode().lower(): bytes(v).decode() for k, v in response.headers}
                for problem in judge(response.status_code, names, answer):
                    sent.note(number, problem)
                    break
        finally:
            await connection.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    sent.seconds = time.monotonic() - started
    return sent


def send(
    url: str,
    requests: int,
    concurrency: int,
    build: Build,
    judge: Judge,
    timeout: float = 120.0,
) -> Sent:
    """POST ``requests`` requests to ``url`` (``build(n)`` makes request n) over ``concurrency``
    connections, each answer judged; how many were answered and what went wrong."""
    return asyncio.run(_send(url, requests, concurrency, build, judge, timeout))
