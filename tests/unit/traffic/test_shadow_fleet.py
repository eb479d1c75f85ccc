"""Shadow traffic's counts over the fleet: two workers' running totals summed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.traffic import shadow_fleet
from gateway.traffic.shadow import ShadowWorker


def worker(**counts: int) -> ShadowWorker:
    shadow = ShadowWorker(CollectorRegistry())
    stats = shadow.stats("scorer", "2")
    for name, value in counts.items():
        setattr(stats, name, value)
    return shadow


def test_two_replicas_totals_are_summed_and_shown_as_one() -> None:
    a = worker(primary_requests=10, mirrored=4, agree=3, disagree=1, exact=2)
    a.stats("scorer", "2").delta_sum = 0.4
    a.stats("scorer", "2").by_primary["1"] = 4
    b = worker(primary_requests=6, mirrored=2, agree=1, errors=1, dropped=1)
    b.stats("scorer", "2").delta_sum = 0.1
    b.stats("scorer", "2").by_primary["1"] = 2
    merged = shadow_fleet.merge([shadow_fleet.summary(a), shadow_fleet.summary(b)])
    shown = merged["scorer"]["2"]
    assert shown["primary_requests"] == 16
    assert shown["mirrored"] == 6
    assert shown["mirrored_by_primary_version"] == {"1": 6}
    assert (shown["numeric_agreements"], shown["numeric_disagreements"]) == (4, 1)
    assert (shown["exact_matches"], shown["mismatches"]) == (2, 3)
    assert (shown["errors"], shown["dropped"], shown["pending"]) == (1, 1, 0)
    assert shown["mean_latency_delta_seconds"] == 0.5 / 5  # the fleet's sum over its count


def test_an_empty_or_unreadable_summary_adds_nothing() -> None:
    one = shadow_fleet.summary(worker(primary_requests=3))
    assert shadow_fleet.summary(ShadowWorker(CollectorRegistry())) == ""
    assert shadow_fleet.merge(["", "not json", '{"shadow": {"m": 1}}', one]) == (
        shadow_fleet.merge([one])
    )
    assert shadow_fleet.merge([one])["scorer"]["2"]["primary_requests"] == 3
