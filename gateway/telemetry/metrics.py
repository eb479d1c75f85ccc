"""Request and backend metrics (Prometheus), and ``/metrics`` in one or several worker processes.

With several workers (``gateway serve --workers N``), ``PROMETHEUS_MULTIPROC_DIR`` is set
before they start (``gateway.cli``): every worker writes its values to files there and
``/metrics`` adds them up, whichever worker answers (``prometheus_client`` multiprocess mode).

The per-request cost is a dict lookup of pre-bound label sets, then a few increments of plain
ints and floats, folded into the Prometheus children when ``/metrics`` collects them
(``telemetry.tally``).
The model and version labels are bounded (``GATEWAY_METRICS_MAX_MODELS``,
:class:`~gateway.telemetry.cardinality.ModelLabels`): past the first models a worker counts,
a model's requests are counted under ``model="other", version="other"``.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS, ModelLabels
from gateway.telemetry.tally import MULTIPROC_ENV as MULTIPROC_ENV
from gateway.telemetry.tally import Buckets, ByLabel, Count, Folded

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_MAX_BOUND = 4096  # names seen (model, version, status, backend, protocol) kept pre-bound
_Key = tuple[str, str, int, str, str]  # model, version, status, backend, protocol


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition of ``registry``; in multiprocess mode, of every worker's files instead."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    """Drop this worker's live gauges from the multiprocess files (at shutdown)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Bound:
    """One label set's tallies: the request count and its three histograms (the last two
    shared by every label set of the same model and backend)."""

    __slots__ = ("duration", "overhead", "requests", "upstream")

    def __init__(self, requests: Count, duration: Buckets, overhead: Buckets, upstream: Buckets):
        self.requests = requests
        self.duration = duration
        self.overhead = overhead
        self.upstream = upstream


class RequestMetrics:
    """What every request adds: counts and latencies, auth failures, limit and cache results.

    ``models`` decides which models have labels of their own (shared with the other metrics
    of the worker that have a model label); the rest are counted as ``other``. A request adds
    to plain counters (``telemetry.tally``), folded into these metrics when they are
    collected."""

    def __init__(self, registry: CollectorRegistry, models: ModelLabels | None = None) -> None:
        self.models = models if models is not None else ModelLabels(DEFAULT_MAX_MODELS)
        labels = ["model", "version", "status_class", "backend", "protocol"]
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by model, version, status class (2xx...; a gRPC call's is its "
            "error's HTTP equivalent), backend and protocol (http, grpc, job: an async job's run).",
            labels,
            registry=None,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Whole request time in the gateway, first byte in to last byte out.",
            labels,
            buckets=_BUCKETS,
            registry=None,
        )
        self.overhead = Histogram(
            "gateway_overhead_duration_seconds",
            "The gateway's own share of a request: total minus time waiting on model servers.",
            ["model", "backend"],
            buckets=_OVERHEAD_BUCKETS,
            registry=None,
        )
        self.upstream = Histogram(
            "gateway_upstream_duration_seconds",
            "Time a request waited on model servers (every attempt), when it reached one.",
            ["model", "backend"],
            buckets=_BUCKETS,
            registry=None,
        )
        self.auth_failures = Counter(
            "gateway_auth_failures",
            "Requests refused by authentication or authorization, by reason.",
            ["reason"],
            registry=None,
        )
        self.ratelimit = Counter(
            "gateway_ratelimit_decisions",
            "Rate-limit checks, by decision (allowed, rejected).",
            ["decision"],
            registry=None,
        )
        self.cache = Counter(
            "gateway_cache_requests",
            "Requests to cached models, by result (hit, miss, stale, collapsed, bypass).",
            ["result"],
            registry=None,
        )
        self.folded = Folded(
            registry,
            (
                self.requests,
                self.duration,
                self.overhead,
                self.upstream,
                self.auth_failures,
                self.ratelimit,
                self.cache,
            ),
        )
        self._direct = self.folded.direct
        self.auth_failure = ByLabel(self.folded, self.auth_failures)
        self.ratelimit_decision = ByLabel(self.folded, self.ratelimit)
        self.cache_result = ByLabel(self.folded, self.cache)
        self._bound: dict[_Key, _Bound] = {}  # by the names seen: the per-request lookup
        self._children: dict[tuple[str, ...], _Bound] = {}  # by labels: bounded by the model cap
        self._pairs: dict[tuple[str, str], tuple[Buckets, Buckets]] = {}  # by (model, backend)

    def _bind(self, key: _Key) -> _Bound:
        model, version, status, backend, protocol = key
        model, version = self.models.pair(model, version)
        labels = (model, version, _CLASSES[min(status // 100, 5)], backend, protocol)
        bound = self._children.get(labels)
        if bound is None:
            folded = self.folded
            pair = self._pairs.get((model, backend))
            if pair is None:
                pair = self._pairs[(model, backend)] = (
                    folded.buckets(self.overhead.labels(model, backend), _OVERHEAD_BUCKETS),
                    folded.buckets(self.upstream.labels(model, backend), _BUCKETS),
                )
            bound = self._children[labels] = _Bound(
                folded.count(self.requests.labels(*labels)),
                folded.buckets(self.duration.labels(*labels), _BUCKETS),
                *pair,
            )
        if len(self._bound) < _MAX_BOUND:
            self._bound[key] = bound
        return bound

    def observe(
        self,
        model: str,
        version: str,
        status: int,
        backend: str,
        total: float,
        upstream: float,
        protocol: str = "http",
    ) -> None:
        key = (model, version, status, backend, protocol)
        bound = self._bound.get(key) or self._bind(key)
        overhead = total - upstream if total > upstream else 0.0
        if self._direct:
            bound.requests.child.inc()
            bound.duration.child.observe(total)
            bound.overhead.child.observe(overhead)
            if upstream:
                bound.upstream.child.observe(upstream)
            return
        bound.requests.n += 1  # and each histogram's observation (see tally.Buckets)
        tally = bound.duration
        tally.counts[bisect_left(_BUCKETS, total)] += 1
        tally.sum += total
        tally = bound.overhead
        tally.counts[bisect_left(_OVERHEAD_BUCKETS, overhead)] += 1
        tally.sum += overhead
        if upstream:
            tally = bound.upstream
            tally.counts[bisect_left(_BUCKETS, upstream)] += 1
            tally.sum += upstream


_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class PoolMetrics:
    """Backends: replica health, ejections, circuit-breaker refusals, retries, attempts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.replica_up = Gauge(
            "gateway_backend_replica_up",
            "1 while a replica takes traffic, 0 while it is ejected or not ready.",
            ["backend", "replica"],
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.ejections = Counter(
            "gateway_backend_ejections",
            "Replicas ejected by outlier detection (consecutive local failures).",
            ["backend", "replica"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "gateway_backend_in_flight",
            "Requests in flight to a backend (the circuit breaker opens at max_in_flight).",
            ["backend"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.breaker_open = Counter(
            "gateway_backend_circuit_open",
            "Requests refused at once because the backend had max_in_flight in flight.",
            ["backend"],
            registry=registry,
        )
        self.retries = Counter(
            "gateway_backend_retries",
            "Upstream attempts after the first one (another replica).",
            ["backend"],
            registry=registry,
        )
        self.attempts = Counter(
            "gateway_backend_attempts",
            "Upstream attempts, by outcome (ok, retryable, timeout, error).",
            ["backend", "outcome"],
            registry=registry,
        )

    def bind(self, backend: str) -> BackendMetrics:
        return BackendMetrics(self, backend)


class BackendMetrics:
    """One backend's children, bound once when its pool is built."""

    __slots__ = ("_metrics", "attempt", "backend", "breaker_open", "in_flight", "retries")

    def __init__(self, metrics: PoolMetrics, backend: str) -> None:
        self._metrics = metrics
        self.backend = backend
        self.in_flight = metrics.in_flight.labels(backend)
        self.breaker_open = metrics.breaker_open.labels(backend)
        self.retries = metrics.retries.labels(backend)
        outcomes = ("ok", "retryable", "timeout", "error")
        self.attempt: dict[str, Any] = {o: metrics.attempts.labels(backend, o) for o in outcomes}

    def replica_up(self, replica: str, up: bool) -> None:
        self._metrics.replica_up.labels(self.backend, replica).set(1 if up else 0)

    def ejected(self, replica: str) -> None:
        self._metrics.ejections.labels(self.backend, replica).inc()
        self.replica_up(replica, False)


class LogMetrics:
    """Log lines lost because the log sink was not keeping up (``telemetry.log_queue``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "gateway_log_dropped",
            "Log lines dropped because the log queue was full (the sink was not reading).",
            registry=registry,
        )
