"""The live series' latency buckets: where a latency falls, merging replicas' histograms, and
quantiles checked against numbers worked out by hand (bound i = 0.1 ms × 1.15^i)."""

from __future__ import annotations

import math
import random

import pytest

from gateway.telemetry.series.histogram import (
    BOUNDS,
    add_into,
    bucket_of,
    flatten,
    quantile,
    unflatten,
)

# by hand: 1.15^10 = 4.045557736..., 1.15^30 = 66.211771963...
BOUND_10_MS = 0.4045557736
BOUND_30_MS = 6.6211771963


def test_the_bounds_are_hand_computable() -> None:
    assert BOUNDS[0] * 1000 == pytest.approx(0.1)
    assert BOUNDS[10] * 1000 == pytest.approx(BOUND_10_MS)
    assert BOUNDS[30] * 1000 == pytest.approx(BOUND_30_MS)
    assert 600 < BOUNDS[-1] < 700  # about 10 minutes


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, 0),
        (0.0001, 0),  # an upper bound is inside its bucket
        (0.000101, 1),
        (BOUNDS[10], 10),
        (BOUNDS[10] * 1.0001, 11),
        (1e6, len(BOUNDS)),  # beyond the top bound: the overflow bucket
    ],
)
def test_a_latency_falls_in_the_bucket_whose_upper_bound_holds_it(
    seconds: float, bucket: int
) -> None:
    assert bucket_of(seconds) == bucket


def test_quantiles_are_the_upper_bound_of_the_bucket_reaching_the_rank() -> None:
    # 3 requests at ≤ 0.40 ms, 1 at ≤ 6.6 ms: p50's rank is 2 (bucket 10), p75's 3 (still
    # bucket 10: reaching the rank exactly counts), p99's 3.96 (bucket 30)
    buckets = {10: 3, 30: 1}
    assert quantile(buckets, 0.5) == pytest.approx(BOUND_10_MS / 1000)
    assert quantile(buckets, 0.75) == pytest.approx(BOUND_10_MS / 1000)
    assert quantile(buckets, 0.99) == pytest.approx(BOUND_30_MS / 1000)
    assert quantile({}, 0.5) is None
    assert quantile({len(BOUNDS): 2}, 0.5) == BOUNDS[-1]  # the overflow reads as the top


def test_merged_histograms_give_the_fleets_quantiles() -> None:
    # replica A: 3 fast; replica B: 1 fast, 1 slow. Merged: 4 fast, 1 slow, so p80 (rank 4)
    # is fast while either replica alone would say otherwise for B (p80 of B: slow)
    a, b = {10: 3}, {10: 1, 30: 1}
    assert quantile(b, 0.8) == pytest.approx(BOUND_30_MS / 1000)
    total: dict[int, int] = {}
    add_into(total, a)
    add_into(total, b)
    assert total == {10: 4, 30: 1}
    assert quantile(total, 0.8) == pytest.approx(BOUND_10_MS / 1000)
    assert quantile(total, 0.81) == pytest.approx(BOUND_30_MS / 1000)  # rank 4.05


def test_a_quantile_is_never_below_the_true_one_and_at_most_15_percent_above() -> None:
    rng = random.Random(15)
    samples = [math.exp(rng.uniform(math.log(0.0002), math.log(60.0))) for _ in range(2000)]
    buckets: dict[int, int] = {}
    for s in samples:
        index = bucket_of(s)
        buckets[index] = buckets.get(index, 0) + 1
    ordered = sorted(samples)
    for q in (0.01, 0.5, 0.9, 0.99, 0.999):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        found = quantile(buckets, q)
        assert found is not None
        assert exact <= found < 1.15 * exact, (q, exact, found)


def test_the_wire_form_round_trips_in_bucket_order() -> None:
    assert flatten({30: 1, 10: 3}) == [10, 3, 30, 1]
    assert unflatten([10, 3, 30, 1]) == {10: 3, 30: 1}
    with pytest.raises(ValueError, match="zip"):
        unflatten([10, 3, 30])
