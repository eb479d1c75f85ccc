"""The traffic policy on its own: which version serves a call, and what it reports."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from gateway.call import CacheResult, Call, Reply
from gateway.config.live import Runtime
from gateway.errors import BadGateway
from gateway.traffic.choose import rendezvous
from policies.traffic import TrafficPolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import Downstream, answer, make_call, make_caller, toy_routes

pytestmark = pytest.mark.anyio


@dataclass
class FakeControl:
    """A rollout controller whose weights the test sets, recording every answer observed."""

    live: dict[str, float] | None
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def weights(self, model: str) -> Mapping[str, float] | None:
        return self.live

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append((model, version, status))

    def arm(self, model: str, version: str) -> str | None:
        return None


def traffic(runtime: Runtime) -> TrafficPolicy:
    policy = TrafficPolicy.build(runtime)
    assert policy is not None
    return policy


async def versions_of(policy: TrafficPolicy, calls: list[Call]) -> list[str | None]:
    downstream = Downstream()
    for call in calls:
        reply = await policy(call, downstream)
        assert reply.header("X-Model-Version") == call.version
    return downstream.versions


async def test_a_pinned_call_keeps_its_version(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(toy_routes('    traffic: {"1": 100}'))
    policy, downstream = traffic(runtime), Downstream()
    call = make_call(pin="2")
    reply = await policy(call, downstream)
    assert downstream.versions == ["2"]
    assert call.resolved is not None
    assert (call.resolved.model, call.resolved.target.version) == ("m", "2")
    assert call.resolved.backend is runtime.backends["b2"]
    assert reply.header("X-Model-Version") == "2"


async def test_the_version_header_set_nearer_the_backend_stays(make_runtime: MakeRuntime) -> None:
    policy = traffic(await make_runtime(toy_routes()))

    def tagged(n: int) -> Reply:
        reply = answer(n)
        reply.set_header("X-Model-Version", "backend-says")
        return reply

    reply = await policy(make_call(), Downstream(reply=tagged))
    assert reply.header("X-Model-Version") == "backend-says"
    assert [v for k, v in reply.headers if k.lower() == "x-model-version"] == ["backend-says"]


@pytest.mark.parametrize(
    ("split", "calls", "expected"),
    [
        ('{"1": 70, "2": 30}', 10, {"1": 7, "2": 3}),
        ('{"1": 70, "2": 30}', 100, {"1": 70, "2": 30}),
        ('{"1": 50, "2": 50}', 6, {"1": 3, "2": 3}),
        ('{"1": 0, "2": 100}', 5, {"2": 5}),
        ('{"1": 34, "2": 33, "3": 33}', 100, {"1": 34, "2": 33, "3": 33}),
    ],
)
async def test_unpinned_calls_follow_the_split_exactly(
    make_runtime: MakeRuntime, split: str, calls: int, expected: dict[str, int]
) -> None:
    runtime = await make_runtime(toy_routes(f"    traffic: {split}", versions=("1", "2", "3")))
    chosen = await versions_of(traffic(runtime), [make_call() for _ in range(calls)])
    assert Counter(chosen) == expected
    weights = {v: n / calls for v, n in expected.items()}
    for n in range(1, calls + 1):  # smooth: every prefix within one call of its share
        counts = Counter(chosen[:n])
        assert all(abs(counts[v] - n * w) <= 1 for v, w in weights.items()), (n, counts)


async def test_without_a_split_the_default_version_serves(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(toy_routes(versions=("2", "1", "3")))  # default "2", not the top
    assert await versions_of(traffic(runtime), [make_call() for _ in range(3)]) == ["2"] * 3


def with_header(who: str) -> Call:
    return make_call(headers=[("x-user", who)])


def with_cookie(who: str) -> Call:
    return make_call(headers=[("Cookie", "a=1"), ("Cookie", f"b=2; uid={who}; z=3")])


def as_tenant(who: str) -> Call:
    return make_call(caller=make_caller(who))


def with_key(who: str) -> Call:
    return make_call(caller=make_caller("acme", subject=who))


@pytest.mark.parametrize(
    ("sticky", "call_of"),
    [
        ("{by: header, name: X-User}", with_header),
        ("{by: cookie, name: uid}", with_cookie),
        ("{by: tenant}", as_tenant),
        ("{by: api_key}", with_key),
    ],
    ids=["header", "cookie", "tenant", "api_key"],
)
async def test_sticky_callers_keep_their_version(
    make_runtime: MakeRuntime, sticky: str, call_of: Callable[[str], Call]
) -> None:
    split = {"1": 50.0, "2": 50.0}
    runtime = await make_runtime(
        toy_routes(f'    traffic: {{"1": 50, "2": 50}}\n    sticky: {sticky}')
    )
    policy = traffic(runtime)
    chosen: dict[str, set[str | None]] = {}
    for who in [f"user-{i}" for i in range(40)]:
        calls = [call_of(who) for _ in range(4)]
        chosen[who] = set(await versions_of(policy, calls))
    assert all(len(versions) == 1 for versions in chosen.values())
    assert {who: versions.pop() for who, versions in chosen.items()} == {
        who: rendezvous("m", who, split) for who in chosen
    }
    assert {rendezvous("m", who, split) for who in chosen} == {"1", "2"}  # both get callers


async def test_a_sticky_model_without_the_callers_key_round_robins(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(
        toy_routes('    traffic: {"1": 50, "2": 50}\n    sticky: {by: header, name: X-User}')
    )
    chosen = await versions_of(traffic(runtime), [make_call() for _ in range(4)])
    assert chosen == ["1", "2", "1", "2"]


def take_out(runtime: Runtime, version: str, how: str) -> None:
    live = runtime.backends[f"b{version}"]
    key = next(t.key for t in live.targets if t.version == version)
    for replica in live.pool.replicas:
        if how == "unready":
            replica.unready.add(key)
        else:
            replica.ejected_until = time.monotonic() + 60


@pytest.mark.parametrize("how", ["unready", "ejected"])
async def test_a_version_without_a_serving_replica_is_routed_around(
    make_runtime: MakeRuntime, how: str
) -> None:
    runtime = await make_runtime(toy_routes('    traffic: {"1": 50, "2": 50}'))
    take_out(runtime, "2", how)
    assert not runtime.serving("m", "2")
    policy = traffic(runtime)
    assert await versions_of(policy, [make_call() for _ in range(6)]) == ["1"] * 6
    assert await versions_of(policy, [make_call(pin="2")]) == ["2"]  # a pin is kept anyway


async def test_when_every_version_is_down_the_split_holds(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(toy_routes('    traffic: {"1": 50, "2": 50}'))
    take_out(runtime, "1", "ejected")
    take_out(runtime, "2", "unready")
    chosen = await versions_of(traffic(runtime), [make_call() for _ in range(4)])
    assert Counter(chosen) == {"1": 2, "2": 2}  # the backend's own 503 answers, not ours


@pytest.mark.parametrize(
    ("model", "pin"), [("nope", None), ("nope", "1"), ("m", "9")], ids=["model", "both", "pin"]
)
async def test_an_unknown_model_or_version_is_left_for_the_terminal(
    make_runtime: MakeRuntime, model: str, pin: str | None
) -> None:
    control = FakeControl(None)
    policy = traffic(await make_runtime(toy_routes(), traffic=control))
    downstream, call = Downstream(), make_call(model, pin=pin)
    reply = await policy(call, downstream)
    assert downstream.calls == [call]
    assert call.resolved is None
    assert reply.header("X-Model-Version") is None
    assert control.seen == []


async def test_a_status_call_without_a_pin_chooses_no_version(make_runtime: MakeRuntime) -> None:
    control = FakeControl(None)
    policy = traffic(
        await make_runtime(toy_routes('    traffic: {"1": 50, "2": 50}'), traffic=control)
    )
    downstream = Downstream()
    reply = await policy(make_call(kind="status"), downstream)
    assert downstream.versions == [None]
    assert reply.header("X-Model-Version") is None
    described = await policy(make_call(kind="metadata"), downstream)
    assert described.header("X-Model-Version") == downstream.versions[-1] == "1"
    assert control.seen == []  # only inference answers count for a rollout


async def test_live_weights_win_and_every_answer_is_observed(make_runtime: MakeRuntime) -> None:
    control = FakeControl({"1": 50, "2": 50})
    runtime = await make_runtime(toy_routes('    traffic: {"1": 100}'), traffic=control)
    policy = traffic(runtime)

    async def version_2_fails(call: Call) -> Reply:
        if call.version == "2":
            raise BadGateway("the model server answered 500: boom")
        return answer(1)

    statuses: list[int] = []
    reported: list[str | None] = []
    for _ in range(10):
        try:
            reply = await policy(make_call(), version_2_fails)
        except BadGateway as exc:
            statuses.append(exc.status)
            reported.append(exc.headers["X-Model-Version"])
        else:
            statuses.append(reply.status)
            reported.append(reply.header("X-Model-Version"))
    assert Counter(statuses) == {200: 5, 502: 5}
    assert reported == ["1", "2"] * 5
    assert Counter(control.seen) == {("m", "1", 200): 5, ("m", "2", 502): 5}
    control.live = None  # no rollout running: routes.yaml's split again
    downstream = Downstream()
    for _ in range(5):
        await policy(make_call(), downstream)
    assert downstream.versions == ["1"] * 5
    assert len(control.seen) == 15


@pytest.mark.parametrize("cache", ["hit", "collapsed", "miss", None])
async def test_answers_from_the_cache_are_not_the_versions_work(
    make_runtime: MakeRuntime, cache: CacheResult | None
) -> None:
    """A hit or a collapsed answer would flatter a canary's error rate and p99: the rollout
    controller sees only answers the version computed."""
    control = FakeControl({"1": 100})
    runtime = await make_runtime(toy_routes('    traffic: {"1": 100}'), traffic=control)

    async def from_the_cache(call: Call) -> Reply:
        call.cache = cache
        return answer(1)

    await traffic(runtime)(make_call(), from_the_cache)
    assert control.seen == ([] if cache in ("hit", "collapsed") else [("m", "1", 200)])


async def test_live_weights_naming_unknown_versions_fall_back_to_routes_yaml(
    make_runtime: MakeRuntime,
) -> None:
    control = FakeControl({"7": 100})
    runtime = await make_runtime(toy_routes('    traffic: {"1": 0, "2": 100}'), traffic=control)
    assert await versions_of(traffic(runtime), [make_call() for _ in range(3)]) == ["2"] * 3
