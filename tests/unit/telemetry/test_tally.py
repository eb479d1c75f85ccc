"""The observer's figures counted in place (``telemetry.tally``) scrape exactly as the same
requests counted straight into ``prometheus_client``'s children (multiprocess mode's path,
the way every request was counted before)."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.telemetry.cardinality import ModelLabels
from gateway.telemetry.metrics import RequestMetrics
from gateway.telemetry.tally import MULTIPROC_ENV
from gateway.telemetry.usage import TenantRequests

Request = tuple[str, str, int, str, float, float, str, str, str]
_STATUSES = (200, 200, 201, 204, 304, 400, 401, 404, 429, 499, 500, 502, 503, 504)
_LATENCIES = (0.0, 0.0001, 0.001, 0.0025, 0.00251, 0.005, 0.1, 0.7, 1.0, 29.9, 30.0, 31.0, 90.0)


class Observed:
    """The metrics one observer adds to, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics(self.registry, ModelLabels(3))
        self.tenants = TenantRequests(self.registry, 4)

    def exposition(self) -> list[str]:
        """The scrape without the ``_created`` timestamps (when a child was made)."""
        text = generate_latest(self.registry).decode()
        return [line for line in text.splitlines() if "_created" not in line]


def traffic(seed: int, n: int) -> list[Request]:
    rng = random.Random(seed)
    mix: list[Request] = []
    for _ in range(n):
        model = rng.choice(("", "m0", "m1", "m2", "m3", "m4"))
        total = rng.choice(_LATENCIES) if rng.random() < 0.3 else rng.uniform(0, 2)
        upstream = rng.choice((0.0, total, total / 3, total + 0.001))
        mix.append(
            (
                model,
                rng.choice(("", "1", "2")) if model else "",
                rng.choice(_STATUSES),
                rng.choice(("", "triton", "tfs")),
                total,
                upstream,
                rng.choice(("http", "grpc", "job")),
                rng.choice(("", "acme", "beta", "gamma", "delta", "eps", "zeta")),
                rng.choice(("hit", "miss", "stale", "collapsed", "bypass", "allowed", "rejected")),
            )
        )
    return mix


def run(observed: Observed, mix: list[Request]) -> None:
    metrics = observed.requests
    for model, version, status, backend, total, upstream, protocol, tenant, result in mix:
        metrics.observe(model, version, status, backend, total, upstream, protocol)
        observed.tenants.count(tenant, status)
        if result in ("allowed", "rejected"):
            metrics.ratelimit_decision.inc(result)
        else:
            metrics.cache_result.inc(result)
        if status in (401, 403):
            metrics.auth_failure.inc("invalid_key" if tenant else "missing_key")


def test_counted_in_place_scrapes_as_counted_into_the_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lean = Observed()
    monkeypatch.setenv(MULTIPROC_ENV, "/nonexistent")  # read once, when the metrics are made
    straight = Observed()
    monkeypatch.delenv(MULTIPROC_ENV)
    assert not lean.requests.folded.direct
    assert straight.requests.folded.direct
    for seed in range(3):  # scraped between rounds too: a fold is not counted twice
        mix = traffic(seed, 800)
        run(lean, mix)
        run(straight, mix)
        assert lean.exposition() == straight.exposition()
    scrape = lean.exposition()
    assert any(
        line.startswith("gateway_requests_total") and 'model="other"' in line for line in scrape
    )  # past the model cap
    assert any(
        line.startswith('gateway_tenant_requests_total{status_class="4xx",tenant="other"}')
        for line in scrape
    )
    count = next(
        line for line in scrape if line.startswith("gateway_request_duration_seconds_count")
    )
    assert float(count.rsplit(" ", 1)[1]) > 0
    assert (
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in scrape
            if line.startswith("gateway_requests_total")
        )
        == 2400.0
    )


def test_a_latency_on_a_bound_is_counted_in_that_bound_bucket() -> None:
    observed = Observed()
    observed.requests.observe("m0", "1", 200, "triton", 0.005, 0.0025, "http")
    value = observed.registry.get_sample_value
    labels = {"model": "m0", "version": "1", "status_class": "2xx", "backend": "triton"}
    duration = "gateway_request_duration_seconds_bucket"
    assert value(duration, {**labels, "protocol": "http", "le": "0.0025"}) == 0.0
    assert value(duration, {**labels, "protocol": "http", "le": "0.005"}) == 1.0
    upstream = "gateway_upstream_duration_seconds_bucket"
    assert value(upstream, {"model": "m0", "backend": "triton", "le": "0.0025"}) == 1.0
    assert value("gateway_overhead_duration_seconds_sum", {"model": "m0", "backend": "triton"}) == (
        0.0025
    )
