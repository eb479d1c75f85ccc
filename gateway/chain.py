"""The per-request Context and the Policy contract the policy chain is built from.

A policy is ``async def __call__(request, ctx, call_next) -> Response``: it may answer at once
(401, 429, a cache hit) or call the next step and look at the response on its way back.
Policies are stateless; per-request state lives in ``ctx``. A policy's constructor keywords are
its routes.yaml schema. The chain is built once per route table, not per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Tracer
from starlette.requests import Request
from starlette.responses import Response

from gateway import tracing

Next = Callable[[Request, "Context"], Awaitable[Response]]
# ctx.extra keys the policies leave for the metrics and the access log (gateway.access_log)
AUTH_FAILURE = "observe.auth_failure"  # why authentication or authorization refused the call
RATELIMIT = "observe.ratelimit"  # the rate-limit decision: "allowed" or "rejected"


@dataclass(slots=True)
class Context:
    """What one request carries through the chain. Route choice is made once and kept here."""

    request_id: str
    model: str | None = None
    version: str | None = None
    pinned: bool = False
    required: tuple[str, ...] = ()  # the scopes this call needs (set by the endpoint)
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """One step of the chain: auth, rate limit, cache, traffic choice, ..."""

    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response: ...


def build_chain(policies: Sequence[Policy], terminal: Next) -> Next:
    """Compose ``policies`` in order around ``terminal`` (the step that calls the backend).

    With tracing on (decided here, once), each step runs in a span of its own."""
    step = terminal
    tracer = tracing.TRACER
    for policy in reversed(policies):
        step = _bind(policy, step) if tracer is None else _traced(policy, step, tracer)
    return step


def _bind(policy: Policy, call_next: Next) -> Next:
    async def step(request: Request, ctx: Context) -> Response:
        return await policy(request, ctx, call_next)

    return step


def _traced(policy: Policy, call_next: Next, tracer: Tracer) -> Next:
    """The step in a span covering the policy's own work: the span ends when the policy hands
    on to the next step (or answers), so the steps are siblings under the server span and each
    one's duration is its own cost."""
    name = "policy " + getattr(policy, "name", type(policy).__name__.removesuffix("Policy").lower())

    async def step(request: Request, ctx: Context) -> Response:
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).is_recording():
            # Not sampled: a child span would record nothing, so make none (sampled-out
            # requests then cost about what they cost with tracing off).
            return await policy(request, ctx, call_next)
        span = tracer.start_span(name, context=parent)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        ended = False

        async def downstream(request: Request, ctx: Context) -> Response:
            nonlocal ended
            if not ended:
                ended = True
                span.end()
            inner = otel_context.attach(parent)
            try:
                return await call_next(request, ctx)
            finally:
                otel_context.detach(inner)

        try:
            return await policy(request, ctx, downstream)
        except Exception as exc:
            if not ended:
                span.set_attribute("error.type", getattr(exc, "code", type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            if not ended:
                span.end()

    return step
