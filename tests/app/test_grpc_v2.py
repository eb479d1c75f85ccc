"""The KServe v2 gRPC frontend as its real clients use it: tritonclient.grpc (the asyncio client,
raw tensors, streaming), kserve's gRPC client (in a process of its own), grpcio's health and
reflection clients. Every model RPC runs the same chain as HTTP: credentials from metadata,
limits answered RESOURCE_EXHAUSTED with the retry delay in trailing metadata, the cache shared
with HTTP, the deadline from the gRPC deadline, traces continued from ``traceparent``,
metrics labelled ``grpc``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import numpy as np
import pytest
import tritonclient.grpc.aio as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.app.test_auth import make_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica
from tests.support import (
    ADMIN_TOKEN,
    V2,
    auth_routes,
    backend,
    demo_routes,
    free_port,
    kserve_calls,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio

ROW = np.array([[1, 2, 3, 4]], dtype=np.float32)


async def grpc_gateway(
    start: StartGateway, routes: str, **settings: Any
) -> tuple[RunningGateway, str]:
    port = free_port()
    gateway = await start(routes, grpc_port=port, **settings)
    return gateway, f"127.0.0.1:{port}"


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    clients: list[triton.InferenceServerClient] = []

    def make(address: str) -> triton.InferenceServerClient:
        client = triton.InferenceServerClient(address)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def row_input(values: np.ndarray = ROW) -> triton.InferInput:
    tensor = triton.InferInput("INPUT0", list(values.shape), "FP32")
    tensor.set_data_from_numpy(values)
    return tensor


async def test_server_and_model_rpcs(
    start_gateway: StartGateway, demo_backend: str, client_of: Any
) -> None:
    _, address = await grpc_gateway(start_gateway, demo_routes(demo_backend))
    client = client_of(address)
    assert await client.is_server_live()
    assert await client.is_server_ready()
    metadata = await client.get_server_metadata(as_json=True)
    assert metadata["name"] == "model-gateway"
    assert "binary_tensor_data" in metadata["extensions"]
    assert await client.is_model_ready("linear")
    assert await client.is_model_ready("linear", "2")
    meta = await client.get_model_metadata("linear", as_json=True)
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": ["-1", "4"]}]
    with pytest.raises(InferenceServerException) as missing:
        await client.is_model_ready("nope")
    assert missing.value.status() == "StatusCode.NOT_FOUND"


async def test_infer_equals_http_in_every_version(
    start_gateway: StartGateway, demo_backend: str, client_of: Any
) -> None:
    gateway, address = await grpc_gateway(start_gateway, demo_routes(demo_backend))
    client = client_of(address)
    for version in ("1", "2"):
        http = await gateway.client.post(f"/v2/models/linear/versions/{version}/infer", json=V2)
        answer = await client.infer(
            "linear", [row_input()], model_version=version, request_id="g-1"
        )
        assert answer.as_numpy("OUTPUT0").flatten().tolist() == http.json()["outputs"][0]["data"]
        response = answer.get_response()
        assert (response.model_name, response.model_version, response.id) == (
            "linear",
            version,
            "g-1",
        )


async def test_typed_contents_are_read_too(start_gateway: StartGateway, demo_backend: str) -> None:
    _, address = await grpc_gateway(start_gateway, demo_routes(demo_backend))
    request = service_pb2.ModelInferRequest(model_name="linear")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32")
    tensor.shape.extend([1, 4])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    async with grpc.aio.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answer = await stub.ModelInfer(request)
    assert len(answer.raw_output_contents) == 1  # always raw back, as Triton answers
    assert np.frombuffer(answer.raw_output_contents[0], dtype="<f4").tolist() == [1.0, 9.0]


async def test_errors_carry_grpc_codes(
    start_gateway: StartGateway, demo_backend: str, client_of: Any
) -> None:
    _, address = await grpc_gateway(
        start_gateway, demo_routes(demo_backend), max_body_bytes=64 * 1024
    )
    client = client_of(address)
    big = np.ones((1, 32 * 1024), dtype=np.float32)  # 128 KiB > the 64 KiB limit
    cases = [
        (client.infer("nope", [row_input()]), "NOT_FOUND", "model 'nope' is not served here"),
        (client.infer("linear", [row_input(ROW[:, :3])]), "INVALID_ARGUMENT", "shape [1, 3]"),
        (client.infer("linear", [row_input()], model_version="9"), "NOT_FOUND", "no version"),
        (client.infer("linear", [row_input(big)]), "RESOURCE_EXHAUSTED", ""),
    ]
    for pending, code, fragment in cases:
        with pytest.raises(InferenceServerException) as info:
            await pending
        assert info.value.status() == f"StatusCode.{code}", info.value
        assert fragment in info.value.message()


async def test_credentials_come_from_metadata(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    port = free_port()
    gateway = await start_gateway(auth_routes(backend.url), admin_token=ADMIN_TOKEN, grpc_port=port)
    key = await make_key(gateway, "predict:linear")
    narrow = await make_key(gateway, "predict:other")
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        tensor = triton.InferInput("INPUT0", [1, 4], "FP32")
        tensor.set_data_from_numpy(ROW)
        for headers, code in [
            (None, "UNAUTHENTICATED"),
            ({"x-api-key": "gk_0123456789abcdef_" + "a" * 43}, "UNAUTHENTICATED"),
            ({"x-api-key": narrow}, "PERMISSION_DENIED"),
        ]:
            with pytest.raises(InferenceServerException) as info:
                await client.infer("linear", [tensor], headers=headers)
            assert info.value.status() == f"StatusCode.{code}"
        answer = await client.infer("linear", [tensor], headers={"authorization": f"Bearer {key}"})
        assert answer.as_numpy("y").tolist() == [7.0]
    finally:
        await client.close()


def limited_routes(url: str) -> str:
    return routes_yaml(
        {"fake": backend("kserve", url)},
        {"linear": model(versions("fake", "1"), limits={"rate": "1/min", "burst": 2})},
    )


async def test_a_limit_answers_resource_exhausted_with_the_delay(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    _, address = await grpc_gateway(start_gateway, limited_routes(backend.url))
    request = service_pb2.ModelInferRequest(model_name="linear")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32")
    tensor.shape.extend([1, 4])
    request.raw_input_contents.append(ROW.tobytes())
    async with grpc.aio.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(2):
            call = stub.ModelInfer(request)
            await call
            trailers = dict(await call.trailing_metadata())
            assert "ratelimit" in trailers
            assert "x-request-id" in trailers
        refused = stub.ModelInfer(request)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await refused
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(error.trailing_metadata() or ())
    assert int(trailers["retry-after"]) >= 1
    assert trailers["grpc-retry-pushback-ms"] == str(int(trailers["retry-after"]) * 1000)
    assert "rate limit exceeded" in (error.details() or "")


def cached_routes(url: str) -> str:
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    return routes_yaml(
        {"demo": backend("triton", url)},
        {"linear": model(served, default="1", deterministic=True, cache={"ttl": "60s"})},
    )


async def test_the_cache_is_shared_with_http(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway, address = await grpc_gateway(start_gateway, cached_routes(demo_backend))
    first = await gateway.client.post("/v2/models/linear/infer", json=V2)
    assert "fwd=miss" in first.headers["Cache-Status"]
    request = service_pb2.ModelInferRequest(model_name="linear")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32")
    tensor.shape.extend([1, 4])
    request.raw_input_contents.append(ROW.tobytes())  # the same tensor, as raw bytes
    async with grpc.aio.insecure_channel(address) as channel:
        call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
        answer = await call
        trailers = dict(await call.trailing_metadata())
    assert trailers["cache-status"].startswith("model-gateway; hit")
    assert np.frombuffer(answer.raw_output_contents[0], dtype="<f4").tolist() == [1.0, 9.0]


async def test_stream_infer_answers_each_message_errors_in_band(
    start_gateway: StartGateway, demo_backend: str, client_of: Any
) -> None:
    _, address = await grpc_gateway(start_gateway, demo_routes(demo_backend))
    client = client_of(address)

    async def messages() -> AsyncIterator[dict[str, Any]]:
        for name in ("linear", "nope", "linear"):
            yield {"model_name": name, "inputs": [row_input()], "request_id": name}

    answers = []
    async for result, error in client.stream_infer(messages()):
        answers.append(
            (str(error) if error else None, result.as_numpy("OUTPUT0").tolist() if result else None)
        )
    assert answers[0] == (None, [[1.0, 9.0]])
    assert answers[1][0] is not None
    assert "model 'nope' is not served here" in answers[1][0]
    assert answers[2] == (None, [[1.0, 9.0]])


async def test_the_grpc_deadline_is_the_calls(start_gateway: StartGateway, client_of: Any) -> None:
    slow = await FakeReplica(delay=2.0).start()
    try:
        routes = routes_yaml(
            {"slow": backend("kserve", slow.url, timeout="10s")},
            {
                "m": model(
                    versions(
                        "slow",
                        "1",
                        inputs=[{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}],
                    )
                )
            },
        )
        _, address = await grpc_gateway(start_gateway, routes)
        client = client_of(address)
        with pytest.raises(InferenceServerException) as info:
            await client.infer("m", [row_input()], client_timeout=0.3)
        assert info.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    finally:
        await slow.stop()


async def test_health_reflection_and_kserve_grpc_client(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway, address = await grpc_gateway(start_gateway, demo_routes(demo_backend))
    async with grpc.aio.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typed for sync channels only
        for service in ("", "inference.GRPCInferenceService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflect: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, channel))  # sync-typed

        async def ask() -> AsyncIterator[Any]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            yield reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="inference.GRPCInferenceService"
            )

        replies = [r async for r in reflect.ServerReflectionInfo(ask())]
    services = {s.name for s in replies[0].list_services_response.service}
    assert "inference.GRPCInferenceService" in services
    assert "grpc.health.v1.Health" in services
    assert replies[1].file_descriptor_response.file_descriptor_proto  # the served file
    results = await kserve_calls(
        "grpc", address, "linear", [{"shape": [1, 4], "data": [1, 2, 3, 4], "id": "k-1"}]
    )
    assert results == [{"ok": True, "id": "k-1", "outputs": {"OUTPUT0": [[1.0, 9.0]]}}]
    metrics = (await gateway.client.get("/metrics")).text
    assert 'protocol="grpc"' in metrics


async def test_a_credential_sent_twice_in_metadata_is_refused(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    """Issue 12, defect 5, over gRPC: two ``x-api-key`` (or ``authorization``) entries, one valid
    and one forged, are INVALID_ARGUMENT whatever their order; the valid one alone is served."""
    port = free_port()
    gateway = await start_gateway(auth_routes(backend.url), admin_token=ADMIN_TOKEN, grpc_port=port)
    key = await make_key(gateway, "predict:linear")
    forged = "gk_0123456789abcdef_" + "F" * 43
    request = service_pb2.ModelInferRequest(model_name="linear")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for metadata in (
            [("x-api-key", key), ("x-api-key", forged)],
            [("x-api-key", forged), ("x-api-key", key)],
            [("authorization", f"Bearer {key}"), ("authorization", "Bearer forged")],
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(request, metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
            assert "more than once" in (info.value.details() or "")
        answer = await stub.ModelInfer(request, metadata=[("x-api-key", key)], timeout=10)
        assert answer.model_name == "linear"
