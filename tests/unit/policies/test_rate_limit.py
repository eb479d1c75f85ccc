"""The rate-limit policy on its own: a call admitted (with its headers) or refused (429), the
concurrency lease's lifetime, store outages, and the cache lookup made in the same round trip."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest

from gateway.caching.entry import Entry
from gateway.call import Call, Reply, compose
from gateway.codecs import v2
from gateway.config.live import Runtime
from gateway.errors import BadGateway, LimitsUnavailable, RateLimited
from gateway.store import Limit, MemoryStore, StoreUnavailable, Verdict
from policies.cache import CachePolicy
from policies.rate_limit import RateLimitPolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import Downstream, answer, make_call, make_caller, toy_routes

pytestmark = pytest.mark.anyio

PLANS = """
plans:
  gold: {rate: 1/min, burst: 3}
  solo: {concurrency: 1}
  tiny: {rate: 1/min, burst: 1}
"""


class CountingStore(MemoryStore):
    """The in-memory store, counting the round trips the limits and the cache make."""

    def __init__(self) -> None:
        super().__init__()
        self.takes = 0
        self.gets = 0

    async def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> tuple[Verdict, bytes | None]:
        self.takes += 1
        return await super().take(limits, cost=cost, lease=lease, cache=cache, lock=lock)

    async def cache_get(self, group: str, key: str) -> bytes | None:
        self.gets += 1
        return await super().cache_get(group, key)


class DownStore(MemoryStore):
    """A store whose limits do not answer (Redis unreachable)."""

    async def take(self, limits: Sequence[Limit], **_: Any) -> tuple[Verdict, bytes | None]:
        raise StoreUnavailable("the store is down")

    async def release(self, limits: Sequence[Limit], lease: str) -> None:
        raise StoreUnavailable("the store is down")


class HangingStore(MemoryStore):
    """A store whose takes never answer (Redis reachable but stuck)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()

    async def take(self, limits: Sequence[Limit], **_: Any) -> tuple[Verdict, bytes | None]:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def limiter(runtime: Runtime) -> RateLimitPolicy:
    policy = RateLimitPolicy.build(runtime)
    assert policy is not None
    return policy


def remaining(answered: Reply | RateLimited, name: str) -> int:
    """What the ``RateLimit`` field says is left of limit ``name``."""
    headers = answered.headers if isinstance(answered, RateLimited) else dict(answered.headers)
    found = re.search(rf'"{name}";r=(\d+);t=(\d+)', headers["RateLimit"])
    assert found is not None, headers
    return int(found.group(1))


async def test_a_plan_admits_its_burst_then_refuses(make_runtime: MakeRuntime) -> None:
    policy = limiter(await make_runtime(toy_routes(extra=PLANS)))
    downstream = Downstream()
    left = []
    for _ in range(3):
        call = make_call(caller=make_caller("acme", plan="gold"))
        reply = await policy(call, downstream)
        assert call.limited == "allowed"
        assert reply.header("RateLimit-Policy") == '"rate";q=3;w=180'
        left.append(remaining(reply, "rate"))
    assert left == [2, 1, 0]
    refused = make_call(caller=make_caller("acme", plan="gold"))
    with pytest.raises(RateLimited) as raised:
        await policy(refused, downstream)
    error = raised.value
    assert error.status == 429
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert error.headers["RateLimit-Policy"] == '"rate";q=3;w=180'
    assert remaining(error, "rate") == 0
    assert refused.limited == "rejected"
    assert len(downstream.calls) == 3
    other = make_call(caller=make_caller("globex", plan="gold"))  # a bucket of its own
    await policy(other, downstream)
    assert other.limited == "allowed"


async def test_a_tenant_without_a_plan_gets_the_default_plan(make_runtime: MakeRuntime) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {default_plan: tiny}")
    policy, downstream = limiter(await make_runtime(routes)), Downstream()
    await policy(make_call(caller=make_caller("acme")), downstream)
    with pytest.raises(RateLimited):
        await policy(make_call(caller=make_caller("acme")), downstream)
    assert len(downstream.calls) == 1


async def test_anonymous_calls_are_limited_per_address(make_runtime: MakeRuntime) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {anonymous: {rate: 1/min, burst: 2}}")
    policy, downstream = limiter(await make_runtime(routes)), Downstream()
    for _ in range(2):
        reply = await policy(make_call(peer="10.0.0.1"), downstream)
        assert reply.header("RateLimit-Policy") == '"anonymous";q=2;w=120'
    first = make_call(peer="10.0.0.1")
    with pytest.raises(RateLimited):
        await policy(first, downstream)
    assert first.limited == "rejected"
    other = make_call(peer="10.0.0.2")
    await policy(other, downstream)
    assert other.limited == "allowed"
    # a caller with credentials is charged to its tenant, not to its address
    tenant = make_call(peer="10.0.0.1", caller=make_caller("acme"))
    reply = await policy(tenant, downstream)
    assert tenant.limited is None
    assert reply.header("RateLimit") is None
    assert len(downstream.calls) == 4


async def test_a_model_limit_counts_every_caller(make_runtime: MakeRuntime) -> None:
    routes = toy_routes("    limits: {rate: 1/min, burst: 2}", extra=PLANS)
    policy, downstream = limiter(await make_runtime(routes)), Downstream()
    await policy(make_call(caller=make_caller("acme")), downstream)
    await policy(make_call(peer="10.0.0.9"), downstream)
    with pytest.raises(RateLimited, match="model"):
        await policy(make_call(caller=make_caller("globex")), downstream)
    other_model = make_call("elsewhere", caller=make_caller("globex"))
    await policy(other_model, downstream)
    assert other_model.limited is None


async def test_no_limit_and_no_cache_is_no_store_round_trip(make_runtime: MakeRuntime) -> None:
    store = CountingStore()
    policy = limiter(await make_runtime(toy_routes(extra=PLANS), store=store))
    downstream, call = Downstream(), make_call(peer="10.0.0.1", caller=make_caller("acme"))
    reply = await policy(call, downstream)
    assert downstream.calls == [call]
    assert call.limited is None
    assert reply.headers == []
    assert store.takes == 0


class Gate:
    """A ``call_next`` that waits for the test's go before answering."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, call: Call) -> Reply:
        self.entered.set()
        await self.go.wait()
        return answer(1)


async def test_a_concurrency_slot_is_freed_when_the_reply_comes_back(
    make_runtime: MakeRuntime,
) -> None:
    policy = limiter(await make_runtime(toy_routes(extra=PLANS)))
    gate = Gate()
    first = asyncio.create_task(policy(make_call(caller=make_caller("acme", plan="solo")), gate))
    await gate.entered.wait()
    with pytest.raises(RateLimited) as raised:  # the first call still holds the only slot
        await policy(make_call(caller=make_caller("acme", plan="solo")), Downstream())
    assert raised.value.headers["RateLimit-Policy"] == '"concurrency";q=1'
    gate.go.set()
    reply = await first
    assert reply.header("RateLimit-Policy") == '"concurrency";q=1'
    after = make_call(caller=make_caller("acme", plan="solo"))
    await policy(after, Downstream())
    assert after.limited == "allowed"


async def test_a_concurrency_slot_is_freed_when_the_next_step_fails(
    make_runtime: MakeRuntime,
) -> None:
    policy = limiter(await make_runtime(toy_routes(extra=PLANS)))
    with pytest.raises(BadGateway):
        await policy(
            make_call(caller=make_caller("acme", plan="solo")),
            Downstream(error=BadGateway("the model server answered nonsense")),
        )
    after = make_call(caller=make_caller("acme", plan="solo"))
    await policy(after, Downstream())
    assert after.limited == "allowed"


async def test_a_streamed_reply_holds_its_slot_until_the_stream_ends(
    make_runtime: MakeRuntime,
) -> None:
    policy = limiter(await make_runtime(toy_routes(extra=PLANS)))

    async def body() -> AsyncIterator[bytes]:
        yield b"one "
        yield b"two"

    async def streamed(call: Call) -> Reply:
        return Reply(stream=body())

    reply = await policy(make_call(caller=make_caller("acme", plan="solo")), streamed)
    assert reply.stream is not None
    with pytest.raises(RateLimited):  # answered, but the body is still being sent
        await policy(make_call(caller=make_caller("acme", plan="solo")), Downstream())
    assert [chunk async for chunk in reply.stream] == [b"one ", b"two"]
    after = make_call(caller=make_caller("acme", plan="solo"))
    await policy(after, Downstream())
    assert after.limited == "allowed"


async def test_a_streamed_reply_closed_unread_frees_its_slot(make_runtime: MakeRuntime) -> None:
    policy = limiter(await make_runtime(toy_routes(extra=PLANS)))
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"never sent"

    async def close() -> None:
        closed.append(True)

    async def streamed(call: Call) -> Reply:
        return Reply(stream=body(), close=close)

    reply = await policy(make_call(caller=make_caller("acme", plan="solo")), streamed)
    assert reply.stream is not None
    assert reply.close is not None
    # what the HTTP frontend does when the client is gone before the body starts: the
    # iterator is dropped unread and reply.close runs (gateway.edge.http.UpstreamStream)
    stream = reply.stream
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()
    await reply.close()
    assert closed == [True]
    after = make_call(caller=make_caller("acme", plan="solo"))
    await policy(after, Downstream())
    assert after.limited == "allowed"


async def test_fail_closed_refuses_while_the_store_is_out(make_runtime: MakeRuntime) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {failure_mode: fail_closed}")
    policy = limiter(await make_runtime(routes, store=DownStore()))
    downstream, call = Downstream(), make_call(caller=make_caller("acme", plan="gold"))
    with pytest.raises(LimitsUnavailable) as raised:
        await policy(call, downstream)
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    assert downstream.calls == []


async def test_fail_open_admits_on_the_in_process_fallback(make_runtime: MakeRuntime) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {failure_mode: fail_open}")
    policy = limiter(await make_runtime(routes, store=DownStore()))
    downstream, call = Downstream(), make_call(caller=make_caller("acme", plan="tiny"))
    reply = await policy(call, downstream)
    assert downstream.calls == [call]
    assert call.limited == "allowed"
    assert remaining(reply, "rate") == 0
    with pytest.raises(RateLimited):  # an outage is not a free pass: the fallback counts
        await policy(make_call(caller=make_caller("acme", plan="tiny")), downstream)
    for _ in range(2):  # and a concurrency slot taken there is given back there
        solo = make_call(caller=make_caller("acme", plan="solo"))
        await policy(solo, downstream)
        assert solo.limited == "allowed"


async def test_a_store_that_does_not_answer_in_time_is_an_outage(
    make_runtime: MakeRuntime,
) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {failure_mode: fail_open, store_timeout: 50ms}")
    policy = limiter(await make_runtime(routes, store=HangingStore()))
    downstream, call = Downstream(), make_call(caller=make_caller("acme", plan="tiny"))
    reply = await policy(call, downstream)  # the timer fired: admitted on the fallback
    assert downstream.calls == [call]
    assert remaining(reply, "rate") == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    closed = toy_routes(
        extra=PLANS + "rate_limits: {failure_mode: fail_closed, store_timeout: 50ms}"
    )
    policy = limiter(await make_runtime(closed, store=HangingStore()))
    with pytest.raises(LimitsUnavailable):
        await policy(make_call(caller=make_caller("acme", plan="tiny")), downstream)


async def test_a_take_cancelled_from_outside_stays_cancelled(make_runtime: MakeRuntime) -> None:
    routes = toy_routes(extra=PLANS + "rate_limits: {failure_mode: fail_open, store_timeout: 30s}")
    store = HangingStore()
    policy = limiter(await make_runtime(routes, store=store))
    downstream = Downstream()
    task = asyncio.create_task(
        policy(make_call(caller=make_caller("acme", plan="tiny")), downstream)
    )
    await store.asked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert downstream.calls == []  # not taken for an outage: no fallback admitted it


CACHED = "    deterministic: true\n    cache: {ttl: 60s}"


def resolved(runtime: Runtime, call: Call) -> Call:
    """The call as the traffic step leaves it (the cache key needs the version)."""
    call.resolved = runtime.resolve(call.model or "", call.pin)
    return call


async def test_a_cached_models_entry_is_read_in_the_same_round_trip(
    make_runtime: MakeRuntime,
) -> None:
    store = CountingStore()
    runtime = await make_runtime(toy_routes(CACHED, extra=PLANS), store=store)
    cache = CachePolicy.build(runtime)
    assert cache is not None
    chain = compose([limiter(runtime), cache], Downstream())
    first = resolved(runtime, make_call(caller=make_caller("acme", plan="gold")))
    await chain(first)
    assert first.probe is not None
    assert first.probe.read
    assert first.probe.found is None
    assert first.probe.filling is True  # the fill lock came with the same round trip
    assert first.cache == "miss"
    second = resolved(runtime, make_call(caller=make_caller("acme", plan="gold")))
    reply = await chain(second)
    assert second.probe is not None
    assert second.probe.read
    assert second.probe.found is not None
    entry = Entry.decode(second.probe.found)
    assert entry is not None
    assert v2.decode_response(entry.body).outputs[0].data == [1]
    assert second.cache == "hit"
    assert second.limited == "allowed"
    assert reply.header("RateLimit") is not None
    assert store.takes == 2
    assert store.gets == 0  # the cache step never asked the store again


async def test_a_cached_model_without_limits_still_reads_in_one_round_trip(
    make_runtime: MakeRuntime,
) -> None:
    store = CountingStore()
    runtime = await make_runtime(toy_routes(CACHED), store=store)
    call = resolved(runtime, make_call())
    await limiter(runtime)(call, Downstream())
    assert call.probe is not None
    assert call.probe.read
    assert call.limited is None
    assert store.takes == 1


async def test_no_probe_for_a_client_that_asks_no_cache(make_runtime: MakeRuntime) -> None:
    store = CountingStore()
    runtime = await make_runtime(toy_routes(CACHED), store=store)
    call = resolved(runtime, make_call(headers=[("Cache-Control", "no-cache")]))
    await limiter(runtime)(call, Downstream())
    assert call.probe is None
    assert store.takes == 0


async def test_a_store_outage_reads_no_entry(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(toy_routes(CACHED, extra=PLANS), store=DownStore())
    call = resolved(runtime, make_call(caller=make_caller("acme", plan="gold")))
    await limiter(runtime)(call, Downstream())
    assert call.probe is not None
    assert call.probe.read  # made, as far as the cache step cares: a miss
    assert call.probe.found is None
    assert call.limited == "allowed"


async def test_an_api_key_callers_limits_follow_its_records(make_runtime: MakeRuntime) -> None:
    # the authenticator hands out one Caller per key record and tenant record: the step keeps
    # its limits by that Caller, and a changed tenant (another Caller) gets its own plan's
    policy, downstream = limiter(await make_runtime(toy_routes(extra=PLANS))), Downstream()
    gold = make_caller("acme", plan="gold")
    for _ in range(2):
        reply = await policy(make_call(caller=gold), downstream)
        assert reply.header("RateLimit-Policy") == '"rate";q=3;w=180'
    tiny = make_caller("acme", plan="tiny")
    reply = await policy(make_call(caller=tiny), downstream)
    assert reply.header("RateLimit-Policy") == '"rate";q=1;w=60'
    with pytest.raises(RateLimited):
        await policy(make_call(caller=make_caller("acme", plan="tiny")), downstream)
    jwt = make_caller("acme", plan="tiny", via="jwt")
    with pytest.raises(RateLimited):  # the same tenant's bucket, whatever the credential
        await policy(make_call(caller=jwt), downstream)
