"""An HTTP request's body as a call's payload: read once on demand, bounded (413 beyond the
limit, checked against ``Content-Length`` before reading and again while reading), and, on the
inference endpoints, inflated from ``Content-Encoding: gzip|deflate`` with the limit applied
to the inflated size (``edge.encoding``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from gateway.edge.encoding import Inflater, coding_of
from gateway.errors import PayloadTooLarge
from gateway.headers import Headers


class HTTPPayload:
    """The body of the request whose ``headers`` these are, read from ``receive`` (the ASGI
    callable: either lane's); a client that leaves while it is read is ``ClientDisconnect``."""

    __slots__ = ("_body", "_encoding", "_limit", "_receive", "length")

    def __init__(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        receive: Receive,
        limit: int,
        *,
        inflate: bool = False,
    ) -> None:
        declared = encoding = None
        for key, value in headers:  # the last of each, as Headers.last
            if key == b"content-length":
                declared = value
            elif key == b"content-encoding":
                encoding = value
        self._start(receive, limit, declared, encoding if inflate else None)

    @classmethod
    def of(cls, headers: Headers, receive: Receive, limit: int, *, inflate: bool) -> HTTPPayload:
        """The same payload from the request's :class:`Headers` (its index: no pass of its
        own over the pairs)."""
        made = cls.__new__(cls)  # not __init__: its pass over the pairs is what this saves
        encoding = headers.last(b"content-encoding") if inflate else None
        made._start(receive, limit, headers.last(b"content-length"), encoding)
        return made

    def _start(
        self, receive: Receive, limit: int, declared: bytes | None, encoding: bytes | None
    ) -> None:
        """The payload of a request whose last ``Content-Length`` and ``Content-Encoding``
        (None: absent, or not inflated) are these."""
        self._receive = receive
        self._limit = limit
        self._body: bytes | None = None
        self.length = int(declared) if declared is not None and declared.isdigit() else None
        # checked when read: a call refused earlier never reads it
        self._encoding = encoding.decode("latin-1") if encoding is not None else None

    def _check_declared(self) -> None:
        if self.length is not None and self.length > self._limit:
            raise PayloadTooLarge(f"the body is {self.length} bytes; the limit is {self._limit}")

    async def read(self) -> bytes:
        """The whole body, inflated (kept: a later step reads the same bytes)."""
        body = self._body
        if body is not None:
            return body
        self._check_declared()
        coding = coding_of(self._encoding)  # 415 for a coding the gateway does not know
        inflater = Inflater(coding, self._limit) if coding is not None else None
        chunks: list[bytes] = []
        size = 0
        receive = self._receive
        more = True
        while more:  # _chunks, without an async generator per request
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            more = message.get("more_body", False)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise PayloadTooLarge(f"the body is over the limit of {self._limit} bytes")
            if chunk:
                chunks.append(inflater.feed(chunk) if inflater is not None else chunk)
        if inflater is not None:
            chunks.append(inflater.finish())
        body = self._body = b"".join(chunks)
        return body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives, as it is (passthrough: codings untouched; not kept)."""
        self._check_declared()
        size = 0
        async for chunk in self._chunks():
            size += len(chunk)
            if size > self._limit:
                raise PayloadTooLarge(f"the body is over the limit of {self._limit} bytes")
            yield chunk

    async def _chunks(self) -> AsyncIterator[bytes]:
        """The body's non-empty chunks as ``receive`` gives them (Starlette's
        ``Request.stream``, without the request)."""
        receive = self._receive
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()
