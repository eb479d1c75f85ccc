"""KServe v2 over gRPC toward REAL Triton and MLServer (``protocol: grpc``): the same answers,
metadata, readiness and errors as their HTTP backends, for every version.

Each server is two backends of the same gateway: ``<server>`` over HTTP and ``<server>-grpc``
over gRPC, both serving the server's own ``linear`` as versions 1, 2 and 9 (which it does not
have). HTTP v2 JSON, TF Serving v1 and tritonclient's binary tensor data are the clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http as triton_http

from tests.app.test_metrics import scrape, value
from tests.conftest import RunningGateway, StartGateway
from tests.servers.plugin import ServerHandle
from tests.support import ADMIN, ADMIN_TOKEN, backend, error_of, free_port, model, routes_yaml
from tests.system.test_backends import EXPECTED, INPUT_NAME, OUTPUT, ROWS, close

pytestmark = pytest.mark.anyio
SERVERS = ["triton", "mlserver"]
WIRES = {"http": "{server}", "grpc": "{server}-grpc"}  # the public model of each wire


def routes(triton: ServerHandle, mlserver: ServerHandle) -> str:
    backends = {
        "triton": backend("triton", triton.url),
        "triton-grpc": backend("triton", f"grpc://{triton.grpc_address}", protocol="grpc"),
        "mlserver": backend("kserve", mlserver.url),
        "mlserver-grpc": backend("kserve", f"grpc://{mlserver.grpc_address}", protocol="grpc"),
    }

    def linear(on: str, **declared: Any) -> dict[str, Any]:
        served = {
            v: {"backend": on, "name": "linear", "version": v, **declared} for v in ("1", "2", "9")
        }
        return model(served, default="1")

    # Inputs declared narrower than the model's: the gateway lets [1, 3] through to the server.
    narrow = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 3]}]}
    models = {name: linear(name) for name in backends}
    models |= {f"{name}-narrow": linear(name, **narrow) for name in backends}
    return routes_yaml(backends, models)


@pytest.fixture
async def gateway(
    start_gateway: StartGateway, triton_server: ServerHandle, mlserver_server: ServerHandle
) -> RunningGateway:
    return await start_gateway(routes(triton_server, mlserver_server), admin_token=ADMIN_TOKEN)


def v2_request(server: str) -> dict[str, Any]:
    tensor = {"name": INPUT_NAME[server], "shape": [2, 4], "datatype": "FP32"}
    return {"id": "req-1", "inputs": [{**tensor, "data": [x for row in ROWS for x in row]}]}


async def both(gateway: RunningGateway, path: str, server: str, **send: Any) -> list[Any]:
    """The answers of the HTTP and the gRPC backend of ``server`` to the same request."""
    answers = []
    for wire in WIRES.values():
        url = path.format(model=wire.format(server=server))
        response = await gateway.client.post(url, **send)
        assert response.status_code == 200, response.text
        answers.append(response)
    return answers


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("server", SERVERS)
async def test_v1_rows_and_columns(gateway: RunningGateway, server: str, version: str) -> None:
    path = f"/v1/models/{{model}}/versions/{version}:predict"
    http, grpc = await both(gateway, path, server, json={"instances": ROWS})
    assert grpc.json() == http.json()
    assert close(grpc.json()["predictions"], EXPECTED[version])
    assert grpc.headers["X-Model-Version"] == version
    http, grpc = await both(gateway, path, server, json={"inputs": ROWS})
    assert grpc.json() == http.json()
    assert close(grpc.json()["outputs"], EXPECTED[version])


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("server", SERVERS)
async def test_v2_json(gateway: RunningGateway, server: str, version: str) -> None:
    path = f"/v2/models/{{model}}/versions/{version}/infer"
    http, grpc = await both(gateway, path, server, json=v2_request(server))
    body = grpc.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (
        f"{server}-grpc",
        version,
        "req-1",
    )
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == (*OUTPUT[server], [2, 2])
    assert output == http.json()["outputs"][0]  # the same numbers, to the last bit
    assert close(output["data"], [x for row in EXPECTED[version] for x in row])


@pytest.mark.parametrize("server", SERVERS)
async def test_default_version(gateway: RunningGateway, server: str) -> None:
    http, grpc = await both(gateway, "/v1/models/{model}:predict", server, json={"instances": ROWS})
    assert grpc.json() == http.json()
    assert close(grpc.json()["predictions"], EXPECTED["1"])


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("server", SERVERS)
async def test_tritonclients_binary_tensors(
    gateway: RunningGateway, server: str, version: str
) -> None:
    """Binary tensor data in front (its parameters travel on), raw contents behind."""
    values = np.array(ROWS, dtype=np.float32)
    output, _ = OUTPUT[server]

    def infer(name: str) -> Any:
        client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            tensor = triton_http.InferInput(INPUT_NAME[server], list(values.shape), "FP32")
            tensor.set_data_from_numpy(values, binary_data=True)
            wanted = triton_http.InferRequestedOutput(output, binary_data=True)
            result = client.infer(name, [tensor], outputs=[wanted], model_version=version)
            return result.as_numpy(output)
        finally:
            client.close()

    over_http = await asyncio.to_thread(infer, server)
    over_grpc = await asyncio.to_thread(infer, f"{server}-grpc")
    assert over_grpc.dtype == over_http.dtype
    assert over_grpc.tobytes() == over_http.tobytes()
    assert close(over_grpc.tolist(), EXPECTED[version])


@pytest.mark.parametrize("server", SERVERS)
async def test_grpc_in_front_and_behind(
    start_gateway: StartGateway,
    triton_server: ServerHandle,
    mlserver_server: ServerHandle,
    server: str,
) -> None:
    """tritonclient.grpc to the gateway's gRPC frontend, then gRPC to the server."""
    port = free_port()
    await start_gateway(routes(triton_server, mlserver_server), grpc_port=port)
    values = np.array(ROWS, dtype=np.float32)
    output, _ = OUTPUT[server]
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        for version in ("1", "2"):
            answers = []
            for name in (server, f"{server}-grpc"):
                tensor = triton_grpc.InferInput(INPUT_NAME[server], list(values.shape), "FP32")
                tensor.set_data_from_numpy(values)
                result = await client.infer(name, [tensor], model_version=version)
                answers.append(result.as_numpy(output))
            assert answers[1].tobytes() == answers[0].tobytes()
            assert close(answers[1].tolist(), EXPECTED[version])
        assert await client.is_model_ready(f"{server}-grpc", "2")
        assert not await client.is_model_ready(f"{server}-grpc", "9")
    finally:
        await client.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_metadata_comes_from_model_metadata(gateway: RunningGateway, server: str) -> None:
    http = (await gateway.client.get(f"/v2/models/{server}/versions/2")).json()
    grpc = (await gateway.client.get(f"/v2/models/{server}-grpc/versions/2")).json()
    assert grpc["name"] == f"{server}-grpc"
    assert (grpc["inputs"], grpc["outputs"]) == (http["inputs"], http["outputs"])
    assert [i["name"] for i in grpc["inputs"]] == [INPUT_NAME[server]]
    assert grpc["inputs"][0]["shape"] == [-1, 4]
    tf_style = (await gateway.client.get(f"/v1/models/{server}-grpc/versions/2/metadata")).json()
    signature = tf_style["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(signature["inputs"]) == [INPUT_NAME[server]]


@pytest.mark.parametrize("server", SERVERS)
async def test_readiness_is_model_ready_per_version(gateway: RunningGateway, server: str) -> None:
    status = (await gateway.client.get(f"/v1/models/{server}-grpc")).json()
    states = {s["version"]: s["state"] for s in status["model_version_status"]}
    assert states == {"9": "LOADING", "2": "AVAILABLE", "1": "AVAILABLE"}  # not served: LOADING
    ready = await gateway.client.get(f"/v2/models/{server}-grpc/versions/2/ready")
    assert ready.status_code == 200
    missing = await gateway.client.get(f"/v2/models/{server}-grpc/versions/9/ready")
    assert missing.status_code == 503


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("triton", "Request for unknown model: 'linear' version 9 is not found"),
        ("mlserver", "Model linear with version 9 not found"),
    ],
)
async def test_a_version_missing_on_the_server_is_404_with_its_message(
    gateway: RunningGateway, server: str, message: str
) -> None:
    for name in (server, f"{server}-grpc"):
        response = await gateway.client.post(
            f"/v1/models/{name}/versions/9:predict", json={"instances": ROWS}
        )
        assert response.status_code == 404, response.text
        assert message in error_of(response)[1]


@pytest.mark.parametrize(
    ("server", "status", "message"),
    [
        # Triton: INVALID_ARGUMENT over gRPC, 400 over HTTP, the same text
        ("triton", 400, "unexpected shape for input 'INPUT0' for model 'linear'"),
        # MLServer: INTERNAL over gRPC with the runtime's text; 500 over HTTP, with a traceback
        ("mlserver", 502, "X has 3 features, but LinearRegression is expecting 4"),
    ],
)
async def test_the_servers_rejection_keeps_its_message(
    gateway: RunningGateway, server: str, status: int, message: str
) -> None:
    rows = {"instances": [[1.0, 2.0, 3.0]]}
    over_http = await gateway.client.post(f"/v1/models/{server}-narrow:predict", json=rows)
    over_grpc = await gateway.client.post(f"/v1/models/{server}-grpc-narrow:predict", json=rows)
    assert over_http.status_code == over_grpc.status_code == status, over_grpc.text
    assert message in error_of(over_grpc)[1]


async def test_upstream_time_attempts_and_the_admin_view(gateway: RunningGateway) -> None:
    for server in SERVERS:
        response = await gateway.client.post(
            f"/v2/models/{server}-grpc/infer", json=v2_request(server)
        )
        assert response.status_code == 200
        timing = dict(
            p.strip().split(";dur=") for p in response.headers["Server-Timing"].split(",")
        )
        assert float(timing["upstream"]) > 0  # recorded, not measured here
    samples = await scrape(gateway.client)
    for server in SERVERS:
        ok = value(
            samples, "gateway_backend_attempts_total", backend=f"{server}-grpc", outcome="ok"
        )
        assert ok >= 2  # ModelMetadata once, then ModelInfer
    state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()["backends"]
    assert state["triton-grpc"]["protocol"] == "grpc"
    assert state["triton-grpc"]["replicas"][0]["url"].startswith("grpc://127.0.0.1:")
    assert state["triton"]["protocol"] == "http"
