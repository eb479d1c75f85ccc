"""The access log: one structured line per request, and the per-request bookkeeping behind it.

:class:`Observer` runs once when a request is answered (the last byte sent): it adds the
request to the metrics (``gateway.metrics``), names the server span's gateway attributes and
writes one ``gateway.access`` line (JSON by default; ``GATEWAY_LOG_FORMAT=text``)::

    {"time": "...", "level": "info", "logger": "gateway.access", "message": "access",
     "request_id": "...", "trace_id": "...", "method": "POST", "path": "/v2/models/m/infer",
     "status": 200, "bytes": 81, "tenant": "acme", "model": "m", "version": "2",
     "backend": "triton", "retries": 0, "cache": "miss",
     "total_ms": 3.12, "gateway_ms": 0.41, "upstream_ms": 2.71}

Never a credential: no header is logged and the path is logged without its query string.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from opentelemetry.trace import Span

from gateway.chain import AUTH_FAILURE, RATELIMIT, Context
from gateway.metrics import RequestMetrics
from gateway.timing import Timing

ACCESS = logging.getLogger("gateway.access")
_CACHE_STATUS = b"cache-status"


def cache_result(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """``hit``, ``collapsed``, ``stale``, ``miss``, ``bypass`` from ``Cache-Status``, or ''."""
    for key, value in headers:
        if key.lower() == _CACHE_STATUS:
            text = value.decode("latin-1")
            if "; hit" in text:
                return "hit"
            if "collapsed" in text:
                return "collapsed"
            if "fwd=stale" in text:
                return "stale"
            if "fwd=miss" in text:
                return "miss"
            return "bypass"  # fwd=request: no-cache / no-store
    return ""


class Observer:
    """Metrics, span attributes and the access line for one finished request."""

    __slots__ = ("access", "metrics", "traffic")

    def __init__(self, metrics: RequestMetrics, access: bool, traffic: Any = None) -> None:
        self.metrics = metrics
        self.access = access
        self.traffic = traffic  # the rollout controller: which arm a version is, for traces

    def done(
        self,
        scope: MutableMapping[str, Any],
        ctx: Context,
        timing: Timing,
        status: int,
        sent: int,
        cache: str,
        span: Span | None,
    ) -> None:
        total = time.perf_counter() - timing.started
        upstream = timing.upstream
        runtime = scope["state"].get("runtime")
        model = ctx.model or ""
        if model and (runtime is None or model not in runtime.table.models):
            model = ""  # an unknown name never becomes a label
        version = (ctx.version or "") if model else ""
        backend = timing.backend
        metrics = self.metrics
        metrics.observe(model, version, status, backend, total, upstream)
        extra = ctx.extra
        if extra:
            failure = extra.get(AUTH_FAILURE)
            if failure is not None:
                metrics.auth_failures.labels(failure).inc()
            decision = extra.get(RATELIMIT)
            if decision is not None:
                metrics.ratelimit.labels(decision).inc()
        if cache:
            metrics.cache.labels(cache).inc()
        retries = max(0, timing.attempts - 1)
        trace_id = None
        if span is not None:
            trace_id = format(span.get_span_context().trace_id, "032x")
            self._describe(span, ctx, model, version, backend, timing.replica, retries, cache)
        if self.access and ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info(
                "access",
                extra={
                    "request_id": ctx.request_id,
                    "trace_id": trace_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "bytes": sent,
                    "tenant": ctx.tenant,
                    "model": model or None,
                    "version": version or None,
                    "backend": backend or None,
                    "retries": retries,
                    "cache": cache or None,
                    "total_ms": round(total * 1000, 3),
                    "gateway_ms": round(max(0.0, total - upstream) * 1000, 3),
                    "upstream_ms": round(upstream * 1000, 3),
                },
            )

    def _describe(
        self,
        span: Span,
        ctx: Context,
        model: str,
        version: str,
        backend: str,
        replica: str,
        retries: int,
        cache: str,
    ) -> None:
        attributes: dict[str, str | int] = {"gateway.request_id": ctx.request_id}
        if ctx.tenant:
            attributes["gateway.tenant"] = ctx.tenant
        if model:
            attributes["gateway.model"] = model
        if version:
            attributes["gateway.version"] = version
            arm = getattr(self.traffic, "arm", None)
            which = arm(model, version) if arm is not None else None
            if which:
                attributes["gateway.canary_arm"] = which
        if backend:
            attributes["gateway.backend"] = backend
            attributes["gateway.replica"] = replica
            attributes["gateway.retries"] = retries
        if cache:
            attributes["gateway.cache"] = cache
        span.set_attributes(attributes)
