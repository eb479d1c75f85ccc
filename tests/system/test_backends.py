"""Every (client protocol × backend kind × version) through the gateway, against real servers.

TorchServe, Triton and MLServer are the real servers; TF Serving is the faithful double. Each
serves the same 4→2 linear model: version 1 maps x to [x0, x1 + x2 + x3], version 2 doubles it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.doubles.plugin import TFServingHandle
from tests.servers.plugin import AllServers
from tests.support import backend, error_of, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 1.0]]
EXPECTED = {"1": [[1.0, 9.0], [0.5, 1.0]], "2": [[2.0, 18.0], [1.0, 2.0]]}
INPUT_NAME = {"torchserve": "x", "triton": "INPUT0", "mlserver": "INPUT0", "tfserving": "x"}
OUTPUT = {
    "torchserve": ("y", "FP32"),
    "triton": ("OUTPUT0", "FP32"),
    "mlserver": ("predict", "FP64"),
    "tfserving": ("y", "FP32"),
}
KINDS = list(INPUT_NAME)


def routes(servers: AllServers, tfserving: TFServingHandle) -> str:
    ts, triton, mls = servers.torchserve, servers.triton, servers.mlserver
    backends = {
        "ts": backend("torchserve", ts.url, management_urls=[ts.management_url]),
        "triton": backend("triton", triton.url),
        "mls": backend("kserve", mls.url),
        "tfs": backend("tfserving", tfserving.url),
    }
    declared = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }
    on_torchserve = {
        v: {"backend": "ts", "name": "linear", "version": f"{v}.0", **declared}
        for v in ("1", "2", "9")
    }

    def linear(on: str) -> dict[str, Any]:
        """The server's own ``linear``, versions 1, 2 and 9 (which it does not have)."""
        served = {v: {"backend": on, "name": "linear", "version": v} for v in ("1", "2", "9")}
        return model(served, default="1")

    models = {
        "torchserve": model(on_torchserve, default="1"),
        "triton": linear("triton"),
        "mlserver": linear("mls"),
        "tfserving": linear("tfs"),
        "multi": model(versions("tfs", "1", name="multi", version=1)),
        "bytes": model(versions("tfs", "1", name="echo_bytes", version=1)),
        "ts-undeclared": model(versions("ts", "1", name="linear", version="1.0")),
    }
    return routes_yaml(backends, models)


@pytest.fixture
async def gateway(
    start_gateway: StartGateway, all_servers: AllServers, tfserving_server: TFServingHandle
) -> RunningGateway:
    return await start_gateway(routes(all_servers, tfserving_server))


def close(actual: Any, expected: Any) -> bool:
    """Equal structure, numbers equal to float precision (MLServer answers in FP64)."""
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(close(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(close(actual[k], expected[k]) for k in expected)
        )
    return bool(actual == pytest.approx(expected, rel=1e-6))


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", KINDS)
async def test_v1_rows(gateway: RunningGateway, kind: str, version: str) -> None:
    response = await gateway.client.post(
        f"/v1/models/{kind}/versions/{version}:predict", json={"instances": ROWS}
    )
    assert response.status_code == 200, response.text
    assert close(response.json()["predictions"], EXPECTED[version])
    assert response.headers["X-Model-Version"] == version


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", KINDS)
async def test_v1_columns_pinned_by_header(
    gateway: RunningGateway, kind: str, version: str
) -> None:
    response = await gateway.client.post(
        f"/v1/models/{kind}:predict", json={"inputs": ROWS}, headers={"X-Model-Version": version}
    )
    assert response.status_code == 200, response.text
    assert close(response.json()["outputs"], EXPECTED[version])


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind", KINDS)
async def test_v2(gateway: RunningGateway, kind: str, version: str) -> None:
    request = {
        "id": f"req-{kind}",
        "inputs": [
            {
                "name": INPUT_NAME[kind],
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [x for row in ROWS for x in row],
            }
        ],
    }
    response = await gateway.client.post(
        f"/v2/models/{kind}/versions/{version}/infer", json=request
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (kind, version, f"req-{kind}")
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"]) == OUTPUT[kind]
    assert output["shape"] == [2, 2]
    assert close(output["data"], [x for row in EXPECTED[version] for x in row])


@pytest.mark.parametrize("kind", KINDS)
async def test_default_version_and_metadata(gateway: RunningGateway, kind: str) -> None:
    response = await gateway.client.post(f"/v1/models/{kind}:predict", json={"instances": ROWS})
    assert close(response.json()["predictions"], EXPECTED["1"])
    meta = (await gateway.client.get(f"/v2/models/{kind}")).json()
    assert meta["name"] == kind
    assert meta["versions"] == ["1", "2", "9"]
    assert [i["name"] for i in meta["inputs"]] == [INPUT_NAME[kind]]
    assert meta["inputs"][0]["datatype"] == "FP32"
    assert meta["inputs"][0]["shape"] == [-1, 4]


@pytest.mark.parametrize("kind", KINDS)
async def test_status_and_readiness_use_each_servers_real_check(
    gateway: RunningGateway, kind: str
) -> None:
    status = (await gateway.client.get(f"/v1/models/{kind}")).json()["model_version_status"]
    states = {s["version"]: s["state"] for s in status}
    assert states == {"9": "LOADING", "2": "AVAILABLE", "1": "AVAILABLE"}
    assert (await gateway.client.get(f"/v2/models/{kind}/versions/2/ready")).status_code == 200
    missing = await gateway.client.get(f"/v2/models/{kind}/versions/9/ready")
    assert missing.status_code == 503


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("torchserve", "Model version: 9.0 does not exist for model: linear"),
        ("triton", "Request for unknown model: 'linear' version 9 is not found"),
        ("mlserver", "Model linear with version 9 not found"),
        ("tfserving", "Servable not found for request: Specific(linear, 9)"),
    ],
)
async def test_a_version_missing_on_the_server_is_404_with_its_message(
    gateway: RunningGateway, kind: str, message: str
) -> None:
    response = await gateway.client.post(
        f"/v1/models/{kind}/versions/9:predict", json={"instances": ROWS}
    )
    assert response.status_code == 404, response.text
    assert message in error_of(response)[1]


async def test_torchserve_handler_failure_keeps_its_status_and_message(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client.post(
        "/v1/models/ts-undeclared:predict", json={"instances": [[1.0, 2.0, 3.0]]}
    )
    assert response.status_code == 503
    assert "Prediction failed" in error_of(response)[1]


@pytest.mark.parametrize("kind", ["tfserving", "torchserve"])
async def test_nan_and_infinity_survive(gateway: RunningGateway, kind: str) -> None:
    # NaN in, NaN out; 3e38 * 3 overflows float32 to ±Infinity inside the model itself.
    response = await gateway.client.post(
        f"/v1/models/{kind}:predict",
        content=b'{"instances": [[NaN, 1, 1, 1], [3e38, 3e38, 3e38, 3e38], '
        b"[-3e38, -3e38, -3e38, -3e38], [Infinity, 0, 0, 0]]}",
    )
    assert response.status_code == 200, response.text
    (nan_row, big, small, infinite) = json.loads(response.text)["predictions"]
    assert all(math.isnan(x) for x in nan_row)
    assert big[0] == pytest.approx(3e38, rel=1e-6)
    assert big[1] == math.inf
    assert small[0] == pytest.approx(-3e38, rel=1e-6)
    assert small[1] == -math.inf
    assert infinite[0] == math.inf


async def test_b64_strings_round_trip(gateway: RunningGateway) -> None:
    blobs = [{"b64": "AAEC/w=="}, {"b64": "aGVsbG8="}]
    v1 = await gateway.client.post("/v1/models/bytes:predict", json={"instances": blobs})
    assert v1.json() == {"predictions": blobs}
    v2 = await gateway.client.post(
        "/v2/models/bytes/infer",
        json={
            "inputs": [
                {
                    "name": "text_bytes",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": ["hello", "wörld"],
                }
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert (output["name"], output["datatype"], output["data"]) == (
        "out_bytes",
        "BYTES",
        ["hello", "wörld"],
    )


async def test_several_named_inputs_and_outputs(gateway: RunningGateway) -> None:
    rows = [{"a": [1.0, 2.0], "b": [0.5, 0.5]}, {"a": [3.0, 4.0], "b": [1.0, 1.0]}]
    v1 = await gateway.client.post("/v1/models/multi:predict", json={"instances": rows})
    assert v1.json() == {
        "predictions": [
            {"sum": [1.5, 2.5], "diff": [0.5, 1.5]},
            {"sum": [4.0, 5.0], "diff": [2.0, 3.0]},
        ]
    } or v1.json() == {
        "predictions": [
            {"diff": [0.5, 1.5], "sum": [1.5, 2.5]},
            {"diff": [2.0, 3.0], "sum": [4.0, 5.0]},
        ]
    }
    v2 = await gateway.client.post(
        "/v2/models/multi/infer",
        json={
            "inputs": [
                {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
                {"name": "b", "shape": [2, 2], "datatype": "FP32", "data": [0.5, 0.5, 1, 1]},
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["sum"]["data"] == [1.5, 2.5, 4.0, 5.0]
    assert outputs["diff"]["data"] == [0.5, 1.5, 2.0, 3.0]
    assert outputs["sum"]["shape"] == [2, 2]
    missing = await gateway.client.post(
        "/v2/models/multi/infer",
        json={"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
    )
    assert missing.status_code == 422
    assert "missing input(s): b" in error_of(missing)[1]


async def test_passthrough_to_torchserves_own_api(
    start_gateway: StartGateway, all_servers: AllServers, tfserving_server: TFServingHandle
) -> None:
    gateway = await start_gateway(
        routes(all_servers, tfserving_server)
        + "\nroutes:\n  - {path: /torchserve/, backend: ts, strip_prefix: true}\n"
    )
    response = await gateway.client.post(
        "/torchserve/predictions/linear/2.0",
        content=b'{"data": [[1, 2, 3, 4]]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert close(response.json(), {"predictions": [[2.0, 18.0]]}) or response.json() == [2.0, 18.0]
    missing = await gateway.client.post("/torchserve/predictions/nope", content=b"{}")
    assert missing.status_code == 404
    assert missing.json()["type"] == "ModelNotFoundException"  # TorchServe's own body, as-is


@pytest.mark.parametrize("kind", KINDS)
async def test_tf_style_metadata_for_every_kind(gateway: RunningGateway, kind: str) -> None:
    response = await gateway.client.get(f"/v1/models/{kind}/versions/2/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": kind, "signature_name": "", "version": "2"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (name,) = signature["inputs"]
    assert name == INPUT_NAME[kind]
    assert signature["inputs"][name]["dtype"] == "DT_FLOAT"
    dims = signature["inputs"][name]["tensor_shape"]["dim"]
    assert [d["size"] for d in dims] == ["-1", "4"]
