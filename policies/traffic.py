"""Traffic: which version serves the request, decided once, after auth and before everything else.

A pinned request (``/versions/{v}`` or ``X-Model-Version``, allowed by the ``pin:<model>`` scope)
keeps its version. Otherwise the version comes from the model's split (``gateway.traffic``):
the rollout controller's live weights or routes.yaml's, without versions that have no healthy
replica, sticky per caller when the model says ``sticky:``, else smooth weighted round-robin.
The choice is left in ``ctx.version`` and ``request.state.resolved`` for every later step (the
cache key holds it). On the way back the version is reported in ``X-Model-Version``, the answer
is reported to the rollout controller, and a model with ``shadow:`` is offered the copy.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.chain import Context, Next
from gateway.errors import GatewayError
from gateway.shadow import ShadowWorker
from gateway.traffic import CHOOSE, VERSION_HEADER, Chooser, healthy, weights_of


class TrafficPolicy:
    def __init__(self) -> None:
        self.chooser = Chooser()  # one per worker process: the split's round-robin state

    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response:
        model = ctx.model
        runtime = request.state.runtime
        if ctx.extra.pop(CHOOSE, False) and model is not None:
            spec = runtime.table.models[model]
            control = request.app.state.gateway.services.traffic
            live = control.weights(model) if control is not None else None
            weights = healthy(runtime, model, weights_of(spec, live))
            chosen = self.chooser.choose(model, weights, _sticky_key(spec, request, ctx))
            request.state.resolved = runtime.resolve(model, chosen)
            ctx.version = chosen
        version = ctx.version
        if model is None or version is None:
            return await call_next(request, ctx)
        if not (ctx.required and ctx.required[0].startswith("predict:")):
            response = await call_next(request, ctx)
            response.headers.setdefault(VERSION_HEADER, version)
            return response
        started = time.perf_counter()
        try:
            response = await call_next(request, ctx)
        except GatewayError as exc:
            exc.headers.setdefault(VERSION_HEADER, version)
            _observe(request, runtime, model, version, exc.status, time.perf_counter() - started)
            raise
        seconds = time.perf_counter() - started
        response.headers.setdefault(VERSION_HEADER, version)
        _observe(request, runtime, model, version, response.status_code, seconds, response)
        return response


def _sticky_key(spec: Any, request: Request, ctx: Context) -> str | None:
    """What identifies the caller for ``sticky:``; None (round-robin) when there is nothing."""
    sticky = spec.sticky
    if sticky is None:
        return None
    if sticky.by == "tenant":
        return ctx.tenant
    if sticky.by == "api_key":
        principal = ctx.extra.get("principal")
        return principal.subject if principal is not None and principal.via == "api_key" else None
    if sticky.by == "header":
        return request.headers.get(sticky.name)
    return request.cookies.get(sticky.name)


def _observe(
    request: Request,
    runtime: Any,
    model: str,
    version: str,
    status: int,
    seconds: float,
    response: Response | None = None,
) -> None:
    """The answer, for the rollout controller and, on a model with ``shadow:``, the mirror."""
    gateway = request.app.state.gateway
    control = gateway.services.traffic
    if control is not None:
        control.observe(model, version, status, seconds)
    spec = runtime.table.models.get(model)
    shadow: ShadowWorker | None = getattr(request.app.state, "shadow", None)
    if spec is None or spec.shadow is None or shadow is None:
        return
    body = getattr(request, "_body", None)  # read by the endpoint (gateway.http_body)
    answer = getattr(response, "body", None)
    cached = response.headers.get("cache-status", "") if response is not None else ""
    if "hit" in cached or "collapsed" in cached:
        answer = None  # not this version's work: nothing to compare the shadow's with
    protocol = "v1" if request.scope["path"].startswith("/v1/") else "v2"
    shadow.offer(runtime, spec, model, version, status, protocol, body, answer, seconds)
