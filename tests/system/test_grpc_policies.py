"""The chain over gRPC, against a REAL Triton: credentials from metadata, a limit answered
RESOURCE_EXHAUSTED with its delay, the cache shared with HTTP (Triton's own statistics count
one inference), and a canary rolled out by gRPC traffic alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.app.test_auth import make_key
from tests.conftest import RunningGateway, StartGateway
from tests.servers.plugin import AllServers
from tests.support import ADMIN, ADMIN_TOKEN, V2, backend, free_port, model, routes_yaml

pytestmark = pytest.mark.anyio
ROW = np.array([[1, 2, 3, 4]], dtype=np.float32)
EXPECTED = {"1": [1.0, 9.0], "2": [2.0, 18.0]}


def linear(url: str, **options: Any) -> str:
    sections = options.pop("sections", {})
    served = {v: {"backend": "triton", "name": "linear", "version": v} for v in ("1", "2")}
    return routes_yaml(
        {"triton": backend("triton", url)},
        {"linear": model(served, default="1", **options)},
        **sections,
    )


def request() -> Any:
    message = service_pb2.ModelInferRequest(model_name="linear")
    tensor = message.inputs.add(name="INPUT0", datatype="FP32")
    tensor.shape.extend([1, 4])
    message.raw_input_contents.append(ROW.tobytes())
    return message


@pytest.fixture
async def stub_of() -> AsyncIterator[Any]:
    channels: list[grpc.aio.Channel] = []

    def make(address: str) -> Any:
        channel = grpc.aio.insecure_channel(address)
        channels.append(channel)
        return service_pb2_grpc.GRPCInferenceServiceStub(channel)

    yield make
    for channel in channels:
        await channel.close()


async def served(start: StartGateway, routes: str, **settings: Any) -> tuple[RunningGateway, str]:
    port = free_port()
    gateway = await start(routes, grpc_port=port, **settings)
    return gateway, f"127.0.0.1:{port}"


def values(answer: Any) -> list[float]:
    data: list[float] = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").tolist()
    return data


async def test_credentials_from_metadata_reach_triton(
    start_gateway: StartGateway, all_servers: AllServers, stub_of: Any
) -> None:
    routes = linear(all_servers.triton.url, sections={"auth": {"required": True}})
    gateway, address = await served(start_gateway, routes, admin_token=ADMIN_TOKEN)
    key = await make_key(gateway, "predict:linear")
    stub = stub_of(address)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ModelInfer(request())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answer = await stub.ModelInfer(request(), metadata=(("x-api-key", key),))
    assert values(answer) == EXPECTED["1"]


async def test_a_limit_refuses_with_its_delay(
    start_gateway: StartGateway, all_servers: AllServers, stub_of: Any
) -> None:
    routes = linear(all_servers.triton.url, limits={"rate": "1/min", "burst": 3})
    _, address = await served(start_gateway, routes)
    stub = stub_of(address)
    for _ in range(3):
        assert values(await stub.ModelInfer(request())) == EXPECTED["1"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ModelInfer(request())
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(info.value.trailing_metadata() or ())
    assert 1 <= int(trailers["retry-after"]) <= 60


async def inference_count(triton_url: str, version: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = await client.get(f"{triton_url}/v2/models/linear/versions/{version}/stats")
    count: int = stats.json()["model_stats"][0]["inference_count"]
    return count


async def test_the_cache_is_shared_between_http_and_grpc(
    start_gateway: StartGateway, all_servers: AllServers, stub_of: Any
) -> None:
    triton = all_servers.triton.url
    routes = linear(triton, deterministic=True, cache={"ttl": "60s", "shared": True})
    gateway, address = await served(start_gateway, routes)
    before = await inference_count(triton, "1")
    body = {"inputs": [{**V2["inputs"][0], "data": [1.0, 2.0, 3.0, 4.0 + time.time() % 1]}]}
    first = await gateway.client.post("/v2/models/linear/infer", json=body)
    assert "fwd=miss" in first.headers["Cache-Status"]
    again = request()
    again.raw_input_contents[0] = np.array([body["inputs"][0]["data"]], dtype="<f4").tobytes()
    call = stub_of(address).ModelInfer(again)
    answer = await call
    trailers = dict(await call.trailing_metadata())
    assert trailers["cache-status"].startswith("model-gateway; hit")
    assert values(answer) == pytest.approx(first.json()["outputs"][0]["data"])
    assert await inference_count(triton, "1") == before + 1  # one inference for both


async def test_a_canary_rolls_out_on_grpc_traffic(
    start_gateway: StartGateway, all_servers: AllServers, stub_of: Any
) -> None:
    rollout = {
        "canary": "2",
        "steps": [50, 100],
        "interval": "300ms",
        "gates": {"min_requests": 5, "max_error_rate": "1%"},
    }
    routes = linear(all_servers.triton.url, rollout=rollout)
    gateway, address = await served(start_gateway, routes, admin_token=ADMIN_TOKEN)
    stub = stub_of(address)
    answers: list[tuple[str, list[float]]] = []
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        call = stub.ModelInfer(request())
        answer = await call
        version = dict(await call.trailing_metadata())["x-model-version"]
        answers.append((version, values(answer)))
        if len(answers) % 10 == 0:
            status = (await gateway.client.get("/admin/rollouts/linear", headers=ADMIN)).json()
            if status["status"] == "completed":
                break
        await asyncio.sleep(0.01)
    assert status.get("status") == "completed", status
    assert {v for v, _ in answers} == {"1", "2"}  # both versions served on the way
    assert all(data == EXPECTED[version] for version, data in answers)
    assert answers[-1][0] == "2"
