"""The access log: one structured line per request, and the per-request bookkeeping behind it.

:class:`Observer` runs once when a request is answered (the last byte sent): it adds the
request to the metrics (``gateway.telemetry.metrics``) and to the tenant's usage
(``gateway.telemetry.usage``), names the server span's gateway
attributes and writes one ``gateway.access`` line (JSON by default; ``GATEWAY_LOG_FORMAT=text``)::

    {"time": "...", "level": "info", "logger": "gateway.access", "message": "access",
     "request_id": "...", "trace_id": "...", "method": "POST", "path": "/v2/models/m/infer",
     "status": 200, "bytes": 81, "tenant": "acme", "model": "m", "version": "2",
     "backend": "triton", "retries": 0, "cache": "miss", "batch": 8,
     "total_ms": 3.12, "gateway_ms": 0.41, "upstream_ms": 2.71}

Never a credential: no header is logged and the path is logged without its query string.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container

from opentelemetry.trace import Span

from gateway.call import Call
from gateway.telemetry.metrics import RequestMetrics
from gateway.telemetry.series.recorder import SeriesRecorder
from gateway.telemetry.timing import Timing
from gateway.telemetry.usage import UsageRecorder
from gateway.traffic.choose import TrafficControl

ACCESS = logging.getLogger("gateway.access")


class Observer:
    """Metrics, span attributes and the access line for one finished request."""

    __slots__ = ("access", "metrics", "series", "traffic", "usage")

    def __init__(
        self,
        metrics: RequestMetrics,
        access: bool,
        traffic: TrafficControl | None = None,
        series: SeriesRecorder | None = None,
        usage: UsageRecorder | None = None,
    ) -> None:
        self.metrics = metrics
        self.access = access
        self.traffic = traffic  # the rollout controller: which arm a version is, for traces
        self.series = series  # the live series (/admin/series)
        self.usage = usage  # per-tenant usage, counted here and written behind

    def done(
        self,
        method: str,
        path: str,
        status: int,
        sent: int,
        request_id: str,
        timing: Timing,
        span: Span | None,
        call: Call | None = None,
        models: Container[str] = (),
        protocol: str = "http",
        received: int | None = None,
    ) -> None:
        """One answered request: ``call`` when it became one, ``models`` the names the route
        table it ran on serves (an unknown name never becomes a label). ``sent`` and
        ``received`` (when the frontend knows it better than the call's payload: a gRPC
        message's size) are the answer's and the request's bytes."""
        total = time.perf_counter() - timing.started
        upstream = timing.upstream
        backend = timing.backend
        metrics = self.metrics
        if call is None:
            model = version = tenant = cache = ""
            batch = None
            metrics.observe("", "", status, backend, total, upstream, protocol)
        else:
            batch = call.batch
            model = call.model or ""
            if model and model not in models:
                model = ""
            # call.version and call.tenant, read here without their property calls
            resolved, caller = call.resolved, call.caller
            version = (resolved.version or "") if model and resolved is not None else ""
            tenant = (caller.principal.tenant or "") if caller is not None else ""
            cache = call.cache or ""
            metrics.observe(model, version, status, backend, total, upstream, protocol)
            if model and self.series is not None:  # a request of no model is not recorded
                self.series.record(model, version, status, total)
            if call.auth_failure is not None:
                metrics.auth_failure.inc(call.auth_failure)
            if call.limited is not None:
                metrics.ratelimit_decision.inc(call.limited)
            if self.usage is not None:
                self.usage.record(call, tenant, model, version, status, sent, received)
            if cache:
                metrics.cache_result.inc(cache)
        retries = timing.retries
        trace_id = None
        if span is not None:
            trace_id = format(span.get_span_context().trace_id, "032x")
            self._describe(
                span, request_id, tenant, model, version, backend, timing.replica, retries, cache
            )
            if batch is not None:
                span.set_attribute("gateway.batch_size", batch)
        if self.access and ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info(
                "access",
                extra={
                    "request_id": request_id,
                    "trace_id": trace_id,
                    "protocol": protocol,
                    "method": method,
                    "path": path,
                    "status": status,
                    "bytes": sent,
                    "tenant": tenant or None,
                    "model": model or None,
                    "version": version or None,
                    "backend": backend or None,
                    "retries": retries,
                    "cache": cache or None,
                    "batch": batch,
                    "total_ms": round(total * 1000, 3),
                    "gateway_ms": round(max(0.0, total - upstream) * 1000, 3),
                    "upstream_ms": round(upstream * 1000, 3),
                },
            )

    def _describe(
        self,
        span: Span,
        request_id: str,
        tenant: str,
        model: str,
        version: str,
        backend: str,
        replica: str,
        retries: int,
        cache: str,
    ) -> None:
        attributes: dict[str, str | int] = {"gateway.request_id": request_id}
        if tenant:
            attributes["gateway.tenant"] = tenant
        if model:
            attributes["gateway.model"] = model
        if version:
            attributes["gateway.version"] = version
            which = self.traffic.arm(model, version) if self.traffic is not None else None
            if which:
                attributes["gateway.canary_arm"] = which
        if backend:
            attributes["gateway.backend"] = backend
            attributes["gateway.replica"] = replica
            attributes["gateway.retries"] = retries
        if cache:
            attributes["gateway.cache"] = cache
        span.set_attributes(attributes)
