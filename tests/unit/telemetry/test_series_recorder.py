"""The per-replica recorder: counts per model × version and step, the ring's bounds, and what
is dropped (published steps, steps out of the window, models out of the route table)."""

from __future__ import annotations

import pytest

from gateway.telemetry.series.histogram import bucket_of
from gateway.telemetry.series.recorder import SeriesRecorder


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Counted = tuple[int, int, int, dict[int, int]]  # requests, 5xx, 4xx, latency buckets


def steps(recorder: SeriesRecorder, before: int = 10**12) -> dict[tuple[str, str, int], Counted]:
    return {
        (model, version, s.index): (s.requests, s.errors_5xx, s.errors_4xx, dict(s.buckets))
        for model, version, s in recorder.finished(before)
    }


def test_requests_are_counted_per_model_version_and_step() -> None:
    clock = Clock(1_000_000.0)  # a multiple of 5: step 200000 starts here
    recorder = SeriesRecorder(5, 60, clock=clock)
    recorder.record("fraud", "1", 200, 0.010)
    recorder.record("fraud", "1", 503, 0.010)
    clock.now += 4.9
    recorder.record("fraud", "1", 404, 2.0)
    recorder.record("fraud", "2", 200, 0.010)
    recorder.record("", "", 404, 0.001)  # no model: not recorded
    clock.now += 0.1  # the next step
    recorder.record("fraud", "1", 200, 0.010)
    fast, slow = bucket_of(0.010), bucket_of(2.0)
    assert steps(recorder) == {
        ("fraud", "1", 200000): (3, 1, 1, {fast: 2, slow: 1}),
        ("fraud", "2", 200000): (1, 0, 0, {fast: 1}),
        ("fraud", "1", 200001): (1, 0, 0, {fast: 1}),
    }
    assert set(steps(recorder, before=200001)) == {("fraud", "1", 200000), ("fraud", "2", 200000)}
    assert len(recorder) == 2


def test_forgetting_published_steps_leaves_nothing_for_a_model_without_traffic() -> None:
    clock = Clock()
    recorder = SeriesRecorder(5, 60, clock=clock)
    recorder.record("fraud", "1", 200, 0.01)
    recorder.record("ocr", "1", 200, 0.01)
    clock.now += 5
    recorder.record("fraud", "1", 200, 0.01)
    current = recorder.index(clock.now)
    recorder.forget(current)
    assert len(recorder) == 1  # ocr had no traffic since: its ring is gone
    assert list(steps(recorder)) == [("fraud", "1", current)]


def test_the_ring_keeps_at_most_a_window_of_steps_while_nothing_is_published() -> None:
    clock = Clock()
    recorder = SeriesRecorder(5, 20, clock=clock)  # 4 steps
    for _ in range(10):
        recorder.record("fraud", "1", 200, 0.01)
        clock.now += 5
    first = recorder.index(clock.now) - 4
    assert [index for _, _, index in steps(recorder)] == [first, first + 1, first + 2, first + 3]


def test_prune_drops_steps_out_of_the_window_and_what_the_table_no_longer_serves() -> None:
    clock = Clock()
    recorder = SeriesRecorder(5, 60, clock=clock)
    recorder.record("fraud", "1", 200, 0.01)
    old = recorder.index(clock.now)
    clock.now += 10
    for model, version in [("fraud", "1"), ("fraud", "3"), ("ocr", "1"), ("fraud", "")]:
        recorder.record(model, version, 200, 0.01)
    served = {("fraud", "1"), ("fraud", "")}
    recorder.prune(old + 1, lambda model, version: (model, version) in served)
    assert {(m, v) for m, v, _ in steps(recorder)} == served
    assert old not in {index for _, _, index in steps(recorder)}


def test_a_clock_that_goes_back_counts_into_the_latest_step() -> None:
    clock = Clock()
    recorder = SeriesRecorder(5, 60, clock=clock)
    recorder.record("fraud", "1", 200, 0.01)
    clock.now -= 30
    recorder.record("fraud", "1", 200, 0.01)
    assert [s[0] for s in steps(recorder).values()] == [2]


@pytest.mark.parametrize(("step", "window"), [(0, 60), (5, 9), (1, 3601)])
def test_a_step_and_window_that_make_no_sense_are_refused(step: int, window: int) -> None:
    with pytest.raises(ValueError, match="series"):
        SeriesRecorder(step, window)
