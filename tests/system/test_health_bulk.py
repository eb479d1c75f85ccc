"""Health checks with the real servers' bulk readiness APIs: Triton's and MLServer's repository
index, TorchServe's model list. Each replica gets the same few requests a round whether 10 or
1,000 models are routed to it (counted exactly at a proxy in front of the real server), and a
model unloaded on the server is taken out within the interval, used or not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.backends.h1.client import Client
from gateway.backends.pool import ReplicaPool
from gateway.backends.registry import ADAPTERS
from gateway.backends.upstream import Target
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import CountingProxy
from tests.servers.plugin import ServerHandle, start_servers
from tests.support import V2, backend, error_of, eventually, model, routes_yaml

pytestmark = pytest.mark.anyio
ADMIN_TOKEN = "health-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXPLICIT = ("--model-control-mode=explicit", "--load-model=linear")
LIVE, INDEX = "GET /v2/health/live", "POST /v2/repository/index"
CountAt = Callable[[str], Awaitable[CountingProxy]]


@pytest.fixture
async def count_at() -> AsyncIterator[CountAt]:
    """``await count_at(url)``: a counting proxy in front of ``url``, stopped after."""
    started: list[CountingProxy] = []

    async def start(upstream: str) -> CountingProxy:
        started.append(await CountingProxy(upstream).start())
        return started[-1]

    yield start
    for proxy in started:
        await proxy.stop()


def routed(n: int, native: dict[str, str]) -> list[Target]:
    """``linear`` in the server's versions ``native`` (public → native) and ``n`` more models
    the server does not have."""
    linear = [Target("linear", v, "linear", nv) for v, nv in native.items()]
    return linear + [Target(f"m{i}", "1", f"m{i}", "1") for i in range(n)]


async def three_rounds(spec: dict[str, Any], targets: list[Target]) -> ReplicaPool:
    """The checks of a backend of ``spec``, three rounds of them (and the probes they make
    due), as the gateway's health task runs them; the pool, for its replicas' state."""
    parsed = ADAPTERS[spec["kind"]].spec.model_validate(spec)
    client = Client()
    async with aiohttp.ClientSession() as session:
        pool = ReplicaPool("b", parsed, session, client)
        adapter = ADAPTERS[parsed.kind](pool)
        for _ in range(3):
            await pool.check_once(adapter, targets)
        pool.choose(targets[0].key, set())  # a first use: a complete index needs no probe
        await pool.health.probe_due()
    await client.close()
    return pool


@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize("kind", ["triton", "mlserver"])
async def test_a_v2_replica_gets_two_requests_a_round_whatever_the_models(
    all_servers: Any, count_at: CountAt, kind: str, n: int
) -> None:
    server: ServerHandle = getattr(all_servers, kind)
    proxy = await count_at(server.url)
    spec = {"kind": "triton" if kind == "triton" else "kserve", "urls": [proxy.url]}
    pool = await three_rounds(spec, routed(n, {"1": "1", "2": "2"}))
    assert proxy.counts == {LIVE: 3, INDEX: 3}  # no per-model probe at all
    [replica] = pool.replicas
    assert replica.unready == {(f"m{i}", "1") for i in range(n)}  # not on the server
    assert not replica.down
    assert replica.available(("linear", "1"), 0.0)


@pytest.mark.parametrize("n", [10, 1000])
async def test_a_torchserve_replica_gets_a_ping_and_a_list_page_a_round(
    torchserve_server: ServerHandle, count_at: CountAt, n: int
) -> None:
    assert torchserve_server.management_url is not None
    inference = await count_at(torchserve_server.url)
    management = await count_at(torchserve_server.management_url)
    spec = {"kind": "torchserve", "urls": [inference.url], "management_urls": [management.url]}
    pool = await three_rounds(spec, routed(n, {"1": "1.0", "2": "2.0"}))
    assert inference.counts == {"GET /ping": 3}
    # one page (one model registered), then the workers of the model just used, once
    assert management.counts == {
        "GET /models?limit=100&next_page_token=0": 3,
        "GET /models/linear/1.0": 1,
    }
    [replica] = pool.replicas
    assert replica.unready == {(f"m{i}", "1") for i in range(n)}  # not registered
    assert replica.available(("linear", "1.0"), 0.0)


def triton_routes(url: str, protocol: str, **extra: Any) -> str:
    served = {v: {"backend": "triton", "name": "linear", "version": v} for v in ("1", "2")}
    health = {"interval": "100ms", "timeout": "2s", "unhealthy_after": 1}
    triton = backend("triton", url, protocol=protocol, health=health)
    models = {"linear": model(served, default="1"), **extra}
    return routes_yaml({"triton": triton}, models)


async def replica_state(gateway: RunningGateway, name: str) -> dict[str, Any]:
    state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
    found: dict[str, Any] = state["backends"][name]["replicas"][0]
    return found


async def unready(gateway: RunningGateway, name: str) -> list[str]:
    found: list[str] = (await replica_state(gateway, name))["unready"]
    return found


async def infer(gateway: RunningGateway, model_name: str = "linear") -> httpx.Response:
    return await gateway.client.post(f"/v2/models/{model_name}/versions/1/infer", json=V2)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
async def test_a_model_unloaded_on_triton_is_out_within_the_interval_without_a_request(
    start_gateway: StartGateway, start_triton: Callable[..., ServerHandle], protocol: str
) -> None:
    triton = start_triton(*EXPLICIT)
    url = triton.url if protocol == "http" else f"grpc://{triton.grpc_address}"
    gateway = await start_gateway(triton_routes(url, protocol), admin_token=ADMIN_TOKEN)
    assert (await infer(gateway)).status_code == 200
    async with httpx.AsyncClient(timeout=60) as client:
        unloaded = await client.post(f"{triton.url}/v2/repository/models/linear/unload")
        assert unloaded.status_code == 200, unloaded.text

        async def out() -> bool:
            return await unready(gateway, "triton") == ["linear/1", "linear/2"]

        await eventually(out)
        seen = await replica_state(gateway, "triton")
        assert (seen["model_readiness"], seen["server_ready"]) == ("index", True)
        response = await infer(gateway)
        assert response.status_code == 503, response.text
        assert error_of(response)[0] == "no_healthy_replica"
        assert (await gateway.client.get("/readyz")).json()["status"] == "ready"
        loaded = await client.post(f"{triton.url}/v2/repository/models/linear/load")
        assert loaded.status_code == 200, loaded.text

    async def back() -> bool:
        return await unready(gateway, "triton") == []

    await eventually(back)
    response = await infer(gateway)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0, 9.0]


async def test_a_model_unloaded_on_mlserver_is_out_and_back(
    start_gateway: StartGateway, tmp_path: Path, count_at: CountAt
) -> None:
    """A private MLServer (the session's is shared), behind a counting proxy: the unload is
    seen through the index alone, with no per-model probe."""
    mlserver = start_servers(["mlserver"], tmp_path / "mls")["mlserver"]
    try:
        proxy = await count_at(mlserver.url)
        served = {v: {"backend": "mls", "name": "linear", "version": v} for v in ("1", "2")}
        health = {"interval": "100ms", "timeout": "2s", "unhealthy_after": 1}
        mls = backend("kserve", proxy.url, health=health)
        routes = routes_yaml({"mls": mls}, {"linear": model(served, default="1")})
        gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)

        async def indexed() -> bool:
            return bool((await replica_state(gateway, "mls"))["model_readiness"] == "index")

        await eventually(indexed)
        assert (await infer(gateway)).status_code == 200
        async with httpx.AsyncClient(timeout=60) as client:
            unloaded = await client.post(f"{mlserver.url}/v2/repository/models/linear/unload")
            assert unloaded.status_code == 200, unloaded.text

            async def out() -> bool:
                return await unready(gateway, "mls") == ["linear/1", "linear/2"]

            await eventually(out)
            assert (await infer(gateway)).status_code == 503
            loaded = await client.post(f"{mlserver.url}/v2/repository/models/linear/load")
            assert loaded.status_code == 200, loaded.text

        async def back() -> bool:
            return await unready(gateway, "mls") == []

        await eventually(back)
        assert (await infer(gateway)).status_code == 200
        probes = [path for path in proxy.counts if path.endswith("/ready")]
        assert probes == [], probes  # the index alone told
        assert proxy.counts[LIVE] >= proxy.counts[INDEX] - 1
    finally:
        mlserver.stop()


async def test_with_a_thousand_models_the_gateway_sends_no_per_model_probe(
    start_gateway: StartGateway, triton_server: ServerHandle, count_at: CountAt
) -> None:
    """The running gateway, 1,000 models routed to one Triton replica that has one of them:
    over many rounds the replica sees the server check and the index, the same number of
    each, and nothing else; the 999 others are unready without a request to each."""
    proxy = await count_at(triton_server.url)
    ghosts = {
        f"m{i}": model({"1": {"backend": "triton", "name": f"m{i}", "version": "1"}})
        for i in range(999)
    }
    routes = triton_routes(proxy.url, "http", **ghosts)
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)

    async def rounds() -> bool:
        return proxy.counts[INDEX] >= 10

    await eventually(rounds, seconds=30)
    assert set(proxy.counts) == {LIVE, INDEX}
    assert abs(proxy.counts[LIVE] - proxy.counts[INDEX]) <= 1  # one round may be midway
    assert len(await unready(gateway, "triton")) == 999
    # A model the server does not have at all is still sent when asked for: the server's own
    # answer (its 404) is the caller's, whenever the health checks ran.
    one = await gateway.client.post("/v2/models/m5/versions/1/infer", json=V2)
    assert one.status_code == 404, one.text
    assert "unknown model" in one.json()["error"]


async def test_a_model_unregistered_on_torchserve_is_out_and_its_workers_checked_on_use(
    start_gateway: StartGateway, tmp_path: Path
) -> None:
    """A private TorchServe (the session's is shared): version 2.0 unregistered is out once a
    call to it fails (the list still names ``linear``, so its description decides); the whole
    model unregistered is out within the interval, without a request; registered again, back.
    The admin view names the server's versions (``linear/2.0``)."""
    torchserve = start_servers(["torchserve"], tmp_path / "ts")["torchserve"]
    try:
        management = torchserve.management_url
        assert management is not None
        declared = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
        }
        served = {
            v: {"backend": "ts", "name": "linear", "version": f"{v}.0", **declared}
            for v in ("1", "2")
        }
        health = {"interval": "100ms", "timeout": "2s", "unhealthy_after": 1}
        ts = backend(
            "torchserve",
            torchserve.url,
            management_urls=[management],
            health=health,
            retries={"attempts": 1},
        )
        routes = routes_yaml({"ts": ts}, {"linear": model(served, default="1")})
        gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
        rows = {"instances": [[1.0, 2.0, 3.0, 4.0]]}

        async def predict(version: str) -> int:
            url = f"/v1/models/linear/versions/{version}:predict"
            return (await gateway.client.post(url, json=rows)).status_code

        assert (await predict("2"), await predict("1")) == (200, 200)
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.delete(f"{management}/models/linear/2.0")).status_code == 200
            assert await predict("2") == 404  # TorchServe's: that version does not exist

            async def second_out() -> bool:
                return await unready(gateway, "ts") == ["linear/2.0"]

            await eventually(second_out)
            assert (await client.delete(f"{management}/models/linear/1.0")).status_code == 200

            async def all_out() -> bool:
                return await unready(gateway, "ts") == ["linear/1.0", "linear/2.0"]

            await eventually(all_out)  # no call made: the list no longer names it
            params = {"url": "linear.mar", "initial_workers": "1", "synchronous": "true"}
            registered = await client.post(f"{management}/models", params=params)
            assert registered.status_code == 200, registered.text

        async def first_back() -> bool:
            return await unready(gateway, "ts") == ["linear/2.0"]

        await eventually(first_back, seconds=30)
        assert await predict("1") == 200
        seen = await replica_state(gateway, "ts")
        assert (seen["model_readiness"], seen["server_ready"]) == ("index+probes", True)
    finally:
        torchserve.stop()
