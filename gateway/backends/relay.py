"""Passthrough: a call's bytes relayed as they are to a backend, and the reply streamed back.

Hop-by-hop headers (RFC 9110 §7.6.1, and any the ``Connection`` header names) are dropped in
both directions; ``X-Forwarded-For/-Proto/-Host`` and ``X-Request-ID`` are set; the client's
``Authorization`` is forwarded only when the route says so. Small bodies of known size are
read whole (no streaming task); larger ones stream both ways, and the upstream connection is
released however the client leaves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable

import aiohttp

from gateway.backends.pool import ReplicaPool
from gateway.call import Call, Reply
from gateway.config.model import PassthroughRoute
from gateway.errors import BadGateway, MethodNotAllowed, PayloadTooLarge
from gateway.telemetry.timing import record_upstream

BUFFERED = 256 * 1024  # bodies of known size up to this are read whole rather than streamed

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def hop_by_hop(headers: Iterable[tuple[str, str]]) -> set[str]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return set(HOP_BY_HOP) | named


def upstream_headers(call: Call, route: PassthroughRoute) -> list[tuple[str, str]]:
    incoming = call.headers.items()
    drop = hop_by_hop(incoming) | {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    if not route.forward_authorization:
        drop.add("authorization")
    headers = [(k, v) for k, v in incoming if k.lower() not in drop]
    prior = call.headers.get("x-forwarded-for")
    forwarded_for = ", ".join(x for x in (prior, call.peer) if x)
    if forwarded_for:
        headers.append(("X-Forwarded-For", forwarded_for))
    headers.append(("X-Forwarded-Proto", call.headers.get("x-forwarded-proto") or call.scheme))
    host = call.headers.get("x-forwarded-host") or call.headers.get("host")
    if host:
        headers.append(("X-Forwarded-Host", host))
    headers.append(("X-Request-ID", call.request_id))
    return headers


def upstream_path(call: Call, route: PassthroughRoute) -> str:
    path = call.path
    if route.strip_prefix:
        path = "/" + path[len(route.path) :]
    return f"{path}?{call.query}" if call.query else path


async def relay(call: Call, route: PassthroughRoute, pool: ReplicaPool, limit: int) -> Reply:
    """Send the call to ``pool`` as it came and answer the backend's reply as it is."""
    if call.method not in route.methods:
        raise MethodNotAllowed(
            f"{call.method} is not allowed on {route.path}",
            headers={"Allow": ", ".join(route.methods)},
        )
    payload = call.payload
    declared = payload.length if payload is not None else None
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    body: bytes | AsyncIterator[bytes] | None = None
    if payload is not None and call.method not in ("GET", "HEAD"):
        small = declared is not None and declared <= BUFFERED
        body = await payload.read() if small else payload.stream()
    stack = contextlib.AsyncExitStack()
    try:
        response, started = await stack.enter_async_context(
            pool.stream(
                call.method,
                upstream_path(call, route),
                body=body,
                headers=upstream_headers(call, route),
            )
        )
    except BaseException:
        await stack.aclose()
        raise
    # The session does not decompress, so Content-Length and Content-Encoding stay true.
    replied = list(response.headers.items())
    drop = hop_by_hop(replied)
    headers = [(k, v) for k, v in replied if k.lower() not in drop]
    length = response.content_length
    if length is None or length > BUFFERED:
        record_upstream(time.perf_counter() - started)  # time to the upstream's headers
        return Reply(response.status, stream=_relay(response), close=stack.aclose, headers=headers)
    try:  # small and of known size: read it whole, and answer without a streaming task
        data = await response.read()
    except aiohttp.ClientError as exc:
        raise BadGateway(f"the upstream reply was cut off: {exc}") from exc
    finally:
        await stack.aclose()
    record_upstream(time.perf_counter() - started)
    return Reply(response.status, body=data, headers=headers)


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except aiohttp.ClientError as exc:
        # Headers are already sent; ending the stream early is all that is left to do.
        raise BadGateway(f"the upstream reply was cut off: {exc}") from exc
