"""Rate limits for one request: which apply, asking the store, the failure mode, the headers.

Limits that can apply together (a request passes only if all admit it, and a refused request
consumes nothing): the tenant's plan (a token bucket ``rate``/``burst``, fixed-window
``quota`` s, in-flight ``concurrency``, a bucket ``per_key``), a model-wide bucket, and a
per-IP bucket for calls without credentials. A tenant's limits share one hash slot, so they are
decided in one atomic Lua call on the server's clock.

When the store does not answer within ``store_timeout``: ``fail_open`` admits on an in-process
bucket with the same limits (so an outage does not mean unlimited), ``fail_closed`` answers 503.
Either way the outage is counted in ``gateway_ratelimit_store_failures_total``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil, floor
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter

from gateway.call import CacheProbe
from gateway.config.model import RouteTable
from gateway.deadline import Deadlines
from gateway.errors import GatewayError, LimitsUnavailable, QuotaExhausted, RateLimited
from gateway.limits.config import LimitSpec, Plan
from gateway.store import Limit, MemoryStore, Store, Verdict

logger = logging.getLogger("gateway.limits")
_MEMO_SIZE = 10_000


class LimiterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.store_failures = Counter(
            "gateway_ratelimit_store_failures",
            "Limit checks the store did not answer, by the failure mode applied.",
            ["mode"],
            registry=registry,
        )
        self.rejected = Counter(
            "gateway_ratelimit_rejected",
            "Requests refused with 429, by the limit that refused them.",
            ["limit"],
            registry=registry,
        )


class Subject(NamedTuple):
    """Who a request is charged to (a tuple: made and hashed on every request)."""

    tenant: str | None
    plan: str | None
    key_id: str | None
    client_ip: str | None
    model: str | None


@dataclass(frozen=True, slots=True)
class Applied:
    """The limits that apply to a subject, and what is the same on each of its requests."""

    limits: tuple[Limit, ...]  # a tuple: the store may know it by identity (its plan memo)
    held: bool  # a concurrency limit among them: a take needs a lease
    policy: str  # the RateLimit-Policy field
    names: tuple[str, ...]  # each limit's name, quoted, for the RateLimit field

    @classmethod
    def of(cls, limits: Sequence[Limit]) -> Applied:
        names = tuple(f'"{limit.name}"' for limit in limits)
        policy = []
        for name, limit in zip(names, limits, strict=True):
            if limit.kind == "bucket":
                window = limit.limit / limit.rate if limit.rate else 1.0
                policy.append(f"{name};q={_int(limit.limit)};w={max(1, math.ceil(window))}")
            elif limit.kind == "window":
                policy.append(f"{name};q={_int(limit.limit)};w={_int(limit.window)}")
            else:
                policy.append(f"{name};q={_int(limit.limit)}")
        held = any(limit.kind == "concurrency" for limit in limits)
        return cls(tuple(limits), held, ", ".join(policy), names)


def _bucket(group: str, name: str, spec: LimitSpec) -> Limit:
    return Limit(group, name, "bucket", spec.capacity, rate=spec.per_second)


def plan_limits(group: str, plan: Plan, key_id: str | None) -> list[Limit]:
    limits = []
    bucket = plan.bucket()
    if bucket is not None:
        limits.append(_bucket(group, "rate", bucket))
    for count, seconds in plan.quota:
        limits.append(
            Limit(group, f"quota-{_window_name(seconds)}", "window", count, window=seconds)
        )
    if plan.concurrency is not None:
        limits.append(Limit(group, "concurrency", "concurrency", float(plan.concurrency)))
    if plan.per_key is not None and key_id is not None:
        limits.append(_bucket(group, f"key-{key_id}", plan.per_key))
    return limits


def _window_name(seconds: float) -> str:
    names = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day", 2592000.0: "month"}
    return names.get(seconds, f"{seconds:g}s")


class Limiter:
    """The limits of one route table, checked against the store (or the local fallback)."""

    def __init__(
        self, table: RouteTable, store: Store, fallback: MemoryStore, metrics: LimiterMetrics
    ) -> None:
        self.table = table
        self.config = table.rate_limits
        self.store = store
        self.fallback = fallback
        self.metrics = metrics
        self._memo: dict[Subject, Applied] = {}
        self._deadlines = Deadlines(self.config.store_timeout)  # one timer for every take

    def limits_for(self, subject: Subject) -> list[Limit]:
        """The limits that apply."""
        return list(self.applied(subject).limits)

    def applied(self, subject: Subject) -> Applied:
        """The limits that apply, built once per subject for this route table (they are the
        same on every request of a caller); the memo is bounded."""
        applied = self._memo.get(subject)
        if applied is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            applied = self._memo[subject] = Applied.of(self._limits_for(subject))
        return applied

    def _limits_for(self, subject: Subject) -> list[Limit]:
        limits: list[Limit] = []
        if subject.tenant is not None:
            plan_name = subject.plan or self.config.default_plan
            plan = self.table.plans.get(plan_name) if plan_name else None
            if plan is not None:
                limits += plan_limits(f"t:{subject.tenant}", plan, subject.key_id)
        elif self.config.anonymous is not None and subject.client_ip is not None:
            limits.append(_bucket(f"ip:{subject.client_ip}", "anonymous", self.config.anonymous))
        model = self.table.models.get(subject.model) if subject.model else None
        if model is not None and model.limits is not None:
            limits.append(_bucket(f"m:{subject.model}", "model", model.limits))
        return limits

    async def take(
        self, limits: Sequence[Limit], lease: str | None, probe: CacheProbe | None = None
    ) -> Verdict:
        """Ask the store, within the timeout, in one round trip: the limits and, with a
        ``probe``, the cache entry (its lookup and fill lock, written into the probe)."""
        deadline = self._deadlines.start()
        try:
            if probe is None:
                verdict, _ = await self.store.take(limits, lease=lease)
                return verdict
            verdict, found = await self.store.take(
                limits, lease=lease, cache=(probe.group, probe.key), lock=probe.lock
            )
            probe.found, probe.filling, probe.read = found, verdict.filling, True
            return verdict
        except asyncio.CancelledError:
            if not deadline.passed():
                raise
            failure: Exception = TimeoutError()
        except (TimeoutError, GatewayError) as exc:
            if isinstance(exc, GatewayError) and exc.status != 503:
                raise
            failure = exc
        finally:
            deadline.end()
        return await self._unavailable(failure, limits, lease, probe)

    async def _unavailable(
        self,
        failure: Exception,
        limits: Sequence[Limit],
        lease: str | None,
        probe: CacheProbe | None,
    ) -> Verdict:
        """The failure mode, when the store did not answer a take."""
        mode = self.config.failure_mode
        self.metrics.store_failures.labels(mode).inc()
        logger.warning("limit store unavailable", extra={"mode": mode})
        if mode == "fail_closed":
            raise LimitsUnavailable(
                "rate limits cannot be checked right now", headers={"Retry-After": "1"}
            ) from failure
        verdict, _ = await self.fallback.take(limits, lease=lease)
        if probe is not None:
            probe.read = True  # no cache lookup during an outage: a miss
        return verdict

    async def release(self, limits: Sequence[Limit], lease: str) -> None:
        concurrency = [limit for limit in limits if limit.kind == "concurrency"]
        if not concurrency:
            return
        for store in (self.store, self.fallback):
            try:
                async with asyncio.timeout(max(self.config.store_timeout, 0.5)):
                    await store.release(concurrency, lease)
            except (TimeoutError, GatewayError):
                logger.warning("could not release a concurrency lease; it will expire")

    def rejection(self, verdict: Verdict) -> RateLimited:
        blocking = [s for s in verdict.states if s.remaining < 1]
        for state in blocking:
            self.metrics.rejected.labels(state.name.split("-")[0]).inc()
        names = ", ".join(sorted({s.name for s in blocking})) or "rate"
        quota = any(s.name.startswith("quota-") for s in blocking)
        return (QuotaExhausted if quota else RateLimited)(
            f"rate limit exceeded ({names}); retry in {verdict.retry_after:.2f}s",
            headers={"Retry-After": str(max(1, math.ceil(verdict.retry_after)))},
        )


def headers(applied: Applied, verdict: Verdict) -> dict[str, str]:
    """The IETF RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers)."""
    states = verdict.states
    if not states:
        return {}
    fields = [
        f"{name};r={max(0, floor(state.remaining))};t={max(0, ceil(state.reset))}"
        for name, state in zip(applied.names, states, strict=False)
    ]
    current = fields[0] if len(fields) == 1 else ", ".join(fields)
    return {"RateLimit-Policy": applied.policy, "RateLimit": current}


def _int(value: float) -> int:
    return int(value) if value == int(value) else math.ceil(value)
