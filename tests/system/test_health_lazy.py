"""Health checks where no bulk readiness API answers: TF Serving (the faithful double, whose own
statistics count every request it gets) is checked lazily, a model version when it is first
used, after a failed call and while it is unready, at most ``probes_per_second`` per replica;
a bulk call that fails (a real Triton behind a proxy that refuses the index) falls back to
per-model probes at that same bounded rate, never to a flood. Counts are exact: the schedule
runs on a fake clock where the test drives it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.backends.h1.client import Client
from gateway.backends.pool import ReplicaPool
from gateway.backends.registry import ADAPTERS
from gateway.backends.upstream import Target
from tests.conftest import StartGateway
from tests.doubles.plugin import StartTFServing, TFServingHandle
from tests.fakes import CountingProxy
from tests.servers.plugin import ServerHandle
from tests.support import backend, eventually, model, routes_yaml

pytestmark = pytest.mark.anyio
ADMIN_TOKEN = "health-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROWS = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def routed(n: int, native: dict[str, str]) -> list[Target]:
    linear = [Target("linear", v, "linear", nv) for v, nv in native.items()]
    return linear + [Target(f"m{i}", "1", f"m{i}", "1") for i in range(n)]


async def stats(double: TFServingHandle) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        found: dict[str, Any] = (await client.get(f"{double.url}/__double__/stats")).json()
    return found


@pytest.fixture
async def pool_on() -> AsyncIterator[Callable[[dict[str, Any]], ReplicaPool]]:
    """``pool_on(spec)``: the HTTP pool of a backend of ``spec``, with a fake clock for its
    health checks (``pool.health.clock``); nothing runs unless the test calls it."""
    client = Client()
    async with aiohttp.ClientSession() as session:

        def make(spec: dict[str, Any]) -> ReplicaPool:
            parsed = ADAPTERS[spec["kind"]].spec.model_validate(spec)
            pool = ReplicaPool("b", parsed, session, client)
            pool.health.clock = Clock()
            return pool

        yield make
    await client.close()


@pytest.mark.parametrize("n", [10, 1000])
async def test_tf_serving_is_probed_only_for_the_models_used_and_at_the_bounded_rate(
    start_tfserving: StartTFServing, pool_on: Callable[[dict[str, Any]], ReplicaPool], n: int
) -> None:
    double = start_tfserving()
    spec = {"kind": "tfserving", "urls": [double.url], "health": {"probes_per_second": 5}}
    pool = pool_on(spec)
    clock = pool.health.clock
    assert isinstance(clock, Clock)
    adapter = ADAPTERS["tfserving"](pool)
    targets = routed(n, {"1": "1", "2": "2"})
    for _ in range(3):
        await pool.check_once(adapter, targets)
        clock.now += 5
    seen = await stats(double)
    # the server check only (GET /v1/models, which names no model): no model probed
    assert (seen["by_route"], seen["by_model"]) == ({"status": 3}, {})
    for target in targets:  # every routed model used at once
        pool.choose(target.key, set())
    await pool.health.probe_due()
    assert (await stats(double))["by_route"] == {"status": 3 + 5}  # a second's worth
    clock.now += 1
    await pool.health.probe_due()
    clock.now += 100  # the bucket holds a second's worth, not what was not spent
    await pool.health.probe_due()
    assert (await stats(double))["by_route"] == {"status": 3 + min(n + 2, 15)}


async def test_a_tf_serving_version_that_fails_is_probed_out_and_back(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    """The running gateway, 1,000 models on one TF Serving replica: no model is probed until
    used; version 2 taken down on the server is probed after its failed call and taken out,
    probed each interval while out, and back once available."""
    double = start_tfserving()
    health = {"interval": "100ms", "timeout": "2s", "unhealthy_after": 1}
    served = {v: {"backend": "tfs", "name": "linear", "version": v} for v in ("1", "2")}
    ghosts = {
        f"m{i}": model({"1": {"backend": "tfs", "name": f"m{i}", "version": "1"}})
        for i in range(998)
    }
    tfs = backend("tfserving", double.url, health=health, retries={"attempts": 1})
    routes = routes_yaml({"tfs": tfs}, {"linear": model(served, default="1"), **ghosts})
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)

    async def rounds(count: int) -> None:
        async def done() -> bool:
            return bool((await stats(double))["by_route"].get("status", 0) >= count)

        await eventually(done, seconds=30)

    await rounds(10)
    assert (await stats(double))["by_model"] == {}  # 1,000 models, none used: none probed
    predict = "/v1/models/linear/versions/2:predict"
    assert (await gateway.client.post(predict, json=ROWS)).status_code == 200
    async with httpx.AsyncClient() as client:
        down = {"model": "linear", "version": 2, "state": "UNLOADING"}
        await client.post(f"{double.url}/__double__/model_state", json=down)
        failed = await gateway.client.post(predict, json=ROWS)
        assert failed.status_code == 404, failed.text  # TF Serving's "Servable not found"

        async def out() -> bool:
            state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
            return bool(state["backends"]["tfs"]["replicas"][0]["unready"] == ["linear/2"])

        await eventually(out)
        assert (await gateway.client.post(predict, json=ROWS)).status_code == 503  # not sent
        await client.post(
            f"{double.url}/__double__/model_state", json=down | {"state": "AVAILABLE"}
        )

    async def back() -> bool:
        return (await gateway.client.post(predict, json=ROWS)).status_code == 200

    await eventually(back)
    settled = (await stats(double))["by_model"]
    assert set(settled) == {"linear"}  # the 998 others: never probed
    total = (await stats(double))["by_route"]["status"]
    await rounds(total + 10)
    assert (await stats(double))["by_model"] == settled  # ready and unused: no more probes


@pytest.mark.parametrize("n", [10, 1000])
async def test_a_failed_bulk_call_falls_back_to_probes_at_the_bounded_rate(
    triton_server: ServerHandle, pool_on: Callable[[dict[str, Any]], ReplicaPool], n: int
) -> None:
    proxy = await CountingProxy(triton_server.url).start()
    try:
        proxy.refuse["/v2/repository/index"] = 500
        spec = {"kind": "triton", "urls": [proxy.url], "health": {"probes_per_second": 4}}
        pool = pool_on(spec)
        clock = pool.health.clock
        assert isinstance(clock, Clock)
        adapter = ADAPTERS["triton"](pool)
        targets = routed(n, {"1": "1", "2": "2"})
        await pool.check_once(adapter, targets)
        assert pool.state()["replicas"][0]["model_readiness"] == "fallback"
        for _ in range(10):  # 5 s more, asked every half second
            clock.now += 0.5
            await pool.health.probe_due()
        probes = sum(c for path, c in proxy.counts.items() if path.endswith("/ready"))
        assert probes == min(n + 2, 4 + 4 * 5)  # a second's worth, then 4 a second
        assert proxy.counts["POST /v2/repository/index"] == 1
        del proxy.refuse["/v2/repository/index"]
        clock.now += 0.5
        await pool.check_once(adapter, targets)  # the index answers again: probes stop
        clock.now += 10
        await pool.health.probe_due()
        after = sum(c for path, c in proxy.counts.items() if path.endswith("/ready"))
        assert after == probes
        assert pool.state()["replicas"][0]["model_readiness"] == "index"
    finally:
        await proxy.stop()
