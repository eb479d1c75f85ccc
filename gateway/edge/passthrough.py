"""Passthrough routes over HTTP: a path prefix of routes.yaml's ``routes:`` forwarded as-is to
one backend (``gateway.backends.relay``), streamed both ways, through the passthrough chain
(auth, rate limit). The router's fallback: a path no endpoint claims comes here, and is a 404
when no route's prefix matches it either."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.client_certs import client_cert_of
from gateway.call import Call
from gateway.config.model import PassthroughRoute
from gateway.edge.answer import raw_headers
from gateway.edge.body import HTTPPayload
from gateway.edge.http import Exchange, UpstreamStream
from gateway.errors import NotFound
from gateway.headers import Headers
from gateway.state import State


def match_route(routes: Sequence[PassthroughRoute], path: str) -> PassthroughRoute | None:
    """The longest configured prefix that ``path`` starts with."""
    best: PassthroughRoute | None = None
    for route in routes:
        if (path.startswith(route.path) or path + "/" == route.path) and (
            best is None or len(route.path) > len(best.path)
        ):
            best = route
    return best


class PassthroughHTTP:
    def __init__(self, state: State) -> None:
        self.state = state
        self.limit = state.settings.max_body_bytes

    async def __call__(self, request: Request, exchange: Exchange) -> Response:
        scope = request.scope
        path: str = scope["path"]
        runtime = self.state.reloader.current
        route = match_route(runtime.table.routes, path)
        if route is None:
            raise NotFound(f"no route for {path}")
        client = scope.get("client")
        required = (
            tuple(route.scopes) if route.scopes is not None else (f"passthrough:{route.backend}",)
        )
        call = Call(
            "passthrough",
            exchange.request_id,
            Headers(scope["headers"]),
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            scheme=scope.get("scheme", "http"),
            peer=client[0] if client else None,
            client_cert=client_cert_of(scope.get("extensions")),
            required=required,
            payload=HTTPPayload(request.scope["headers"], request.receive, self.limit),
            route=route,
        )
        exchange.call, exchange.models = call, runtime.table.models
        reply = await runtime.chains["passthrough"](call)
        headers = raw_headers(reply.headers)
        if reply.stream is not None:
            return UpstreamStream(reply.stream, reply.status, headers, reply.close)
        response = Response(reply.body or b"", status_code=reply.status)
        response.raw_headers = headers
        return response
