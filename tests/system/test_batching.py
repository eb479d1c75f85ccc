"""Gateway-side batching in front of a REAL Triton that does no batching of its own.

The model ``batched_linear`` (tests/models) takes a batch dimension (``max_batch_size: 256``)
but has no ``dynamic_batching``: Triton runs every request it gets as one execution. Callers
speak v2 JSON, binary tensors (tritonclient.http), gRPC (tritonclient.grpc, to the gateway's
gRPC frontend) and v1 ``instances``, all at once; each must get its own rows back, and Triton's
own counters must show fewer requests than the callers made (and every row).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http as triton_http

from tests.conftest import StartGateway
from tests.models.repository import triton_repository
from tests.servers.plugin import ServerHandle
from tests.support import backend, free_port, model, routes_yaml

pytestmark = pytest.mark.anyio
W1 = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32)
MODEL = "batched_linear"


@pytest.fixture
def triton(start_triton: Any, tmp_path: Path) -> ServerHandle:
    handle: ServerHandle = start_triton(triton_repository(tmp_path / "models"))
    return handle


def routes(triton: ServerHandle, batching: dict[str, Any]) -> str:
    served = {"1": {"backend": "triton", "name": MODEL, "version": "1", "batching": batching}}
    return routes_yaml(
        {"triton": backend("triton", triton.url, timeout="10s")},
        {"scorer": model(served), "plain": model({"1": {"backend": "triton", "name": MODEL}})},
    )


async def triton_counts(triton: ServerHandle) -> tuple[int, int]:
    """Triton's own (requests, rows) for the model: ``nv_inference_request_success`` counts
    the requests it got, ``nv_inference_count`` the rows it ran."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{triton.metrics_url}/metrics")).text

    def value(metric: str) -> int:
        found = re.search(rf'^{metric}{{[^}}]*model="{MODEL}"[^}}]*}} (\S+)$', text, re.M)
        return int(float(found.group(1))) if found else 0

    return value("nv_inference_request_success"), value("nv_inference_count")


def expected(rows: np.ndarray) -> np.ndarray:
    return rows @ W1.T


def rows_of(n: int, k: int = 1) -> np.ndarray:
    """``k`` rows of distinct values for caller ``n``."""
    return np.array([[n, n + 1, k, 2 * n] for k in range(k)], dtype=np.float32)


async def test_concurrent_callers_of_every_protocol_get_their_own_rows(
    start_gateway: StartGateway, triton: ServerHandle
) -> None:
    grpc_port = free_port()
    batching = {"max_batch_size": 64, "max_delay": "50ms"}
    gateway = await start_gateway(routes(triton, batching), grpc_port=grpc_port)
    before = await triton_counts(triton)
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")

    async def v2_json(n: int) -> bool:
        x = rows_of(n, 1 + n % 3)
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": list(x.shape),
                            "data": x.flatten().tolist()}]}  # fmt: skip
        reply = await gateway.client.post("/v2/models/scorer/infer", json=body)
        assert reply.status_code == 200, reply.text
        out = reply.json()["outputs"][0]
        assert out["shape"] == [len(x), 2]
        return bool(np.allclose(np.array(out["data"]).reshape(-1, 2), expected(x)))

    async def v1_instances(n: int) -> bool:
        x = rows_of(n, 2)
        reply = await gateway.client.post(
            "/v1/models/scorer:predict", json={"instances": x.tolist()}
        )
        assert reply.status_code == 200, reply.text
        return bool(np.allclose(reply.json()["predictions"], expected(x)))

    def binary(n: int) -> bool:
        x = rows_of(n, 1)
        client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            tensor = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=True)
            wanted = triton_http.InferRequestedOutput("OUTPUT0", binary_data=True)
            result = client.infer("scorer", [tensor], outputs=[wanted])
            return bool(np.allclose(result.as_numpy("OUTPUT0"), expected(x)))
        finally:
            client.close()

    async def grpc(n: int) -> bool:
        x = rows_of(n, 1)
        tensor = triton_grpc.InferInput("INPUT0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = await grpc_client.infer("scorer", [tensor])
        return bool(np.allclose(result.as_numpy("OUTPUT0"), expected(x)))

    try:
        calls = [v2_json(n) for n in range(24)]
        calls += [v1_instances(100 + n) for n in range(8)]
        calls += [asyncio.to_thread(binary, 200 + n) for n in range(8)]
        calls += [grpc(300 + n) for n in range(8)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), 120)
    finally:
        await grpc_client.close()
    assert all(answers), answers
    sent_rows = sum(1 + n % 3 for n in range(24)) + 8 * 2 + 8 + 8
    requests, rows = await triton_counts(triton)
    assert rows - before[1] == sent_rows  # every row ran, once
    assert requests - before[0] < len(calls)  # in fewer calls than the callers made


async def test_a_malformed_caller_fails_alone_and_a_failed_batch_fails_its_members(
    start_gateway: StartGateway, triton: ServerHandle
) -> None:
    batching = {"max_batch_size": 64, "max_delay": "300ms"}
    gateway = await start_gateway(routes(triton, batching))

    def body(rows: list[list[float]]) -> dict[str, Any]:
        flat = [v for row in rows for v in row]
        shape = [len(rows), len(rows[0])]
        return {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": shape, "data": flat}]}

    good = [body([[float(n), 1, 2, 3]]) for n in range(4)]
    malformed = body([[1.0, 2.0, 3.0]])  # three columns: the model takes four
    replies = await asyncio.gather(
        *(gateway.client.post("/v2/models/scorer/infer", json=b) for b in [*good, malformed])
    )
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 422]
    assert [r.json()["outputs"][0]["data"] for r in replies[:4]] == [
        [float(n), 6.0] for n in range(4)
    ]
    poison = body([[-5000.0, 0, 0, 0]])  # the model fails any request holding it
    replies = await asyncio.gather(
        *(gateway.client.post("/v2/models/scorer/infer", json=b) for b in [poison, *good])
    )
    statuses = {r.status_code for r in replies}
    assert statuses == {replies[0].status_code}
    assert replies[0].status_code >= 400
    assert {r.json()["error"] for r in replies} == {replies[0].json()["error"]}
    assert "poison row" in replies[0].json()["error"]
    # Unbatched, the same poison fails only its own call.
    alone = await gateway.client.post("/v2/models/plain/infer", json=poison)
    assert alone.json()["error"] == replies[0].json()["error"]
