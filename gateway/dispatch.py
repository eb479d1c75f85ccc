"""The outermost ASGI layer: request id, ``Server-Timing``, JSON errors, and the fast lane.

Every HTTP request gets an ``X-Request-ID`` (the caller's, when well formed), a per-request
:class:`~gateway.timing.Timing` and one JSON renderer for errors. The inference endpoints and
passthrough routes (the traffic a gateway exists for) take a **fast lane**: matched here with
one precompiled pattern, they skip Starlette's middleware stack, router walk and endpoint
wrappers, which cost more per request than the whole policy chain with every credential
cached. Everything else (admin, metadata, health, metrics) goes through Starlette as usual.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import tracing
from gateway.access_log import Observer, cache_result
from gateway.chain import Context
from gateway.errors import GatewayError, error_response
from gateway.timing import CURRENT_TIMING, Timing

logger = logging.getLogger("gateway")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_PARAM = re.compile(r"\{([a-z_]+)\}")

Handler = Callable[[Request], Awaitable[Response]]
UNOBSERVED = frozenset({"/healthz", "/readyz", "/metrics"})  # not traced, counted or logged


def request_id_of(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            incoming = value.decode("latin-1")
            return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _context_headers(request_id: str, timing: Timing) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-request-id", request_id.encode()),
        (b"server-timing", timing.header().encode()),
    ]


@dataclass(frozen=True, slots=True)
class FastRoute:
    pattern: re.Pattern[str]
    handler: Handler
    template: str = ""  # the path with its parameters named, for the span name


def fast_route(path: str, handler: Handler) -> FastRoute:
    """A Starlette-style path (``/v2/models/{model}/infer``) as one anchored pattern."""
    parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
    regex = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return FastRoute(re.compile(f"^{regex}$"), handler, path)


class RequestContextMiddleware:
    """Request id, ``Server-Timing`` and the one JSON renderer for every error (the slow lane,
    and the passthrough routes, whose responses stream)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        ctx = Context(request_id=request_id)
        scope.setdefault("state", {})["ctx"] = ctx
        timing = Timing()
        token = CURRENT_TIMING.set(timing)
        observer: Observer | None = getattr(scope.get("app"), "observer", None)
        if scope["path"] in UNOBSERVED:
            observer = None
        tracer = tracing.TRACER if observer is not None else None
        span = trace_token = None
        if tracer is not None:
            span, trace_token = tracing.server_span(tracer, scope, scope["method"])
        started = False
        status = 500
        sent = 0
        cache = ""

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status, sent, cache
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [*message.get("headers", []), *_context_headers(request_id, timing)]
                if ctx.model is not None:
                    cache = cache_result(headers)
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except GatewayError as exc:
            if started:
                raise
            await error_response(exc, request_id)(scope, receive, send_with_headers)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if started:
                raise
            error = GatewayError("internal error", status=500, code="internal")
            await error_response(error, request_id)(scope, receive, send_with_headers)
        finally:
            CURRENT_TIMING.reset(token)
            if observer is not None:
                observer.done(scope, ctx, timing, status, sent, cache, span)
            if span is not None:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
                tracing.finish(span, trace_token, status)


class GatewayApp(Starlette):
    """Starlette, with the fast lane in front (see the module docstring).

    ``fast`` holds the POST routes served without Starlette's stack; ``fallback`` is the app
    for paths no Starlette route claims (the passthrough routes), reached directly as well.
    """

    def __init__(
        self,
        *,
        routes: Sequence[BaseRoute],
        fast: Sequence[FastRoute],
        fallback: ASGIApp,
        **kwargs: Any,
    ) -> None:
        super().__init__(routes=routes, **kwargs)
        self.router.default = fallback
        self.add_middleware(RequestContextMiddleware)
        self.observer: Observer | None = None  # set by the lifespan: metrics and access log
        self._fast = tuple(fast)
        self._fallback = RequestContextMiddleware(fallback)
        claimed = [r.path for r in routes if isinstance(r, Route)]
        self._exact = frozenset(p for p in claimed if "{" not in p)
        self._prefixes = tuple(sorted({p.split("{", 1)[0] for p in claimed if "{" in p}))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if scope["method"] == "POST":
                for route in self._fast:
                    match = route.pattern.match(path)
                    if match is not None:
                        scope["app"] = self
                        scope["path_params"] = match.groupdict()
                        await self._serve(route, scope, receive, send)
                        return
            if path not in self._exact and not path.startswith(self._prefixes):
                scope["app"] = self
                await self._fallback(scope, receive, send)  # a passthrough route, or a 404
                return
        await super().__call__(scope, receive, send)

    async def _serve(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """One fast-lane request: the chain's response, with the context headers added."""
        request_id = request_id_of(scope)
        ctx = Context(request_id=request_id)
        scope.setdefault("state", {})["ctx"] = ctx
        timing = Timing()
        token = CURRENT_TIMING.set(timing)
        observer = self.observer
        span = trace_token = None
        tracer = tracing.TRACER
        if tracer is not None and observer is not None:
            span, trace_token = tracing.server_span(tracer, scope, f"POST {route.template}")
            span.set_attribute("http.route", route.template)
        response: Response | None = None
        try:
            try:
                response = await route.handler(Request(scope, receive))
            except GatewayError as exc:
                response = error_response(exc, request_id)
            except ClientDisconnect:
                return  # nobody is left to answer
            except Exception:
                logger.exception("unhandled error", extra={"request_id": request_id})
                error = GatewayError("internal error", status=500, code="internal")
                response = error_response(error, request_id)
            response.raw_headers += _context_headers(request_id, timing)
            await response(scope, receive, send)
        finally:
            CURRENT_TIMING.reset(token)
            status = response.status_code if response is not None else 499
            if observer is not None:
                body = getattr(response, "body", None)
                sent = len(body) if isinstance(body, bytes | memoryview) else 0
                cache = cache_result(response.raw_headers) if response is not None else ""
                observer.done(scope, ctx, timing, status, sent, cache, span)
            if span is not None:
                tracing.finish(span, trace_token, status)
