"""Rate limits: the tenant's plan, per-key, model-wide and anonymous per-IP limits.

Runs after auth (it charges the authenticated caller) and traffic (a model's own limit), and
before the cache: when the answer may come from the cache, the limit check and the cache lookup
are one store round trip (the cache's ``probe``), whose result is left in ``call.probe`` for
the cache step. Every limited answer carries the ``RateLimit-Policy`` and ``RateLimit``
headers; a refused call is a 429 with ``Retry-After``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar, Self

from gateway.call import CALL_KINDS, Call, Caller, CallKind, Next, Reply
from gateway.config.live import Runtime
from gateway.limits.limiter import Applied, Limiter, Subject, headers
from gateway.store import Limit

_KEY_CALLERS = 10_000  # API key callers whose limits are kept (see RateLimitPolicy._key)


class RateLimitPolicy:
    name: ClassVar[str] = "ratelimit"  # its span: "policy ratelimit"
    kinds: ClassVar[frozenset[CallKind]] = frozenset(CALL_KINDS)

    def __init__(self, runtime: Runtime) -> None:
        self.limiter = runtime.limiter
        self.cache = runtime.cache
        # API key callers' limits by (id(caller), model): see _key
        self.by_key: dict[tuple[int, str | None], tuple[Caller, Applied]] = {}

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        """None when the route table can give no call a limit (no plans, no anonymous limit,
        no model's own) and no call a cache lookup: then there is no step to run."""
        table = runtime.table
        limited = (
            bool(table.plans)
            or table.rate_limits.anonymous is not None
            or any(model.limits is not None for model in table.models.values())
        )
        return cls(runtime) if limited or runtime.cache.specs else None

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        limiter = self.limiter
        caller = call.caller
        principal = caller.principal if caller is not None else None
        if principal is not None and principal.via == "api_key" and principal.tenant is not None:
            known = self.by_key.get((id(caller), call.model))
            applied = known[1] if known is not None and known[0] is caller else self._key(call)
        else:
            applied = limiter.applied(_subject(call))
        limits = applied.limits
        lookup = self.cache.probe(call) if call.kind == "infer" else None
        probe = await lookup if lookup is not None else None
        if not limits and probe is None:
            return await call_next(call)
        lease = uuid.uuid4().hex if applied.held else None
        verdict = await limiter.take(limits, lease, probe)
        call.probe = probe
        fields = headers(applied, verdict)
        if limits:
            call.limited = "allowed" if verdict.admitted else "rejected"
        if not verdict.admitted:
            rejection = limiter.rejection(verdict)
            rejection.headers.update(fields)
            raise rejection
        try:
            reply = await call_next(call)
        except BaseException:
            if lease is not None:
                await limiter.release(limits, lease)
            raise
        reply.headers.extend(fields.items())
        if lease is not None:
            if reply.stream is not None:  # in flight until the body is sent
                _release_when_done(reply, _Release(limiter, limits, lease))
            else:
                await limiter.release(limits, lease)
        return reply

    def _key(self, call: Call) -> Applied:
        """An API key caller's limits: the authenticator hands out one Caller per key record
        and tenant record, so they are kept by its identity (and the model), without a
        Subject to make and hash per request (its tenant's: the peer's address does not count).
        A changed record is another Caller. The memo holds the Caller (its id is not reused
        meanwhile); it is bounded."""
        caller = call.caller
        assert caller is not None
        applied = self.limiter.applied(_subject(call))
        if len(self.by_key) >= _KEY_CALLERS:
            self.by_key.clear()
        self.by_key[id(caller), call.model] = (caller, applied)
        return applied


def _subject(call: Call) -> Subject:
    caller = call.caller
    principal = caller.principal if caller is not None else None
    tenant = caller.tenant if caller is not None else None
    return Subject(
        tenant=principal.tenant if principal is not None else None,
        plan=tenant.plan if tenant is not None else None,
        key_id=principal.subject if principal is not None and principal.via == "api_key" else None,
        client_ip=call.peer,
        model=call.model,
    )


class _Release:
    """Gives a concurrency slot back once, whichever of the stream's end or its close comes
    first (a client that leaves before the first chunk never runs the stream at all)."""

    def __init__(self, limiter: Limiter, limits: Sequence[Limit], lease: str) -> None:
        self.limiter, self.limits, self.lease = limiter, limits, lease
        self.done = False

    async def __call__(self) -> None:
        if not self.done:
            self.done = True
            await self.limiter.release(self.limits, self.lease)


def _release_when_done(reply: Reply, release: _Release) -> None:
    body, close = reply.stream, reply.close
    if body is None:
        return

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            await release()

    async def closed() -> None:
        try:
            if close is not None:
                await close()
        finally:
            await release()

    reply.stream, reply.close = stream(), closed
