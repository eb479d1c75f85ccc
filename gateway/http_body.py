"""Reading a request body once, bounded, so every later step can read it again."""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes with 413 before reading it all.

    The bytes are kept on the request (as Starlette itself does for ``request.body()``), so a
    policy that looked at the body and the endpoint after it read the same bytes.
    """
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body
