"""The fleet view over a real (memory) store, on a clock the test moves: what a replica
publishes reads back as aligned arrays, replicas' steps are summed, and what left the window
or the route table is gone. Latencies: 10 ms falls in bucket 33 (0.1 ms × 1.15^33 = 10.070 ms),
2 s in bucket 71 (2039.608 ms)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import yaml

from gateway.config.model import RouteTable
from gateway.store import MemoryStore, StoreUnavailable
from gateway.telemetry.series.fleet import FleetSeries
from gateway.telemetry.series.recorder import SeriesRecorder
from tests.support import backend, model, routes_yaml, versions
from tests.unit.telemetry.test_series_recorder import Clock

pytestmark = pytest.mark.anyio
FAST_MS, SLOW_MS = 10.070, 2039.608
START = 1_000_000  # a step's start (a multiple of 5)


def table(*models: str) -> RouteTable:
    served = {name: model(versions("b", "1", "2")) for name in models}
    text = routes_yaml({"b": backend("kserve", "http://127.0.0.1:9")}, served)
    return RouteTable.model_validate(yaml.safe_load(text))


class Fleet:
    """Replicas sharing one store and one clock, on a route table the test can swap."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.clock = Clock(START)
        self.store = store or MemoryStore()
        self.table = table("fraud", "ocr")

    def replica(self, name: str, window: int = 60) -> FleetSeries:
        recorder = SeriesRecorder(5, window, clock=self.clock)
        return FleetSeries(recorder, self.store, name, lambda: self.table)


def send(series: FleetSeries, model: str, version: str, answers: Mapping[int, int]) -> None:
    """``answers``: status → how many; a 5xx takes 2 s, the rest 10 ms."""
    for status, count in answers.items():
        for _ in range(count):
            series.recorder.record(model, version, status, 2.0 if status >= 500 else 0.010)


async def test_a_published_step_reads_back_as_arrays_aligned_to_t() -> None:
    fleet = Fleet()
    a = fleet.replica("a")
    send(a, "fraud", "2", {200: 3, 404: 1, 503: 1})
    fleet.clock.now = START + 6  # the step has ended and settled
    await a.publish()
    view = await a.read(minutes=1)
    assert (view["step"], view["replicas"], view["now"]) == (5, 1, START + 6)
    assert (view["start"], view["end"]) == (START - 55, START + 5)  # 12 steps, the last ours
    [line] = view["series"]
    t = list(range(START - 55, START + 5, 5))
    zeros = [0] * 11
    nulls: list[float | None] = [None] * 11
    assert line == {
        "model": "fraud",
        "version": "2",
        "t": t,
        "requests": [*zeros, 5],
        "rps": [*zeros, 1.0],
        "errors_5xx": [*zeros, 1],
        "errors_4xx": [*zeros, 1],
        "error_rate": [*nulls, 0.2],
        "p50_ms": [*nulls, FAST_MS],  # 4 of 5 fast
        "p99_ms": [*nulls, SLOW_MS],
        "total": {
            "requests": 5,
            "rps": 5 / 60,
            "errors_5xx": 1,
            "errors_4xx": 1,
            "error_rate": 0.2,
            "p50_ms": FAST_MS,
            "p99_ms": SLOW_MS,
        },
    }


async def test_two_replicas_steps_are_summed_and_quantiles_read_from_the_sum() -> None:
    fleet = Fleet()
    a, b = fleet.replica("a"), fleet.replica("b")
    send(a, "fraud", "2", {200: 3})
    send(b, "fraud", "2", {200: 1, 500: 1})
    send(b, "fraud", "1", {200: 2})
    fleet.clock.now = START + 5.5  # the next step: one more for a
    send(a, "fraud", "2", {500: 2})
    fleet.clock.now = START + 11
    await a.publish()
    await b.publish()
    view = await b.read(minutes=1)
    assert view["replicas"] == 2
    one, two = view["series"]
    assert (one["version"], one["requests"][-2:], one["total"]["p99_ms"]) == ("1", [2, 0], FAST_MS)
    assert two["requests"][-2:] == [5, 2]
    assert two["errors_5xx"][-2:] == [1, 2]
    assert two["error_rate"][-2:] == [0.2, 1.0]
    # first step: 4 fast and 1 slow over both replicas; second: a's 2 slow
    assert two["p50_ms"][-2:] == [FAST_MS, SLOW_MS]
    assert two["total"] == {
        "requests": 7,
        "rps": 7 / 60,
        "errors_5xx": 3,
        "errors_4xx": 0,
        "error_rate": 3 / 7,
        "p50_ms": FAST_MS,  # 4 fast of 7: rank 3.5
        "p99_ms": SLOW_MS,
    }
    only = await a.read("fraud", "1", 1)
    assert [(s["model"], s["version"]) for s in only["series"]] == [("fraud", "1")]
    assert (await a.read("nothing"))["series"] == []


async def test_steps_out_of_the_window_are_gone_from_the_view_and_the_store() -> None:
    fleet = Fleet()
    a = fleet.replica("a", window=20)  # 4 steps
    send(a, "fraud", "1", {200: 1})
    fleet.clock.now = START + 6
    await a.publish()
    assert (await a.read())["series"][0]["requests"] == [0, 0, 0, 1]
    fleet.clock.now = START + 21  # the step is 4 steps old: out of a 4-step window
    await a.publish()
    assert (await a.read())["series"] == []
    assert await fleet.store.series_read([START]) == {"a": {}}


async def test_a_model_gone_from_the_route_table_is_dropped() -> None:
    fleet = Fleet()
    a = fleet.replica("a")
    send(a, "fraud", "1", {200: 1})
    send(a, "ocr", "1", {200: 1})
    fleet.clock.now = START + 6
    await a.publish()
    send(a, "ocr", "2", {200: 1})  # recorded, not published yet
    fleet.table = table("fraud")  # a reload removed ocr
    assert [s["model"] for s in (await a.read())["series"]] == ["fraud"]
    fleet.clock.now = START + 12
    await a.publish()
    assert len(a.recorder) == 0  # ocr's unpublished step is dropped, fraud's published one too


async def test_a_replica_without_traffic_is_live_with_no_series() -> None:
    fleet = Fleet()
    a = fleet.replica("a")
    await a.publish()
    view = await a.read()
    assert (view["replicas"], view["series"]) == (1, [])


class FailingOnce(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def series_publish(
        self,
        replica: str,
        steps: Mapping[int, str],
        *,
        keep_from: int,
        ttl: float,
        summary: str = "",
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the shared store is unavailable")
        await super().series_publish(replica, steps, keep_from=keep_from, ttl=ttl, summary=summary)


async def test_a_failed_publish_is_sent_with_the_next_one_and_counted_once() -> None:
    fleet = Fleet(FailingOnce())
    a = fleet.replica("a")
    send(a, "fraud", "1", {200: 2})
    fleet.clock.now = START + 6
    with pytest.raises(StoreUnavailable):
        await a.publish()
    send(a, "fraud", "1", {200: 1})
    fleet.clock.now = START + 11
    await a.publish()
    await a.publish()  # nothing new: the stored steps stay as they are
    assert (await a.read())["series"][0]["requests"][-2:] == [2, 1]
