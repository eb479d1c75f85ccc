"""Client protocol × encoding × backend kind × version, against the real servers: the same
numbers whatever the client speaks. (test_backends.py covers TF Serving JSON and KServe v2
JSON; here: v2 binary tensor data, gzip bodies, and KServe v2 over gRPC.)"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http as triton_http
import tritonclient.http.aio as triton_http_aio

from tests.conftest import RunningGateway, StartGateway
from tests.doubles.plugin import TFServingHandle
from tests.servers.plugin import AllServers
from tests.support import free_port, kserve_calls
from tests.system.test_backends import EXPECTED, INPUT_NAME, KINDS, OUTPUT, ROWS, close, routes

pytestmark = pytest.mark.anyio
VALUES = np.array(ROWS, dtype=np.float32)


@pytest.fixture
async def served(
    start_gateway: StartGateway, all_servers: AllServers, tfserving_server: TFServingHandle
) -> tuple[RunningGateway, str]:
    port = free_port()
    gateway = await start_gateway(routes(all_servers, tfserving_server), grpc_port=port)
    return gateway, f"127.0.0.1:{port}"


GZIP = {"request_compression_algorithm": "gzip", "response_compression_algorithm": "gzip"}
DEFLATE = {"request_compression_algorithm": "deflate", "response_compression_algorithm": "deflate"}
ENCODINGS = {  # (binary tensor data both ways?, compression)
    "binary": (True, {}),  # tritonclient's defaults
    "binary-gzip": (True, GZIP),
    "json": (False, {}),
    "json-deflate": (False, DEFLATE),
}


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_tritonclient_http(
    served: tuple[RunningGateway, str], kind: str, version: str, encoding: str
) -> None:
    gateway, _ = served
    output, _ = OUTPUT[kind]
    binary, compression = ENCODINGS[encoding]

    def infer() -> Any:
        client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            tensor = triton_http.InferInput(INPUT_NAME[kind], list(VALUES.shape), "FP32")
            tensor.set_data_from_numpy(VALUES, binary_data=binary)
            wanted = triton_http.InferRequestedOutput(output, binary_data=binary)
            result = client.infer(
                kind, [tensor], outputs=[wanted], model_version=version, **compression
            )
            return result.as_numpy(output).tolist()
        finally:
            client.close()

    assert close(await asyncio.to_thread(infer), EXPECTED[version])


@pytest.mark.parametrize("kind", KINDS)
async def test_tritonclient_http_aio(served: tuple[RunningGateway, str], kind: str) -> None:
    """tritonclient's asyncio HTTP client (aiohttp underneath), its defaults, both versions."""
    gateway, _ = served
    output, _ = OUTPUT[kind]
    client = triton_http_aio.InferenceServerClient(gateway.url.removeprefix("http://"))
    try:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        for version in ("1", "2"):
            assert await client.is_model_ready(kind, version)
            tensor = triton_http_aio.InferInput(INPUT_NAME[kind], list(VALUES.shape), "FP32")
            tensor.set_data_from_numpy(VALUES)
            result = await client.infer(kind, [tensor], model_version=version)
            assert close(result.as_numpy(output).tolist(), EXPECTED[version])
    finally:
        await client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("mode", ["rest", "grpc"])
async def test_kserve_clients(served: tuple[RunningGateway, str], mode: str, binary: bool) -> None:
    """kserve's own REST and gRPC clients: every backend kind, both versions by gRPC; the
    default version by REST, whose client has no way to name a version (its URL is always
    /v2/models/{name}/infer)."""
    gateway, address = served
    pinned = ("1", "2") if mode == "grpc" else ("1",)
    cases = [(kind, version) for kind in KINDS for version in pinned]
    calls = [
        {
            "model": kind,
            "version": version if mode == "grpc" else None,
            "input": INPUT_NAME[kind],
            "shape": list(VALUES.shape),
            "data": ROWS,
            "binary": binary,
            "id": f"{kind}-{version}",
        }
        for kind, version in cases
    ]
    url = gateway.url if mode == "rest" else address
    results = await kserve_calls(mode, url, "unused", calls)
    for (kind, version), result in zip(cases, results, strict=True):
        assert result["ok"], (kind, version, result)
        assert result["id"] == f"{kind}-{version}"
        assert close(result["outputs"][OUTPUT[kind][0]], EXPECTED[version]), (kind, result)


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", KINDS)
async def test_tritonclient_grpc(
    served: tuple[RunningGateway, str], kind: str, version: str
) -> None:
    _, address = served
    output, datatype = OUTPUT[kind]
    client = triton_grpc.InferenceServerClient(address)
    try:
        tensor = triton_grpc.InferInput(INPUT_NAME[kind], list(VALUES.shape), "FP32")
        tensor.set_data_from_numpy(VALUES)
        result = await client.infer(kind, [tensor], model_version=version, request_id="m-1")
        assert close(result.as_numpy(output).tolist(), EXPECTED[version])
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == (kind, version, "m-1")
        assert response.outputs[0].datatype == datatype
        assert await client.is_model_ready(kind, version)
    finally:
        await client.close()
