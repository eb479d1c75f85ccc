"""The circuit breaker: at most ``max_in_flight`` requests per backend; beyond it, 503 at once.

A backend that stops answering would otherwise collect every request of the gateway while
they wait out their timeouts; refusing early keeps the rest of the gateway serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.errors import Overloaded
from gateway.telemetry.metrics import BackendMetrics


def adder(child: Any) -> Callable[[float], None]:
    """What a bound metric child's ``inc`` (and a gauge's ``dec``, with a negative amount)
    comes down to: its value's own ``inc``, without the checks that hold for a child bound
    once to its labels and counted by whole positive steps (``_raise_if_not_observable``, a
    negative amount, an exemplar). Three such updates cost 2-3 % of a request's
    instructions. The metric's own ``inc`` when ``prometheus_client`` keeps its value
    otherwise (tests pin that it does not)."""
    inc = getattr(getattr(child, "_value", None), "inc", None)
    return inc if callable(inc) else child.inc  # type: ignore[no-any-return]


class CircuitBreaker:
    __slots__ = ("_add", "backend", "in_flight", "limit", "metrics")

    def __init__(self, backend: str, limit: int, metrics: BackendMetrics | None) -> None:
        self.backend = backend
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0
        self._add = adder(metrics.in_flight) if metrics is not None else None

    def enter(self) -> None:
        """Count one request in, or trip: :class:`Overloaded` (503, ``Retry-After: 1``)."""
        if self.in_flight >= self.limit:
            metrics = self.metrics
            if metrics is not None:
                metrics.breaker_open.inc()
            raise Overloaded(
                f"backend {self.backend!r} has {self.in_flight} requests in flight",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        add = self._add
        if add is not None:
            add(1)

    def leave(self) -> None:
        self.in_flight -= 1
        add = self._add
        if add is not None:
            add(-1)
