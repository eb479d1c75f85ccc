"""The circuit breaker's count and the metrics it keeps, read back from the registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gateway.backends.breaker import CircuitBreaker, adder
from gateway.errors import Overloaded
from gateway.telemetry.metrics import PoolMetrics


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_in_flight_is_exported_as_the_breaker_counts_and_a_trip_is_counted() -> None:
    registry = CollectorRegistry()
    breaker = CircuitBreaker("b", 2, PoolMetrics(registry).bind("b"))
    breaker.enter()
    breaker.enter()
    assert _value(registry, "gateway_backend_in_flight", backend="b") == 2
    with pytest.raises(Overloaded):
        breaker.enter()
    assert _value(registry, "gateway_backend_circuit_open_total", backend="b") == 1
    breaker.leave()
    assert breaker.in_flight == 1
    assert _value(registry, "gateway_backend_in_flight", backend="b") == 1
    breaker.leave()
    assert _value(registry, "gateway_backend_in_flight", backend="b") == 0


def test_the_adder_is_the_metric_values_own_inc() -> None:
    """Pins what ``adder`` relies on in prometheus_client: a bound child keeps its value in
    ``_value``, whose ``inc`` counts (an upgrade that changes this fails here, not silently
    in production, where ``adder`` would fall back on the public ``inc``)."""
    metrics = PoolMetrics(CollectorRegistry()).bind("b")
    for child in (metrics.in_flight, metrics.attempt["ok"]):
        assert adder(child) == child._value.inc

    class Plain:
        def inc(self, amount: float = 1) -> None: ...

    plain = Plain()
    assert adder(plain) == plain.inc


def test_attempts_are_counted_through_the_adder() -> None:
    registry = CollectorRegistry()
    ok = adder(PoolMetrics(registry).bind("b").attempt["ok"])
    ok(1)
    ok(1)
    assert _value(registry, "gateway_backend_attempts_total", backend="b", outcome="ok") == 2
