"""The usage recorder: what one finished call adds, per minute; nothing reaches the store until
a flush, which is one call; counts a failed flush could not write are kept and written with the
next (a real Redis stopped and started again); the loop flushes on its own and at close. And
the Prometheus counter's bounded tenant label."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.call import CacheResult, Call
from gateway.headers import Headers
from gateway.jobs.replay import StoredBody
from gateway.store import MemoryStore
from gateway.store.redis.store import RedisStore
from gateway.store.usage import UsageKey, UsageRow
from gateway.telemetry.cardinality import OTHER
from gateway.telemetry.usage import TenantRequests, UsageRecorder
from tests.redis_plugin import StartRedis
from tests.support import eventually

pytestmark = pytest.mark.anyio
T0 = (int(time.time()) // 3600 - 1) * 3600  # the last hour's start: inside every retention


class CountingStore(MemoryStore):
    """The memory store, counting its usage_add calls."""

    def __init__(self) -> None:
        super().__init__()
        self.adds = 0

    async def usage_add(self, counts: Mapping[UsageKey, Mapping[str, int]]) -> None:
        self.adds += 1
        await super().usage_add(counts)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def call(
    *,
    cache: CacheResult | None = None,
    rejected: bool = False,
    body: bytes | None = None,
) -> Call:
    made = Call("infer", "rid", Headers.of([]), model="fraud")
    made.cache = cache
    made.limited = "rejected" if rejected else "allowed"
    made.payload = StoredBody(body) if body is not None else None
    return made


def rows(found: list[UsageRow]) -> dict[tuple[int, str, str, str], dict[str, int]]:
    return {(r.start, r.tenant, r.model, r.version): dict(r.counts) for r in found}


async def test_each_call_adds_its_counts_to_its_minute() -> None:
    store, clock = CountingStore(), Clock(T0 + 5)
    recorder = UsageRecorder(store, 60.0, clock=clock)
    recorder.record(call(body=b"x" * 100), "acme", "fraud", "1", 200, 40)
    recorder.record(call(cache="hit", body=b"y" * 10), "acme", "fraud", "1", 200, 30)
    recorder.record(call(cache="collapsed"), "acme", "fraud", "1", 200, 30)
    recorder.record(call(cache="miss"), "acme", "fraud", "1", 502, 20)
    recorder.record(call(rejected=True), "acme", "fraud", "1", 429, 50)
    recorder.record(call(), "", "", "", 401, 60)  # anonymous, refused: tenant ""
    clock.now = T0 + 65  # the next minute
    recorder.record(call(), "acme", "fraud", "2", 499, 0)
    assert store.adds == 0  # nothing written per request
    assert await recorder.flush()
    assert store.adds == 1  # one batched call
    minutes = rows(await store.usage_read("minute", [T0, T0 + 60]))
    assert minutes == {
        (T0, "acme", "fraud", "1"): {
            "requests": 5,
            "errors_4xx": 1,
            "errors_5xx": 1,
            "cache_hits": 2,
            "rate_limited": 1,
            "bytes_in": 110,
            "bytes_out": 170,
        },
        (T0, "", "", ""): {"requests": 1, "errors_4xx": 1, "bytes_out": 60},
        (T0 + 60, "acme", "fraud", "2"): {"requests": 1, "errors_4xx": 1},
    }
    assert await recorder.flush()  # nothing new: no store call
    assert store.adds == 1


async def test_what_a_failed_flush_could_not_write_is_written_by_the_next(
    start_redis: StartRedis, redis_prefix: str
) -> None:
    server = start_redis()
    store = RedisStore.from_url(server.url, prefix=redis_prefix, retries=0, connect_timeout=0.5)
    clock = Clock(T0 + 1)
    recorder = UsageRecorder(store, 60.0, clock=clock)
    try:
        for _ in range(3):
            recorder.record(call(body=b"abc"), "acme", "fraud", "1", 200, 10)
        server.stop()
        assert not await recorder.flush()  # Redis is down: kept
        assert recorder.pending == 1
        recorder.record(call(), "acme", "fraud", "1", 503, 5)  # counted meanwhile: merged
        clock.now = T0 + 61
        recorder.record(call(), "beta", "ocr", "2", 200, 1)
        assert not await recorder.flush()
        start_redis(port=server.port)
        assert await recorder.flush()
        assert recorder.pending == 0
        assert rows(await store.usage_read("hour", [T0 - T0 % 3600])) == {
            (T0 - T0 % 3600, "acme", "fraud", "1"): {
                "requests": 4,
                "errors_5xx": 1,
                "bytes_in": 9,
                "bytes_out": 35,
            },
            (T0 - T0 % 3600, "beta", "ocr", "2"): {"requests": 1, "bytes_out": 1},
        }
    finally:
        await store.close()


async def test_the_loop_flushes_on_its_own() -> None:
    store = CountingStore()
    recorder = UsageRecorder(store, 0.05, clock=Clock(T0))
    recorder.start()
    try:
        recorder.record(call(), "acme", "fraud", "1", 200, 1)

        async def written() -> bool:
            return bool(await store.usage_read("minute", [T0]))

        await eventually(written, 5)
    finally:
        await recorder.close()


async def test_close_flushes_what_is_left() -> None:
    store = CountingStore()
    recorder = UsageRecorder(store, 3600.0, clock=Clock(T0))
    recorder.start()
    recorder.record(call(), "acme", "fraud", "1", 200, 1)
    recorder.record(call(), "acme", "fraud", "1", 200, 1)
    await recorder.close()
    assert store.adds == 1
    assert rows(await store.usage_read("minute", [T0])) == {
        (T0, "acme", "fraud", "1"): {"requests": 2, "bytes_out": 2}
    }


def tenant_samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "gateway_tenant_requests_total":
                labels: dict[str, Any] = sample.labels
                found[(labels["tenant"], labels["status_class"])] = sample.value
    return found


def test_the_first_n_tenants_get_their_own_label_the_rest_are_other() -> None:
    registry = CollectorRegistry()
    metric = TenantRequests(registry, max_tenants=2)
    recorder = UsageRecorder(MemoryStore(), 60.0, metric, clock=Clock(T0))
    for tenant, status in [("a", 200), ("b", 200), ("c", 200), ("a", 500), ("d", 429), ("b", 200)]:
        recorder.record(call(), tenant, "fraud", "1", status, 0)
    assert tenant_samples(registry) == {
        ("a", "2xx"): 1,
        ("a", "5xx"): 1,
        ("b", "2xx"): 2,
        (OTHER, "2xx"): 1,
        (OTHER, "4xx"): 1,
    }
    assert [metric.label(t) for t in ("a", "b", "c", "e")] == ["a", "b", OTHER, OTHER]


def test_a_cap_of_zero_counts_every_tenant_as_other() -> None:
    registry = CollectorRegistry()
    metric = TenantRequests(registry, max_tenants=0)
    metric.count("acme", 200)
    metric.count("", 401)
    assert tenant_samples(registry) == {(OTHER, "2xx"): 1, (OTHER, "4xx"): 1}
