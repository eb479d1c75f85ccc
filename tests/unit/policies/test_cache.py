"""The cache policy on its own: misses stored, hits answered without the next step, the key,
client directives, collapsed misses, stale-if-error, and what is never stored or shared."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Sequence

import pytest

from gateway.auth.authenticator import Caller
from gateway.caching.entry import Entry
from gateway.caching.keys import digest
from gateway.call import Call, Reply
from gateway.codecs import v2
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Tensor
from gateway.config.live import Runtime, Services
from gateway.errors import BadGateway, GatewayError, UpstreamError, UpstreamTimeout
from policies.cache import CachePolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import (
    Downstream,
    answer,
    make_call,
    make_caller,
    tensors,
    toy_routes,
    value_of,
)

pytestmark = pytest.mark.anyio


def cached(cache: str = "{ttl: 60s}") -> str:
    return toy_routes(f"    deterministic: true\n    cache: {cache}")


def cache_of(runtime: Runtime) -> CachePolicy:
    policy = CachePolicy.build(runtime)
    assert policy is not None
    return policy


def call_for(
    runtime: Runtime,
    request: InferenceRequest | None = None,
    *,
    pin: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    caller: Caller | None = None,
) -> Call:
    """A call as the traffic step leaves it: its version resolved."""
    call = make_call(request=request or tensors(1.0, 2.0), pin=pin, headers=headers, caller=caller)
    call.resolved = runtime.resolve(call.model or "", call.pin)
    return call


async def test_a_model_without_a_cache_section_builds_no_cache_step(
    make_runtime: MakeRuntime,
) -> None:
    assert CachePolicy.build(await make_runtime(toy_routes())) is None


async def test_a_miss_is_forwarded_once_and_stored(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    call = call_for(runtime)
    reply = await policy(call, downstream)
    assert downstream.calls == [call]
    assert value_of(reply) == 1
    assert reply.header("Cache-Status") == "model-gateway; fwd=miss; stored"
    assert call.cache == "miss"
    assert call.probe is not None
    entry = await runtime.cache.get(call.probe)
    assert entry is not None
    assert v2.decode_response(entry.body).outputs[0].data == [1]


async def test_the_same_tensors_again_are_a_hit(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime), downstream)
    again = call_for(runtime)
    reply = await policy(again, downstream)
    assert len(downstream.calls) == 1
    assert value_of(reply) == 1
    assert re.fullmatch(r"model-gateway; hit; ttl=(59|60)", reply.header("Cache-Status") or "")
    assert reply.header("Age") == "0"
    assert again.cache == "hit"


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (tensors(1.0, 2.0, request_id="a"), tensors(1.0, 2.0, request_id="b"), True),
        (
            InferenceRequest([Tensor("x", "FP32", [2], [1, 2])]),
            InferenceRequest([Tensor("x", "FP32", [2], [1.0, 2.0])]),
            True,
        ),
        (tensors(1.0, 2.0), tensors(1.0, 2.5), False),
        (tensors(1.0, 2.0), tensors(2.0, 1.0), False),
        (tensors(1.0, 2.0), tensors(1.0, 2.0, datatype="FP64"), False),
        (
            InferenceRequest([Tensor("x", "FP32", [2], [1, 2])]),
            InferenceRequest([Tensor("x", "FP32", [1, 2], [1, 2])]),
            False,
        ),
        (
            tensors(1.0),
            InferenceRequest([Tensor("x", "FP32", [1], [1.0])], outputs=[{"name": "y"}]),
            False,
        ),
    ],
    ids=[
        "id-ignored",
        "1-is-1.0",
        "other-value",
        "other-order",
        "other-type",
        "other-shape",
        "outputs",
    ],
)
async def test_the_key_is_what_decides_the_answer(
    make_runtime: MakeRuntime, first: InferenceRequest, second: InferenceRequest, same: bool
) -> None:
    assert (digest(first) == digest(second)) is same
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime, first), downstream)
    again = call_for(runtime, second)
    await policy(again, downstream)
    assert again.cache == ("hit" if same else "miss")
    assert len(downstream.calls) == (1 if same else 2)


async def test_the_key_holds_the_resolved_version(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime, pin="1"), downstream)
    other = call_for(runtime, pin="2")
    await policy(other, downstream)
    assert other.cache == "miss"
    unpinned = call_for(runtime)  # the default version, "1": the pinned call's entry
    await policy(unpinned, downstream)
    assert unpinned.cache == "hit"
    assert downstream.versions == ["1", "2"]


async def test_no_store_neither_reads_nor_writes(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime), downstream)  # an entry to ignore
    bypass = call_for(runtime, headers=[("Cache-Control", "no-store")])
    reply = await policy(bypass, downstream)
    assert value_of(reply) == 2
    assert reply.header("Cache-Status") == "model-gateway; fwd=request"
    assert bypass.cache == "bypass"
    fresh = call_for(runtime, tensors(5.0), headers=[("cache-control", "max-age=0, No-Store")])
    await policy(fresh, downstream)
    later = call_for(runtime, tensors(5.0))
    await policy(later, downstream)
    assert later.cache == "miss"  # the no-store answer was not kept
    assert len(downstream.calls) == 4


async def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached())
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime), downstream)
    revalidate = call_for(runtime, headers=[("Cache-Control", "no-cache")])
    reply = await policy(revalidate, downstream)
    assert value_of(reply) == 2
    assert reply.header("Cache-Status") == "model-gateway; fwd=request; stored"
    assert revalidate.cache == "bypass"
    later = call_for(runtime)
    assert value_of(await policy(later, downstream)) == 2  # the fresh answer replaced the old
    assert later.cache == "hit"
    assert len(downstream.calls) == 2


class Gate:
    """A ``call_next`` that counts its calls and answers once the test says go."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls = 0
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, call: Call) -> Reply:
        self.calls += 1
        self.entered.set()
        await self.go.wait()
        reply = answer(self.calls)
        reply.status = self.status
        return reply


async def test_identical_concurrent_misses_collapse_into_one_call(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached())
    policy, gate = cache_of(runtime), Gate()
    calls = [call_for(runtime) for _ in range(5)]
    answers = asyncio.gather(*(policy(call, gate) for call in calls))
    await gate.entered.wait()  # the first is at the backend; the others have joined it
    gate.go.set()
    replies = await answers
    assert gate.calls == 1
    assert [value_of(r) for r in replies] == [1] * 5
    assert sorted(c.cache or "" for c in calls) == ["collapsed"] * 4 + ["miss"]
    statuses = sorted(r.header("Cache-Status") or "" for r in replies)
    assert statuses == ["model-gateway; fwd=miss; collapsed"] * 4 + [
        "model-gateway; fwd=miss; stored"
    ]
    assert len({id(r) for r in replies}) == 5


async def test_a_reply_other_than_200_is_not_stored(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())
    policy = cache_of(runtime)

    def partial(n: int) -> Reply:
        reply = answer(n)
        reply.status = 203
        return reply

    downstream = Downstream(reply=partial)
    first = call_for(runtime)
    reply = await policy(first, downstream)
    assert reply.status == 203
    assert reply.header("Cache-Status") == "model-gateway; fwd=miss; fwd-status=203"
    assert first.probe is not None
    assert await runtime.cache.get(first.probe) is None
    again = call_for(runtime)
    await policy(again, downstream)
    assert again.cache == "miss"
    assert len(downstream.calls) == 2


async def test_collapsed_callers_of_an_unstored_reply_each_get_their_own(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached())
    policy, gate = cache_of(runtime), Gate(status=203)
    calls = [call_for(runtime) for _ in range(3)]
    answers = asyncio.gather(*(policy(call, gate) for call in calls))
    await gate.entered.wait()
    gate.go.set()
    replies = await answers
    assert gate.calls == 1
    assert len({id(r) for r in replies}) == 3


async def test_a_miss_keeps_the_headers_set_nearer_the_backend(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached())

    def tagged(n: int) -> Reply:
        reply = answer(n)
        reply.set_header("X-Backend", "b1")
        return reply

    reply = await cache_of(runtime)(call_for(runtime), Downstream(reply=tagged))
    assert reply.header("Cache-Status") == "model-gateway; fwd=miss; stored"
    assert reply.header("X-Backend") == "b1"


async def test_an_answer_bigger_than_max_entry_bytes_is_not_stored(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached("{ttl: 60s, max_entry_bytes: 16}"))
    policy, downstream = cache_of(runtime), Downstream()
    reply = await policy(call_for(runtime), downstream)
    assert value_of(reply) == 1
    assert reply.header("Cache-Status") == "model-gateway; fwd=miss"
    again = call_for(runtime)
    await policy(again, downstream)
    assert again.cache == "miss"


async def test_a_failed_miss_stores_nothing_and_frees_the_fill_lock(
    make_runtime: MakeRuntime, services: Services
) -> None:
    runtime = await make_runtime(cached())
    policy = cache_of(runtime)
    call = call_for(runtime)
    with pytest.raises(BadGateway):
        await policy(call, Downstream(error=BadGateway("the model server answered 500")))
    assert call.probe is not None
    assert await runtime.cache.get(call.probe) is None
    assert await services.store.cache_lock(call.probe.group, call.probe.key, 1.0)  # free


async def put_entry(runtime: Runtime, call: Call, value: float, age: float) -> None:
    """An entry for ``call`` as stored ``age`` seconds ago, still in the store."""
    spec = runtime.cache.specs["m"]
    probe = await runtime.cache.key(call, spec)
    response = InferenceResponse(outputs=[Tensor("y", "FP32", [1], [value])])
    fresh = Entry.of(response, "m", call.version or "", {})
    raw = dataclasses.replace(fresh, stored_at=time.time() - age).encode()
    assert await runtime.cache.put(probe, raw, 3600, unlock=False)


STALE = "{ttl: 60s, stale_if_error: 5m}"


async def test_stale_if_error_serves_an_expired_entry_when_the_backend_fails(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached(STALE))
    policy = cache_of(runtime)
    await put_entry(runtime, call_for(runtime), 42.0, age=120)
    call = call_for(runtime)
    reply = await policy(call, Downstream(error=BadGateway("the model server answered 500")))
    assert value_of(reply) == 42
    assert reply.header("Cache-Status") == (
        "model-gateway; fwd=stale; fwd-status=502; detail=stale-if-error"
    )
    assert reply.header("Age") == "120"
    assert call.cache == "stale"


@pytest.mark.parametrize(
    ("cache", "age", "error"),
    [
        (STALE, 120, UpstreamError("the model server answered 400: bad input", status=400)),
        (STALE, 400, BadGateway("too old to serve: 60s + 5m")),
        ("{ttl: 60s}", 120, BadGateway("no stale_if_error")),
    ],
    ids=["client-error", "too-old", "not-configured"],
)
async def test_stale_if_error_has_its_limits(
    make_runtime: MakeRuntime, cache: str, age: float, error: GatewayError
) -> None:
    runtime = await make_runtime(cached(cache))
    policy = cache_of(runtime)
    await put_entry(runtime, call_for(runtime), 42.0, age=age)
    with pytest.raises(type(error)):
        await policy(call_for(runtime), Downstream(error=error))


async def test_an_expired_entry_is_refreshed_when_the_backend_answers(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(cached(STALE))
    policy, downstream = cache_of(runtime), Downstream()
    await put_entry(runtime, call_for(runtime), 42.0, age=120)
    call = call_for(runtime)
    reply = await policy(call, downstream)
    assert value_of(reply) == 1
    assert reply.header("Cache-Status") == "model-gateway; fwd=stale; stored"
    assert call.cache == "stale"
    later = call_for(runtime)
    assert value_of(await policy(later, downstream)) == 1
    assert later.cache == "hit"


async def test_a_timeout_is_served_stale_too(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(cached(STALE))
    await put_entry(runtime, call_for(runtime), 42.0, age=61)
    reply = await cache_of(runtime)(call_for(runtime), Downstream(error=UpstreamTimeout("slow")))
    assert reply.header("Cache-Status") == (
        "model-gateway; fwd=stale; fwd-status=504; detail=stale-if-error"
    )


@pytest.mark.parametrize(("shared", "hit"), [("false", False), ("true", True)])
async def test_tenants_share_entries_only_when_the_cache_is_shared(
    make_runtime: MakeRuntime, shared: str, hit: bool
) -> None:
    runtime = await make_runtime(cached(f"{{ttl: 60s, shared: {shared}}}"))
    policy, downstream = cache_of(runtime), Downstream()
    await policy(call_for(runtime, caller=make_caller("acme")), downstream)
    same = call_for(runtime, caller=make_caller("acme", subject="another-key"))
    await policy(same, downstream)
    assert same.cache == "hit"  # the tenant's entry, whichever of its keys asks
    for other in (make_caller("globex"), None):
        call = call_for(runtime, caller=other)
        await policy(call, downstream)
        assert call.cache == ("hit" if hit else "miss")
    assert len(downstream.calls) == (1 if hit else 3)


async def test_an_uncached_model_passes_through(make_runtime: MakeRuntime) -> None:
    routes = cached() + "  other:\n    versions:\n      '1': {backend: b1}\n"
    runtime = await make_runtime(routes)
    policy, downstream = cache_of(runtime), Downstream()
    for _ in range(2):
        call = make_call("other")
        call.resolved = runtime.resolve("other", None)
        reply = await policy(call, downstream)
        assert call.cache is None
        assert reply.header("Cache-Status") is None
    assert len(downstream.calls) == 2
