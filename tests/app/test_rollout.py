"""The rollout controller's state machine and gates, on each real store (in memory and Redis),
driven tick by tick on a hand-moved clock; then one gateway, its admin API and the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.cli.main import main
from gateway.config.model import RouteTable
from gateway.errors import GatewayError
from gateway.store import MemoryStore, Store
from gateway.store.redis.store import RedisStore
from gateway.traffic.rollout import RolloutController
from tests.conftest import StartGateway
from tests.fakes import REPLY, FakeReplica
from tests.support import ADMIN, ADMIN_TOKEN, INPUT0, V2, backend, model, routes_yaml, versions

pytestmark = pytest.mark.anyio

GATES = {"max_error_rate": "5%", "max_p99": "200ms", "min_requests": 20}
ROLLOUT = {"canary": "2", "steps": [10, 50, 100], "interval": "1s", "gates": GATES}


def routes(rollout: dict[str, Any] | None = ROLLOUT, **models: dict[str, Any]) -> RouteTable:
    """Model ``fraud`` (versions "1" to "3", "1" the default) with ``rollout``, and ``models``
    beside it, as the gateway holds its table."""
    fraud = model(versions("b", "1", "2", "3"), default="1", rollout=rollout)
    backends = {"b": backend("kserve", "http://127.0.0.1:9")}
    text = routes_yaml(backends, {"fraud": fraud, **models})
    return RouteTable.model_validate(yaml.safe_load(text))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """The running route table, swapped by a test as a reload would."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table

    def __call__(self) -> RouteTable:
        return self.table


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' views of one store: one MemoryStore, or two RedisStores on one prefix."""
    if request.param == "memory":
        store = MemoryStore()
        yield store, store
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    a, b = RedisStore.from_url(url, prefix=prefix), RedisStore.from_url(url, prefix=prefix)
    yield a, b
    await a.close()
    await b.close()


def controller(store: Store, table: Table, clock: Clock, name: str) -> RolloutController:
    made = RolloutController(store, CollectorRegistry(), clock=clock, holder=name)
    made.follow(table)
    return made


@pytest.fixture
def clock() -> Clock:
    return Clock()


def feed(
    c: RolloutController, version: str, n: int, status: int = 200, seconds: float = 0.01
) -> None:
    for _ in range(n):
        c.observe("fraud", version, status, seconds)


async def reasons(c: RolloutController) -> list[tuple[str | None, str, str]]:
    """(from, to, reason) of each event, oldest first."""
    return [(e["from"], e["to"], e["reason"]) for e in reversed(await c.events("fraud"))]


async def test_a_healthy_canary_advances_step_by_step_and_completes(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    c = controller(stores[0], Table(routes()), clock, "a")
    await c.tick()
    assert c.driving
    assert c.weights("fraud") == {"1": 90, "2": 10}
    for expected in ({"1": 50, "2": 50}, {"2": 100}):
        feed(c, "2", 20)
        feed(c, "1", 20)
        await c.tick()  # the interval is not over: the step holds
        assert c.weights("fraud") != expected
        clock.now += 1
        await c.tick()
        assert c.weights("fraud") == expected
    feed(c, "2", 20)
    clock.now += 1
    await c.tick()
    status = await c.status("fraud")
    assert status["status"] == "completed"
    assert c.weights("fraud") == {"2": 100}
    events = await reasons(c)
    assert [(f, t) for f, t, _ in events] == [
        (None, "running"),
        ("running", "running"),
        ("running", "running"),
        ("running", "completed"),
    ]
    assert "gates passed at 10%" in events[1][2]
    assert "gates passed at 100%" in events[3][2]
    c.observe("fraud", "2", 200, 0.01)  # completed: nothing is counted any more
    assert c.weights("fraud") == {"2": 100}


async def test_too_little_traffic_neither_passes_nor_fails_a_step(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    c = controller(stores[0], Table(routes()), clock, "a")
    await c.tick()
    feed(c, "2", 5, status=500)  # every one failed, but 5 of the 20 a step needs
    clock.now += 10
    await c.tick()
    await c.tick()
    status = await c.status("fraud")
    assert (status["status"], status["step"]) == ("running", 0)
    waits = [r for _, _, r in await reasons(c) if r.startswith("waiting for traffic")]
    assert waits == ["waiting for traffic: 5 of 20 canary requests"]  # noted once per step
    feed(c, "2", 15)  # now 5 errors in 20: 25 % > 5 %
    await c.tick()
    assert (await c.status("fraud"))["status"] == "rolled_back"


async def test_errors_roll_the_canary_back_at_once_without_waiting_for_the_interval(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    c = controller(stores[0], Table(routes()), clock, "a")
    await c.tick()
    feed(c, "2", 18)
    feed(c, "2", 2, status=503)
    await c.tick()  # same instant: the step's interval is far from over
    assert c.weights("fraud") == {"1": 100}
    status = await c.status("fraud")
    assert status["status"] == "rolled_back"
    assert status["figures"]["2"]["errors"] == 2
    _, to, reason = (await reasons(c))[-1]
    assert (to, reason) == ("rolled_back", "gate failed at 10%: error rate 10.0% > 5.0%")
    clock.now += 10
    await c.tick()
    assert c.weights("fraud") == {"1": 100}  # stays rolled back


async def test_a_slow_canary_fails_the_p99_gates(stores: tuple[Store, Store], clock: Clock) -> None:
    c = controller(stores[0], Table(routes()), clock, "a")
    await c.tick()
    feed(c, "2", 20, seconds=0.5)
    await c.tick()
    assert c.weights("fraud") == {"1": 90, "2": 10}  # latency is judged at the step's end
    clock.now += 1
    await c.tick()
    assert c.weights("fraud") == {"1": 100}
    assert "p99" in (await reasons(c))[-1][2]


@pytest.mark.parametrize(("canary_seconds", "passes"), [(0.012, True), (0.05, False)])
async def test_the_p99_ratio_gate_compares_with_the_stable_version(
    stores: tuple[Store, Store], clock: Clock, canary_seconds: float, passes: bool
) -> None:
    table = routes({**ROLLOUT, "gates": {"max_p99_ratio": 1.5, "min_requests": 20}})
    c = controller(stores[0], Table(table), clock, "a")
    await c.tick()
    feed(c, "1", 20, seconds=0.01)
    feed(c, "2", 20, seconds=canary_seconds)
    clock.now += 1
    await c.tick()
    assert c.weights("fraud") == ({"1": 50, "2": 50} if passes else {"1": 100})
    if not passes:
        assert "× stable's" in (await reasons(c))[-1][2]


async def test_one_replica_drives_on_the_figures_of_all(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    table = Table(routes())
    a = controller(stores[0], table, clock, "a")
    b = controller(stores[1], table, clock, "b")
    await a.tick()
    await b.tick()
    assert (a.driving, b.driving) == (True, False)
    assert a.weights("fraud") == b.weights("fraud") == {"1": 90, "2": 10}
    feed(a, "2", 10)  # each replica saw half of what the step needs
    feed(b, "2", 10)
    clock.now += 1
    await b.tick()  # sends its counts
    await a.tick()  # sends its own, and judges the sum
    await b.tick()
    assert a.weights("fraud") == b.weights("fraud") == {"1": 50, "2": 50}
    assert (await b.status("fraud"))["figures"]["2"]["requests"] == 0  # a fresh step
    await a.close()  # releases the lease: the other takes over at its next tick
    await b.tick()
    assert b.driving
    feed(b, "2", 20)
    clock.now += 1
    await b.tick()
    assert b.weights("fraud") == {"2": 100}


async def test_operator_commands_and_their_events(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    table = Table(routes())
    a = controller(stores[0], table, clock, "a")
    b = controller(stores[1], table, clock, "b")
    await a.tick()
    await b.tick()
    paused = await b.command("fraud", "pause", "alice")  # on the replica that does not drive
    assert paused.status == "paused"
    assert await b.command("fraud", "pause", "alice") == paused  # nothing to do
    feed(a, "2", 20)
    clock.now += 5
    await a.tick()
    assert (await a.status("fraud"))["step"] == 0  # paused: no promotion
    promoted = await b.command("fraud", "promote", "alice")
    assert (promoted.status, promoted.step) == ("running", 1)
    assert b.weights("fraud") == {"1": 50, "2": 50}  # at once on the replica that was asked
    await a.tick()
    assert a.weights("fraud") == {"1": 50, "2": 50}
    assert (await a.command("fraud", "abort", "bob")).status == "aborted"
    await b.tick()
    assert b.weights("fraud") == {"1": 100}
    with pytest.raises(GatewayError) as refused:
        await b.command("fraud", "promote", "bob")
    assert refused.value.status == 409
    restarted = await b.command("fraud", "resume", "carol")
    assert (restarted.status, restarted.step) == ("running", 0)
    events = await reasons(a)
    assert [(f, t, r) for f, t, r in events[1:]] == [
        ("running", "paused", "paused (by alice)"),
        ("paused", "running", "promoted to 50% (by alice)"),
        ("running", "aborted", "aborted (by bob)"),
        ("aborted", "running", "restarted from step 0 (by carol)"),
    ]
    with pytest.raises(GatewayError) as missing:
        await a.command("other", "pause", "alice")
    assert missing.value.status == 404


async def test_routes_yaml_edits_restart_abort_or_leave_the_rollout(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    table = Table(routes())
    a = controller(stores[0], table, clock, "a")
    b = controller(stores[1], table, clock, "b")
    await a.tick()
    feed(a, "2", 20)
    clock.now += 1
    await a.tick()
    before = await a.status("fraud")
    assert before["step"] == 1
    # unrelated edit: another model, the default's backend timeout; the rollout runs on
    table.table = routes(other=model(versions("b", "1")))
    await a.tick()
    await b.tick()
    after = await a.status("fraud")
    assert (after["step"], after["step_started_at"]) == (1, before["step_started_at"])
    assert b.weights("fraud") == {"1": 50, "2": 50}
    # a changed plan restarts at step 0
    table.table = routes({**ROLLOUT, "steps": [20, 100]})
    await a.tick()
    await b.tick()
    assert a.weights("fraud") == b.weights("fraud") == {"1": 80, "2": 20}
    assert (await reasons(a))[-1][2] == "the plan changed in routes.yaml: restarting from step 0"
    # a new canary is a new plan too
    table.table = routes({**ROLLOUT, "canary": "3", "steps": [20, 100]})
    await a.tick()
    assert a.weights("fraud") == {"1": 80, "3": 20}
    # removed: aborted, and routes.yaml's weights hold again (None) on every replica
    table.table = routes(rollout=None)
    await a.tick()
    await b.tick()
    assert a.weights("fraud") is None
    assert b.weights("fraud") is None
    last = (await reasons(a))[-1]
    assert last == ("running", "aborted", "the rollout was removed from routes.yaml")
    await a.tick()
    assert len(await a.events("fraud")) == len(await reasons(a))  # recorded once
    # declared again: a fresh start
    table.table = routes()
    await a.tick()
    assert a.weights("fraud") == {"1": 90, "2": 10}
    assert (await reasons(a))[-1][2] == "started"


# ---------------------------------------------------------------------------- one real gateway


def gateway_routes(v1: str, v2: str, interval: str = "300ms") -> str:
    """Model ``linear``: version "1" on a fake at ``v1``, "2" at ``v2``, rolled out to "2"."""
    gates = {"max_error_rate": "10%", "min_requests": 5}
    rollout = {"canary": "2", "steps": [50, 100], "interval": interval, "gates": gates}
    served = {
        "1": {"backend": "one", "inputs": [INPUT0]},
        "2": {"backend": "two", "inputs": [INPUT0]},
    }
    return routes_yaml(
        {"one": backend("kserve", v1), "two": backend("kserve", v2)},
        {"linear": model(served, default="1", rollout=rollout)},
    )


async def test_the_admin_api_and_the_cli_drive_a_rollout_through_a_gateway(
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = await FakeReplica(body=REPLY).start()
    v2 = await FakeReplica(body=REPLY).start()
    try:
        gw = await start_gateway(gateway_routes(v1.url, v2.url, "1h"), admin_token=ADMIN_TOKEN)
        client = gw.client
        assert (await client.get("/admin/rollouts/linear")).status_code == 401
        status = (await client.get("/admin/rollouts/linear", headers=ADMIN)).json()
        assert (status["status"], status["applied_weights"]) == ("running", {"1": 50, "2": 50})
        served = set()
        for _ in range(10):
            response = await client.post("/v2/models/linear/infer", json=V2)
            assert response.status_code == 200, response.text
            served.add(response.headers["x-model-version"])
        assert served == {"1", "2"}  # the traffic policy follows the rollout's weights
        figures = (await client.get("/admin/rollouts/linear", headers=ADMIN)).json()["figures"]
        deadline = time.monotonic() + 10
        while figures["2"]["requests"] < 5:  # sent within a tick (at most 250 ms)
            assert time.monotonic() < deadline, f"the figures never arrived: {figures}"
            await asyncio.sleep(0.05)
            figures = (await client.get("/admin/rollouts/linear", headers=ADMIN)).json()["figures"]
        assert figures["1"]["requests"] + figures["2"]["requests"] == 10

        monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)

        async def cli(*args: str) -> Any:
            capsys.readouterr()
            code = await asyncio.to_thread(main, ["rollout", *args, "--admin-url", gw.url])
            out = capsys.readouterr().out
            assert code == 0, out
            return json.loads(out)

        assert (await cli("pause", "linear"))["status"] == "paused"
        promoted = await cli("promote", "linear")  # to the last step, 100 %
        assert (promoted["status"], promoted["applied_weights"]) == ("running", {"2": 100})
        assert (await cli("promote", "linear"))["status"] == "completed"
        listed = await cli("status")
        assert [(r["model"], r["applied_weights"]) for r in listed["rollouts"]] == [
            ("linear", {"2": 100})
        ]
        for _ in range(5):
            response = await client.post("/v2/models/linear/infer", json=V2)
            assert response.headers["x-model-version"] == "2"
        events = (await cli("events", "linear"))["events"]
        assert [(e["to"], e["reason"]) for e in events] == [
            ("completed", "promoted: completed (by admin-token)"),
            ("running", "promoted to 100% (by admin-token)"),
            ("paused", "paused (by admin-token)"),
            ("running", "started"),
        ]
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["rollout", "abort", "linear", "--admin-url", gw.url])
        assert code == 1  # a completed rollout cannot be aborted (409)
        assert "409" in capsys.readouterr().err
        audit = (await client.get("/admin/audit", headers=ADMIN)).json()["entries"]
        assert [e["action"] for e in audit[:3]] == ["rollout.promote"] * 2 + ["rollout.pause"]
    finally:
        await v1.stop()
        await v2.stop()


async def test_a_canary_with_no_healthy_replica_is_rolled_back(
    stores: tuple[Store, Store], clock: Clock
) -> None:
    # The traffic step routes around a version with no healthy replica, so a dead canary's
    # error rate stops growing (and could even pass a gate): its health is a gate of its own.
    up = {"1": True, "2": True}
    c = controller(stores[0], Table(routes()), clock, "a")
    c.watch_health(lambda model, version: up[version])
    await c.tick()
    feed(c, "2", 20)
    feed(c, "1", 20)
    await c.tick()
    assert c.weights("fraud") == {"1": 90, "2": 10}  # healthy: the step holds
    up["2"] = False
    await c.tick()  # no need to wait for the interval
    assert c.weights("fraud") == {"1": 100}
    assert (await reasons(c))[-1] == ("running", "rolled_back", "canary '2' has no healthy replica")
    up["1"] = False  # the stable version's health is not the rollout's business
    clock.now += 10
    await c.tick()
    assert c.weights("fraud") == {"1": 100}
