"""The batcher's metrics: batch sizes, time queued and refusals, per model and version (the
model label bounded by ``GATEWAY_METRICS_MAX_MODELS``: ``gateway.telemetry.cardinality``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS, ModelLabels

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class BatchMetrics:
    """``gateway_batch_size`` (rows per batch sent), ``gateway_batch_queue_wait_seconds`` (per
    request, from joining the queue to its batch being sent) and ``gateway_batch_rejected``
    (``full``: 503; ``deadline``: 504 while queued)."""

    def __init__(self, registry: CollectorRegistry, models: ModelLabels | None = None) -> None:
        self.models = models if models is not None else ModelLabels(DEFAULT_MAX_MODELS)
        labels = ["model", "version"]
        self.size = Histogram(
            "gateway_batch_size",
            "Rows (first dimension) per batch sent to a backend, by model and version.",
            labels,
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.wait = Histogram(
            "gateway_batch_queue_wait_seconds",
            "Time a request waited in its version's batch queue before its batch was sent.",
            labels,
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "gateway_batch_rejected",
            "Requests refused by a batch queue: full (503) or deadline passed while queued (504).",
            [*labels, "reason"],
            registry=registry,
        )

    def bind(self, model: str, version: str) -> BoundBatchMetrics:
        model, version = self.models.pair(model, version)
        return BoundBatchMetrics(
            self.size.labels(model, version),
            self.wait.labels(model, version),
            self.rejected.labels(model, version, "full"),
            self.rejected.labels(model, version, "deadline"),
        )


@dataclass(frozen=True, slots=True)
class BoundBatchMetrics:
    """One version's children, bound once when its queue is made."""

    size: Any
    wait: Any
    full: Any
    deadline: Any
