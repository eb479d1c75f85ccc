"""The health checks' schedule and verdicts, against a fake server kind on a fake clock.

Counts are exact: each check the fake kind is asked is counted by replica, and the rounds and
per-model probes run when the test says (``check_once``, ``probe_due``), never on a timer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from gateway.backends.health import HealthChecker
from gateway.backends.readiness import (
    IndexUnavailable,
    ModelIndex,
    RegisteredModels,
    RepositoryIndex,
)
from gateway.backends.replica import Replica, TargetKey
from gateway.backends.spec import HealthCheck
from gateway.backends.upstream import Target

pytestmark = pytest.mark.anyio
URLS = ("http://a:1", "http://b:1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeKind:
    """A server kind's checks, answered from fields, each one counted per replica URL."""

    up: bool | None = True  # the server check's answer; None: the kind has none
    index: ModelIndex | IndexUnavailable | None = None  # None: no bulk API
    unready: set[TargetKey] = field(default_factory=set)  # what a per-model probe says
    asked: Counter[tuple[str, str]] = field(default_factory=Counter)
    probed: list[tuple[str, TargetKey]] = field(default_factory=list)

    async def server_ready(self, replica: Replica) -> bool | None:
        self.asked["server", replica.url] += 1
        return self.up

    async def model_index(self, replica: Replica) -> ModelIndex | None:
        self.asked["index", replica.url] += 1
        if isinstance(self.index, IndexUnavailable):
            raise self.index
        return self.index

    async def probe(self, replica: Replica, target: Target) -> bool:
        self.asked["probe", replica.url] += 1
        self.probed.append((replica.url, target.key))
        return target.key not in self.unready


def targets(n: int) -> list[Target]:
    return [Target(f"m{i}", "1", f"m{i}", "1") for i in range(n)]


def checker(kind: FakeKind, models: list[Target], clock: Clock, **health: object) -> HealthChecker:
    spec = HealthCheck.model_validate({"interval": 5, "unhealthy_after": 2, **health})
    replicas = [Replica(url, None) for url in URLS]
    made = HealthChecker("b", spec, replicas, None, clock)
    made.readiness = kind
    made.retarget(models)
    return made


def all_ready(models: list[Target]) -> RepositoryIndex:
    return RepositoryIndex.of((t.name, "1", "READY", "") for t in models)


@pytest.mark.parametrize("n", [10, 1000, 10_000])
async def test_with_a_bulk_index_each_replica_gets_two_requests_a_round_at_any_size(
    n: int,
) -> None:
    clock = Clock()
    models = targets(n)
    kind = FakeKind(index=all_ready(models))
    health = checker(kind, models, clock)
    for _ in range(3):
        await health.check_once()
        for key in [models[0].key, models[-1].key]:
            health.first_use(key)  # used models need no probe of their own either
        clock.now += 5
    for url in URLS:
        assert (kind.asked["server", url], kind.asked["index", url]) == (3, 3)
    assert kind.asked["probe", URLS[0]] == kind.asked["probe", URLS[1]] == 0


async def test_an_unused_model_unloaded_is_known_within_the_interval() -> None:
    clock = Clock()
    models = targets(100)
    kind = FakeKind(index=all_ready(models))
    health = checker(kind, models, clock)
    await health.check_once()
    gone = models[57]
    kind.index = RepositoryIndex.of(
        (t.name, "1", "UNAVAILABLE" if t is gone else "READY", "unloaded") for t in models
    )
    for _ in range(2):  # unhealthy_after: 2
        clock.now += 5
        await health.check_once()
    for replica in health.replicas:
        assert replica.unready == {gone.key}
        assert not replica.available(gone.key, clock.now)
    kind.index = all_ready(models)
    clock.now += 5
    await health.check_once()
    assert all(not r.unready for r in health.replicas)
    assert kind.probed == []


@pytest.mark.parametrize("n", [10, 1000])
async def test_without_a_bulk_api_only_used_models_are_probed(n: int) -> None:
    clock = Clock()
    models = targets(n)
    kind = FakeKind()
    health = checker(kind, models, clock)
    for _ in range(3):
        await health.check_once()
        clock.now += 5
    assert kind.probed == []  # nothing used: the server checks only
    assert kind.asked["server", URLS[0]] == 3
    health.first_use(models[3].key)
    health.first_use(models[3].key)  # one probe per replica however often it is used
    await health.probe_due()
    assert sorted(kind.probed) == [(url, models[3].key) for url in URLS]


async def test_a_failed_call_brings_a_probe_at_most_once_an_interval() -> None:
    clock = Clock()
    models = targets(10)
    kind = FakeKind(unready={models[0].key})
    health = checker(kind, models, clock)
    await health.check_once()
    first = health.replicas[0]
    health.first_use(models[0].key)
    await health.probe_due()  # one failed verdict each: not yet out (unhealthy_after: 2)
    assert len(kind.probed) == 2
    assert not first.unready
    kind.probed.clear()
    for _ in range(100):  # a storm of failed calls on the first replica
        health.failed(first, models[0].key)
        await health.probe_due()
        clock.now += 0.01
    assert kind.probed == []  # probed a second ago: it waits for the interval
    clock.now += 5
    health.failed(first, models[0].key)
    await health.probe_due()
    assert kind.probed == [(first.url, models[0].key)]
    assert first.unready == {models[0].key}


async def test_an_unready_model_is_probed_each_interval_until_it_is_back() -> None:
    clock = Clock()
    models = targets(10)
    kind = FakeKind(unready={models[0].key})
    health = checker(kind, models, clock, unhealthy_after=1)
    await health.check_once()
    health.first_use(models[0].key)
    await health.probe_due()
    assert all(r.unready == {models[0].key} for r in health.replicas)
    kind.probed.clear()
    for _ in range(3):
        clock.now += 5
        await health.check_once()
    assert len(kind.probed) == 3 * len(URLS)  # once a round on each replica
    kind.unready.clear()
    clock.now += 5
    await health.check_once()
    assert all(not r.unready for r in health.replicas)
    kind.probed.clear()
    clock.now += 5
    await health.check_once()
    assert kind.probed == []  # ready again: no more probes


@pytest.mark.parametrize("n", [10, 1000])
async def test_a_failed_bulk_call_falls_back_to_probes_at_the_bounded_rate(n: int) -> None:
    clock = Clock()
    models = targets(n)
    kind = FakeKind(index=IndexUnavailable("/v2/repository/index answered 404"))
    health = checker(kind, models, clock, probes_per_second=4)
    await health.check_once()
    assert health.source(health.replicas[0]) == "fallback"
    for _ in range(50):  # 5 s more, asked every 100 ms
        clock.now += 0.1
        await health.probe_due()
    for url in URLS:  # 4 at once (a second's worth), then 4 a second, never more than all
        assert kind.asked["probe", url] == min(n, 4 + 4 * 5)
    kind.index = all_ready(models)
    await health.check_round()
    assert health.source(health.replicas[0]) == "index"
    before = len(kind.probed)
    clock.now += 10
    await health.probe_due()
    assert len(kind.probed) == before  # the index answers again: the probes stop


async def test_a_server_that_does_not_answer_takes_the_replica_out_and_nothing_else_is_asked() -> (
    None
):
    clock = Clock()
    models = targets(3)
    kind = FakeKind(index=all_ready(models))
    health = checker(kind, models, clock)
    await health.check_once()
    kind.up = False
    for _ in range(2):
        clock.now += 5
        await health.check_once()
    first = health.replicas[0]
    assert first.down
    assert not first.available(None, clock.now)
    assert kind.asked["index", first.url] == 1  # not asked while the server is not up
    state = first.state(clock.now, health.targets)
    assert state["server_ready"] is False
    assert state["unready"] == ["m0/1", "m1/1", "m2/1"]  # as if each model's probe failed
    health.first_use(models[0].key)
    await health.probe_due()
    assert kind.probed == []
    kind.up = True
    clock.now += 5
    await health.check_once()
    assert not first.down
    assert first.available(models[0].key, clock.now)
    assert first.state(clock.now, health.targets)["unready"] == []


async def test_torchserves_list_rules_out_the_unregistered_and_probes_the_workers_in_use() -> None:
    clock = Clock()
    models = targets(4)
    registered = RegisteredModels(frozenset({"m0", "m1", "m2"}))
    kind = FakeKind(index=registered, unready={models[1].key})
    health = checker(kind, models, clock, unhealthy_after=1)
    await health.check_once()
    assert health.source(health.replicas[0]) == "index+probes"
    assert all(r.unready == {models[3].key} for r in health.replicas)  # not registered
    assert kind.probed == []
    health.first_use(models[1].key)  # registered, but its workers are not ready
    health.first_use(models[3].key)  # ruled out by the list already: no probe
    await health.probe_due()
    assert all(r.unready == {models[1].key, models[3].key} for r in health.replicas)
    assert {key for _, key in kind.probed} == {models[1].key}
    kind.probed.clear()
    clock.now += 5
    await health.check_once()  # the unregistered one is the list's to judge, not a probe's
    assert {key for _, key in kind.probed} == {models[1].key}


async def test_targets_can_change_without_losing_what_was_learnt() -> None:
    clock = Clock()
    models = targets(3)
    kind = FakeKind(index=RepositoryIndex.of([("m0", "1", "READY", ""), ("m1", "1", "READY", "")]))
    health = checker(kind, models, clock, unhealthy_after=1)
    await health.check_once()
    assert all(r.unready == {models[2].key} for r in health.replicas)
    health.retarget([*models, Target("m9", "1", "m9", "1")])
    assert all(r.unready == {models[2].key} for r in health.replicas)
    await health.check_once()
    assert all(r.unready == {models[2].key, ("m9", "1")} for r in health.replicas)


def test_a_default_version_is_ready_when_any_version_of_the_name_is() -> None:
    index = RepositoryIndex.from_json(
        [
            {"name": "a", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
            {"name": "a", "version": "2", "state": "READY", "reason": ""},
            {"name": "b", "state": "UNAVAILABLE", "reason": "unloaded"},
        ]
    )
    assert index.verdict(("a", None)) == (True, "")
    assert index.verdict(("a", "1")) == (False, "unloaded")
    assert index.verdict(("a", "2")) == (True, "")
    assert index.verdict(("b", None))[0] is False  # type: ignore[index]
    assert index.verdict(("c", "1")) == (False, "not in the server's repository index")


@pytest.mark.parametrize("document", [{"models": []}, [{"version": "1"}], "x"])
def test_an_index_that_is_not_the_protocols_shape_is_unavailable(document: object) -> None:
    with pytest.raises(IndexUnavailable):
        RepositoryIndex.from_json(document)
