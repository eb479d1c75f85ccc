"""The HTTP frontend's ASGI application: one lane for every request.

Every request, whichever endpoint serves it, goes through :meth:`HTTPEdge.__call__` once:
its ``X-Request-ID`` (``edge.request_id``), its timing (``Server-Timing``) and server span, the
endpoint, the one renderer of errors in the endpoint's protocol shape (``edge.errors``), and
at the end the observer (metrics and the access line). Routes are declared once, as
:class:`Route` values, by the frontends and the admin API; :class:`Router` compiles them into
an exact-path table and ordered patterns, inference first, so the calls a gateway exists for
are matched in a dict lookup and a regex or two, without Starlette's router and middleware.
Starlette provides the request and response classes and the path syntax.

A route may also declare a ``direct`` endpoint, which takes the ASGI scope and ``receive``
and returns an :class:`~gateway.edge.answer.Answer`: the HTTP server then serves such a route
in its direct lane (``edge.direct``: no ASGI cycle, no Starlette objects, one write), through
:meth:`HTTPEdge.serve`, the same bookkeeping as every other request.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Span
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope, Send

from gateway.call import Call
from gateway.edge.answer import Answer, response_of
from gateway.edge.errors import ErrorShape, error_answer, shape_of
from gateway.edge.request_id import request_id_of
from gateway.errors import GatewayError, InternalError, MethodNotAllowed, Unavailable
from gateway.telemetry import tracing
from gateway.telemetry.access_log import Observer
from gateway.telemetry.timing import CURRENT_TIMING, Timing

logger = logging.getLogger("gateway")


@dataclass(slots=True)
class Exchange:
    """One HTTP request's scope in the gateway: its id, timing and span, and the call it
    became (with the names its route table serves), for the observer."""

    request_id: str
    timing: Timing
    span: Span | None = None
    call: Call | None = None
    models: Container[str] = ()


Endpoint = Callable[[Request, Exchange], Awaitable[Response | Answer]]
DirectEndpoint = Callable[[Scope, Receive, Exchange], Awaitable[Answer]]
Deliver = Callable[[Response | Answer, list[tuple[bytes, bytes]]], Awaitable[tuple[int, int]]]
"""Sends an answer with these headers added; its status and the body bytes sent."""


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a Starlette-style path (``/v2/models/{model}/infer``), its methods (GET
    also answers HEAD), the shape its errors take, whether requests are observed, and the
    same endpoint for the direct lane (``direct``: it must answer as ``endpoint`` does)."""

    path: str
    endpoint: Endpoint
    methods: tuple[str, ...]
    errors: ErrorShape = "gateway"
    observe: bool = True
    direct: DirectEndpoint | None = None
    allowed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        methods = set(self.methods) | ({"HEAD"} if "GET" in self.methods else set())
        object.__setattr__(self, "allowed", frozenset(methods))


@dataclass(frozen=True, slots=True)
class Match:
    route: Route | None
    params: dict[str, str]
    allowed: tuple[str, ...] = ()  # the path matched, the method did not: these would


_NO_MATCH = Match(None, {})
_MEMO = 1024  # paths whose direct-lane match a Router keeps (then it starts again)
_MEMO_PATH = 512  # the longest path kept (so the memo holds at most about half a megabyte)


class Router:
    """The compiled route table: exact paths in a dict, the rest as patterns in the order
    declared (a route that matches path and method wins over an earlier path-only match, as
    in Starlette), with a prefix check that keeps unclaimed paths off the patterns."""

    def __init__(
        self,
        routes: Sequence[Route],
        fallback: Endpoint,
        observer: Observer,
        unmatched: Callable[[str], ErrorShape] = shape_of,
    ) -> None:
        self.fallback = fallback
        self.observer = observer
        self.unmatched = unmatched  # the error shape of a path no route claims
        self._exact: dict[str, list[Route]] = {}
        self._patterns: list[tuple[re.Pattern[str], Route]] = []
        prefixes = set()
        for route in routes:
            if "{" not in route.path:
                self._exact.setdefault(route.path, []).append(route)
                continue
            regex, _, _ = compile_path(route.path)
            self._patterns.append((regex, route))
            prefixes.add(route.path.split("{", 1)[0])
        self._prefixes = tuple(sorted(prefixes))
        self._direct: dict[str, Match | None] = {}  # path → direct(path), at most _MEMO

    def direct(self, path: str) -> Match | None:
        """The match of ``POST path`` when its route has a direct endpoint, else None;
        remembered for the paths asked (at most ``_MEMO``, then forgotten all at once; none
        longer than ``_MEMO_PATH``)."""
        memo = self._direct
        found = memo.get(path, _NO_MATCH)  # _NO_MATCH: never kept, so "not asked yet"
        if found is not _NO_MATCH:
            return found
        match = self.match("POST", path)
        route = match.route
        found = match if route is not None and route.direct is not None else None
        if len(path) <= _MEMO_PATH:
            if len(memo) >= _MEMO:
                memo.clear()
            memo[path] = found
        return found

    def match(self, method: str, path: str) -> Match:
        exact = self._exact.get(path)
        if exact is not None:
            for route in exact:
                if method in route.allowed:
                    return Match(route, {})
            return Match(None, {}, _allowed(exact))
        if not path.startswith(self._prefixes):
            return _NO_MATCH
        partial: list[Route] = []
        for regex, route in self._patterns:
            found = regex.match(path)
            if found is not None:
                if method in route.allowed:
                    return Match(route, found.groupdict())
                partial.append(route)
        return Match(None, {}, _allowed(partial)) if partial else _NO_MATCH


def _allowed(routes: Sequence[Route]) -> tuple[str, ...]:
    return tuple(sorted({m for r in routes for m in r.allowed}))


Opener = Callable[[], contextlib.AbstractAsyncContextManager[Router]]


class HTTPEdge:
    """The ASGI application. ``opener`` (the composition root's) builds the worker's state
    and its routes in the lifespan's startup and closes them at shutdown. ``direct``: whether
    the HTTP server may serve routes that have a direct endpoint in its direct lane
    (``edge.direct``: :meth:`Router.direct`, :meth:`serve`); ``direct_served`` counts the
    requests it did."""

    def __init__(self, opener: Opener, *, direct: bool = True) -> None:
        self._opener = opener
        self.router: Router | None = None
        self.direct = direct
        self.direct_served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets are not served: uvicorn refuses the upgrade when the app does not accept

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        stack = contextlib.AsyncExitStack()
        try:
            self.router = await stack.enter_async_context(self._opener())
        except BaseException as exc:
            logger.exception("the gateway could not start")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self.router = None
        try:
            await stack.aclose()
        except BaseException as exc:
            logger.exception("the gateway did not shut down cleanly")
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self.router
        match = router.match(scope["method"], scope["path"]) if router is not None else _NO_MATCH

        async def deliver(
            answered: Response | Answer, headers: list[tuple[bytes, bytes]]
        ) -> tuple[int, int]:
            response = response_of(answered) if isinstance(answered, Answer) else answered
            response.raw_headers += headers
            return response.status_code, await _send(response, scope, receive, send)

        await self.serve(scope, receive, match, deliver, direct=False)

    async def serve(
        self, scope: Scope, receive: Receive, match: Match, deliver: Deliver, *, direct: bool
    ) -> None:
        """One request, in either lane: its id, timing and span, the endpoint (the route's
        ``direct`` one in the direct lane) or the error rendered, ``deliver``, the observer."""
        method: str = scope["method"]
        path: str = scope["path"]
        request_id = request_id_of(scope["headers"])
        router = self.router
        if direct:
            self.direct_served += 1
        route = match.route
        observer = router.observer if router is not None else None
        if route is not None and not route.observe:
            observer = None
        timing = Timing()
        token = CURRENT_TIMING.set(timing)
        span = trace_token = None
        tracer = tracing.TRACER
        if tracer is not None and observer is not None:
            name = f"{method} {route.path}" if route is not None else method
            span, trace_token = tracing.server_span(tracer, scope, name)
            if route is not None:
                span.set_attribute("http.route", route.path)
        exchange = Exchange(request_id, timing, span)
        status, sent = 500, 0
        try:
            if direct and route is not None and route.direct is not None and router is not None:
                # the direct endpoint awaited here: one coroutine fewer per request
                scope["path_params"] = match.params
                try:
                    answered: Response | Answer | None = await route.direct(
                        scope, receive, exchange
                    )
                except Exception as exc:  # noqa: BLE001 (_failed logs the unexpected)
                    answered = _failed(exc, exchange.request_id, route.errors)
            else:
                answered = await self._respond(scope, receive, match, exchange, router)
            if answered is None:
                status = 499  # the client left: nobody to answer
                return
            headers = [
                (b"x-request-id", request_id.encode()),
                (b"server-timing", timing.header()),
            ]
            status = answered.status if isinstance(answered, Answer) else answered.status_code
            status, sent = await deliver(answered, headers)
        finally:
            CURRENT_TIMING.reset(token)
            if observer is not None:
                observer.done(
                    method,
                    path,
                    status,
                    sent,
                    request_id,
                    timing,
                    span,
                    exchange.call,
                    exchange.models,
                )
            if span is not None:
                tracing.finish(span, trace_token, status)

    async def _respond(
        self,
        scope: Scope,
        receive: Receive,
        match: Match,
        exchange: Exchange,
        router: Router | None,
    ) -> Response | Answer | None:
        """The endpoint's response, or the error rendered; None when the client left (the
        ASGI lane's endpoints, and a direct route's when the direct lane cannot run it)."""
        route = match.route
        if route is not None:
            shape = route.errors
        else:
            shape = router.unmatched(scope["path"]) if router is not None else "gateway"
        try:
            if router is None:
                raise Unavailable("the gateway is starting", headers={"Retry-After": "1"})
            if route is not None:
                scope["path_params"] = match.params
                return await route.endpoint(Request(scope, receive), exchange)
            if match.allowed:
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}",
                    headers={"Allow": ", ".join(match.allowed)},
                )
            return await router.fallback(Request(scope, receive), exchange)
        except Exception as exc:  # noqa: BLE001 (_failed logs the unexpected)
            return _failed(exc, exchange.request_id, shape)


def _failed(exc: Exception, request_id: str, shape: ErrorShape) -> Answer | None:
    """What an endpoint that raised ``exc`` answers (called while it is handled): its error
    in ``shape``; None when the client left; anything unexpected logged and a 500."""
    if isinstance(exc, GatewayError):
        return error_answer(exc, request_id, shape)
    if isinstance(exc, ClientDisconnect):
        return None
    logger.exception("unhandled error", extra={"request_id": request_id})
    return error_answer(InternalError("internal error"), request_id, shape)


async def _send(response: Response, scope: Scope, receive: Receive, send: Send) -> int:
    """Send ``response``; the body bytes sent. A streamed body that fails after its headers
    went out can only be cut short: the error propagates and the server drops the connection."""
    if not isinstance(response, StreamingResponse):
        await response(scope, receive, send)
        body = response.body
        return len(body) if isinstance(body, bytes | memoryview) else 0
    sent = 0

    async def counted(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += len(message.get("body", b""))
        await send(message)

    await response(scope, receive, counted)
    return sent


class UpstreamStream(StreamingResponse):
    """A streamed reply whose upstream connection is released however the client leaves."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        close: Callable[[], Awaitable[None]] | None,
    ) -> None:
        super().__init__(content, status_code=status_code)
        self.raw_headers = headers
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._close is not None:
                await self._close()
