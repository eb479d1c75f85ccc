"""An HTTP request's body as a call's payload: read once on demand, bounded (413 beyond the
limit, checked against ``Content-Length`` before reading and again while reading)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request

from gateway.errors import PayloadTooLarge


class HTTPPayload:
    __slots__ = ("_body", "_limit", "_request", "length")

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self._body: bytes | None = None
        declared = None
        for key, value in request.scope["headers"]:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else None
                break
        self.length = declared

    def _check_declared(self) -> None:
        if self.length is not None and self.length > self._limit:
            raise PayloadTooLarge(f"the body is {self.length} bytes; the limit is {self._limit}")

    async def read(self) -> bytes:
        """The whole body (kept: a later step reads the same bytes)."""
        body = self._body
        if body is not None:
            return body
        self._check_declared()
        chunks: list[bytes] = []
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self._limit:
                raise PayloadTooLarge(f"the body is over the limit of {self._limit} bytes")
            chunks.append(chunk)
        body = self._body = b"".join(chunks)
        return body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives (not kept)."""
        self._check_declared()
        size = 0
        async for chunk in self._request.stream():
            size += len(chunk)
            if size > self._limit:
                raise PayloadTooLarge(f"the body is over the limit of {self._limit} bytes")
            if chunk:
                yield chunk
