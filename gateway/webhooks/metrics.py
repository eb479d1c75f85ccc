"""Webhook metrics: deliveries by outcome, and the time of each attempt."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

Outcome = Literal["delivered", "retried", "dead"]
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "gateway_webhook_deliveries",
            "Webhook attempts by outcome: delivered (2xx), retried (to be tried again), dead "
            "(out of attempts: in the dead letters).",
            ["outcome"],
            registry=registry,
        )
        self.attempt = Histogram(
            "gateway_webhook_attempt_duration_seconds",
            "One webhook attempt, from the address check to the receiver's status, by result "
            "(ok: a 2xx; error: anything else).",
            ["result"],
            buckets=_BUCKETS,
            registry=registry,
        )
        for outcome in ("delivered", "retried", "dead"):
            self.deliveries.labels(outcome)
        for result in ("ok", "error"):
            self.attempt.labels(result)

    def outcome(self, outcome: Outcome) -> None:
        self.deliveries.labels(outcome).inc()
