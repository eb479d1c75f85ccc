"""The per-replica probe schedule on a fake clock: the rate, the spacing, first use, dedup."""

from __future__ import annotations

import pytest

from gateway.backends.probe_queue import ProbeQueue, burst_of

KEYS = [(f"m{i}", "1") for i in range(1000)]


def drain(queue: ProbeQueue, start: float, stop: float, step: float) -> int:
    """Keys taken from ``start`` to ``stop`` (included), asking every ``step`` seconds."""
    taken, ticks = 0, round((stop - start) / step)
    for tick in range(ticks + 1):
        taken += len(queue.take(start + tick * step))
    return taken


@pytest.mark.parametrize("wanted", [10, 1000])
def test_the_bucket_caps_the_probes_whatever_the_number_of_models(wanted: int) -> None:
    queue = ProbeQueue(rate=2.0, burst=2.0, spacing=5.0)
    for key in KEYS[:wanted]:
        queue.want(key, 0.0)
    # 2 at once (the burst), then 2 a second: 22 over 10 s, asked every 100 ms
    assert drain(queue, 0.0, 10.0, 0.1) == min(wanted, 22)


def test_a_key_waits_once_and_is_released_in_the_order_it_fell_due() -> None:
    queue = ProbeQueue(rate=10.0, burst=10.0, spacing=5.0)
    assert queue.want(("a", "1"), 0.0)
    assert queue.want(("b", None), 0.0)
    assert not queue.want(("a", "1"), 0.0)  # already waiting
    assert len(queue) == 2
    assert queue.take(0.0) == [("a", "1"), ("b", None)]
    assert len(queue) == 0
    assert queue.take(1.0) == []


def test_a_key_is_probed_at_most_once_a_spacing_unless_wanted_soon() -> None:
    queue = ProbeQueue(rate=10.0, burst=10.0, spacing=5.0)
    key = ("a", "1")
    queue.want(key, 0.0)
    assert queue.take(0.0) == [key]
    queue.want(key, 1.0)  # a failure a second later: due once 5 s have passed
    assert drain(queue, 1.0, 4.9, 0.1) == 0
    assert queue.next_at(4.9) == pytest.approx(5.0)
    assert queue.take(5.0) == [key]
    queue.want(key, 6.0, soon=True)  # first use: at once
    assert queue.take(6.0) == [key]


def test_wanting_a_key_soon_brings_a_later_turn_forward() -> None:
    queue = ProbeQueue(rate=10.0, burst=10.0, spacing=5.0)
    key = ("a", "1")
    queue.want(key, 0.0)
    queue.take(0.0)
    queue.want(key, 1.0)  # due at 5
    assert queue.want(key, 2.0, soon=True)
    assert queue.take(2.0) == [key]
    assert queue.take(5.0) == []  # the later turn was dropped


def test_next_at_is_when_a_key_is_due_and_a_token_is_there() -> None:
    queue = ProbeQueue(rate=1.0, burst=1.0, spacing=5.0)
    assert queue.next_at(0.0) is None
    queue.want(("a", "1"), 0.0)
    queue.want(("b", "1"), 0.0)
    assert queue.next_at(0.0) == 0.0
    assert len(queue.take(0.0)) == 1
    assert queue.next_at(0.0) == pytest.approx(1.0)  # the bucket is empty for a second
    assert queue.next_at(0.5) == pytest.approx(1.0)


def test_discarded_keys_are_not_probed() -> None:
    queue = ProbeQueue(rate=10.0, burst=10.0, spacing=5.0)
    for key in KEYS[:5]:
        queue.want(key, 0.0)
    queue.discard({KEYS[0], KEYS[3]})
    assert queue.take(0.0) == [KEYS[1], KEYS[2], KEYS[4]]
    for key in KEYS[:5]:
        queue.want(key, 10.0)
    queue.discard()
    assert len(queue) == 0
    assert queue.take(10.0) == []
    assert queue.next_at(10.0) is None


def test_pruning_forgets_only_what_no_longer_holds_a_key_back() -> None:
    queue = ProbeQueue(rate=10.0, burst=10.0, spacing=5.0)
    queue.want(("a", "1"), 0.0)
    queue.take(0.0)
    queue.prune(3.0)
    queue.want(("a", "1"), 3.0)
    assert queue.take(3.0) == []  # still held back until 5
    queue.prune(6.0)
    assert queue.take(6.0) == [("a", "1")]


@pytest.mark.parametrize(("rate", "burst"), [(0.5, 1.0), (1.0, 1.0), (10.0, 10.0), (2.5, 2.0)])
def test_the_burst_is_a_seconds_worth_and_at_least_one(rate: float, burst: float) -> None:
    assert burst_of(rate) == burst


def test_a_queue_without_a_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        ProbeQueue(rate=0.0, burst=1.0, spacing=5.0)
