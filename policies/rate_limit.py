"""Rate limits: the tenant's plan, per-key, model-wide and anonymous per-IP limits.

Runs after auth (it charges the authenticated tenant) and before the cache: when the response
may come from the cache, the limit check and the cache lookup are one store round trip, and the
lookup's result is left in ``ctx`` for the cache policy. Every limited response carries the
``RateLimit-Policy`` and ``RateLimit`` headers; a refused one is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.caching import cache_spec, request_cache_key
from gateway.chain import RATELIMIT, Context, Next
from gateway.limits import Limiter, Subject, headers
from gateway.store import Limit


class RateLimitPolicy:
    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response:
        runtime = request.state.runtime
        limiter = runtime.limiter
        principal = ctx.extra.get("principal")
        tenant = ctx.extra.get("tenant_record")
        subject = Subject(
            tenant=ctx.tenant,
            plan=tenant.plan if tenant is not None else None,
            key_id=principal.subject
            if principal is not None and principal.via == "api_key"
            else None,
            client_ip=request.client.host if request.client else None,
            model=ctx.model,
        )
        limits = limiter.limits_for(subject)
        cache = await request_cache_key(request, ctx)
        if not limits and cache is None:
            return await call_next(request, ctx)
        lease = uuid.uuid4().hex if any(limit.kind == "concurrency" for limit in limits) else None
        spec = cache_spec(request, ctx) if cache is not None else None
        verdict, cached = await limiter.take(limits, lease, cache, spec.lock if spec else None)
        if cache is not None:
            ctx.extra["cache_lookup"] = cached
            if verdict.filling is not None:
                ctx.extra["cache_filling"] = verdict.filling
                if verdict.filling and spec is not None:
                    flights = request.app.state.gateway.services.flights
                    flights.hold("|".join(cache), spec.lock)
        fields = headers(limits, verdict)
        if limits:
            ctx.extra[RATELIMIT] = "allowed" if verdict.admitted else "rejected"
        if not verdict.admitted:
            rejection = limiter.rejection(verdict)
            rejection.headers.update(fields)
            raise rejection
        try:
            response = await call_next(request, ctx)
        except BaseException:
            if lease is not None:
                await limiter.release(limits, lease)
            raise
        response.headers.update(fields)
        if lease is not None:
            if isinstance(response, StreamingResponse):  # in flight until the body is sent
                response.body_iterator = _release_after(
                    response.body_iterator, limiter, limits, lease
                )
            else:
                await limiter.release(limits, lease)
        return response


async def _release_after(
    body: AsyncIterable[str | bytes | memoryview],
    limiter: Limiter,
    limits: Sequence[Limit],
    lease: str,
) -> AsyncIterator[str | bytes | memoryview]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        await limiter.release(limits, lease)
