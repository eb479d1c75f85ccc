"""The circuit breaker: at most ``max_in_flight`` requests per backend; beyond it, 503 at once.

A backend that stops answering would otherwise collect every request of the gateway while
they wait out their timeouts; refusing early keeps the rest of the gateway serving.
"""

from __future__ import annotations

from gateway.errors import Overloaded
from gateway.telemetry.metrics import BackendMetrics


class CircuitBreaker:
    __slots__ = ("backend", "in_flight", "limit", "metrics")

    def __init__(self, backend: str, limit: int, metrics: BackendMetrics | None) -> None:
        self.backend = backend
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0

    def enter(self) -> None:
        """Count one request in, or trip: :class:`Overloaded` (503, ``Retry-After: 1``)."""
        metrics = self.metrics
        if self.in_flight >= self.limit:
            if metrics is not None:
                metrics.breaker_open.inc()
            raise Overloaded(
                f"backend {self.backend!r} has {self.in_flight} requests in flight",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        if metrics is not None:
            metrics.in_flight.inc()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.metrics is not None:
            self.metrics.in_flight.dec()
