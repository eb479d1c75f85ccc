"""Passthrough routes: a path prefix forwarded as-is to one backend, streamed both ways.

Hop-by-hop headers (RFC 9110 §7.6.1, and any the ``Connection`` header names) are dropped in
both directions; ``X-Forwarded-For/-Proto/-Host`` and ``X-Request-ID`` are set; the client's
``Authorization`` is forwarded only when the route says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.chain import Context
from gateway.config import Route
from gateway.errors import BadGateway, MethodNotAllowed, NotFound, PayloadTooLarge
from gateway.http_body import read_body
from gateway.runtime import Runtime
from gateway.timing import record_upstream

if TYPE_CHECKING:
    from gateway.app import Gateway

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


def match_route(runtime: Runtime, path: str) -> Route | None:
    """The longest configured prefix that ``path`` starts with."""
    best: Route | None = None
    for route in runtime.table.routes:
        if (path.startswith(route.path) or path + "/" == route.path) and (
            best is None or len(route.path) > len(best.path)
        ):
            best = route
    return best


def _hop_by_hop(headers: list[tuple[str, str]]) -> set[str]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return set(HOP_BY_HOP) | named


def upstream_headers(request: Request, route: Route, ctx: Context) -> list[tuple[str, str]]:
    incoming = list(request.headers.items())
    drop = _hop_by_hop(incoming) | {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    if not route.forward_authorization:
        drop.add("authorization")
    headers = [(k, v) for k, v in incoming if k.lower() not in drop]
    client = request.client.host if request.client else None
    prior = request.headers.get("x-forwarded-for")
    forwarded_for = ", ".join(x for x in (prior, client) if x)
    if forwarded_for:
        headers.append(("X-Forwarded-For", forwarded_for))
    headers.append(
        ("X-Forwarded-Proto", request.headers.get("x-forwarded-proto", request.url.scheme))
    )
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    if host:
        headers.append(("X-Forwarded-Host", host))
    headers.append(("X-Request-ID", ctx.request_id))
    return headers


class _UpstreamStream(StreamingResponse):
    """A streamed upstream reply whose connection is released however the client leaves."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = headers
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        if chunk:
            yield chunk


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except aiohttp.ClientError as exc:
        # Headers are already sent; ending the stream early is all that is left to do.
        raise BadGateway(f"the upstream reply was cut off: {exc}") from exc


async def passthrough_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The router's default: a passthrough route, through the policy chain, or a JSON 404."""
    request = Request(scope, receive)
    gateway: Gateway = request.app.state.gateway
    ctx: Context = request.state.ctx
    runtime = gateway.reloader.current
    route = match_route(runtime, request.url.path)
    if route is None:
        raise NotFound(f"no route for {request.url.path}")
    request.state.runtime = runtime
    request.state.route = route
    request.state.endpoint = passthrough
    ctx.required = (
        tuple(route.scopes) if route.scopes is not None else (f"passthrough:{route.backend}",)
    )
    response = await gateway.chain(request, ctx)
    await response(scope, receive, send)


async def passthrough(request: Request, ctx: Context) -> Response:
    gateway: Gateway = request.app.state.gateway
    runtime: Runtime = request.state.runtime
    route: Route = request.state.route
    if request.method not in route.methods:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {route.path}",
            headers={"Allow": ", ".join(route.methods)},
        )
    limit = gateway.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    path = request.url.path
    if route.strip_prefix:
        path = "/" + path[len(route.path) :]
    if request.url.query:
        path += "?" + request.url.query
    body: bytes | AsyncIterator[bytes] | None = None
    if request.method not in ("GET", "HEAD"):
        small = declared is not None and declared.isdigit() and int(declared) <= BUFFERED
        body = await read_body(request, limit) if small else _limited(request, limit)
    pool = runtime.backends[route.backend].pool
    stack = contextlib.AsyncExitStack()
    try:
        response, started = await stack.enter_async_context(
            pool.stream(
                request.method, path, body=body, headers=upstream_headers(request, route, ctx)
            )
        )
    except BaseException:
        await stack.aclose()
        raise
    # The session does not decompress, so Content-Length and Content-Encoding stay true.
    drop = _hop_by_hop(list(response.headers.items()))
    headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in response.headers.items()]
    headers = [(k, v) for k, v in headers if k.decode() not in drop]
    length = response.content_length
    if length is None or length > BUFFERED:
        record_upstream(time.perf_counter() - started)  # time to the upstream's headers
        return _UpstreamStream(_relay(response), response.status, headers, stack.aclose)
    try:  # small and of known size: read it whole, and answer without a streaming task
        data = await response.read()
    except aiohttp.ClientError as exc:
        raise BadGateway(f"the upstream reply was cut off: {exc}") from exc
    finally:
        await stack.aclose()
    record_upstream(time.perf_counter() - started)
    buffered = Response(data, status_code=response.status)
    buffered.raw_headers = headers
    return buffered
