"""TF Serving over gRPC as a backend (``kind: tfserving``, ``protocol: grpc``): whatever the
client speaks, the gateway answers the same whether the backend is reached over TF Serving's
REST API or its gRPC API.

The double (faithful to TF Serving's source, both faces in one process) is two backends of one
gateway: ``tfs`` over REST and ``tfs-grpc`` over gRPC. Each public model ``<name>`` has its
twin ``<name>-grpc``: ``linear`` (versions 1, 2 and 9, which TF Serving does not have),
``narrow`` (linear with inputs declared [-1, 3], so the server judges a [1, 3]), ``multi`` and
``bytes`` (TF's ``echo_bytes``); ``labelled-grpc`` alone is TF's label ``canary``. The
clients: v1 and v2 JSON, tritonclient's binary tensors over HTTP and its gRPC client on the
KServe v2 frontend, TF Serving's own stubs on the TF frontend.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http as triton_http

from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    regression_pb2,
)
from tests.conftest import RunningGateway, StartGateway
from tests.doubles.plugin import StartTFServing, TFServingHandle
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    backend,
    error_of,
    eventually,
    free_port,
    model,
    routes_yaml,
)
from tests.system.test_backends import EXPECTED, ROWS, close
from tests.tfs_client import Stubs, predict_request, strings, stubs, tensor, values

pytestmark = pytest.mark.anyio
X = np.asarray(ROWS, dtype=np.float32)


def routes(tfs: TFServingHandle) -> str:
    # One probe at start and none after: the version the server lacks (9) stays routable, so
    # the server's own 404 is what a call meets (readiness is asked live, still LOADING).
    health = {"interval": "1h"}
    backends = {
        "tfs": backend("tfserving", tfs.url, timeout="10s", health=health),
        "tfs-grpc": backend(
            "tfserving", f"grpc://{tfs.grpc_url}", protocol="grpc", timeout="10s", health=health
        ),
    }
    narrow = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]}

    def both(public: str, name: str, versions: tuple[str, ...], **more: Any) -> dict[str, Any]:
        """``public`` over REST and ``public-grpc`` over gRPC: TF's ``name``, ``versions``."""
        out = {}
        for on, suffix in (("tfs", ""), ("tfs-grpc", "-grpc")):
            served = {v: {"backend": on, "name": name, "version": v, **more} for v in versions}
            out[f"{public}{suffix}"] = model(served, default=versions[0])
        return out

    models = {
        **both("linear", "linear", ("1", "2", "9")),
        **both("narrow", "linear", ("1",), **narrow),
        **both("multi", "multi", ("1",)),
        **both("bytes", "echo_bytes", ("1",)),
    }
    # over gRPC a TF label can be the native version (TF Serving's REST paths take numbers only)
    labelled = {"canary": {"backend": "tfs-grpc", "name": "linear", "version": "canary"}}
    models["labelled-grpc"] = model(labelled)
    return routes_yaml(backends, models)


@pytest.fixture
async def gateway(start_gateway: StartGateway, tfserving_server: TFServingHandle) -> RunningGateway:
    return await start_gateway(routes(tfserving_server), admin_token=ADMIN_TOKEN)


async def twins(
    gateway: RunningGateway,
    method: str,
    path: str,
    public: str = "linear",
    status: int = 200,
    **send: Any,
) -> tuple[httpx.Response, httpx.Response]:
    """The answers to one request to model ``public`` (``{m}`` in ``path``) and to its gRPC
    twin, both with ``status``."""
    answers = []
    for name in (public, f"{public}-grpc"):
        response = await gateway.client.request(method, path.format(m=name), **send)
        assert response.status_code == status, response.text
        answers.append(response)
    return answers[0], answers[1]


def v2_inputs(name: str, data: Any, datatype: str = "FP32") -> dict[str, Any]:
    array = np.asarray(data)
    return {
        "name": name,
        "datatype": datatype,
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
    }


# --- inference, every client ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
async def test_v1_rows_and_columns(gateway: RunningGateway, version: str) -> None:
    path = f"/v1/models/{{m}}/versions/{version}:predict"
    rest, grpc = await twins(gateway, "POST", path, json={"instances": ROWS})
    assert grpc.json() == rest.json()
    assert close(grpc.json()["predictions"], EXPECTED[version])
    assert grpc.headers["X-Model-Version"] == rest.headers["X-Model-Version"] == version
    rest, grpc = await twins(gateway, "POST", path, json={"inputs": ROWS})
    assert grpc.json() == rest.json()
    assert close(grpc.json()["outputs"], EXPECTED[version])
    ints = {"instances": [[1, 2, 3, 4]]}  # JSON integers, for a float input
    rest, grpc = await twins(gateway, "POST", "/v1/models/{m}:predict", json=ints)
    assert grpc.json() == rest.json() == {"predictions": [[1.0, 9.0]]}


async def test_nan_and_infinity_survive(gateway: RunningGateway) -> None:
    body = b'{"instances": [[NaN, 1, 1, 1], [3e38, 3e38, 3e38, 3e38], [Infinity, 0, 0, 0]]}'
    rest, grpc = await twins(gateway, "POST", "/v1/models/{m}:predict", content=body)
    assert "NaN" in grpc.text
    assert "Infinity" in grpc.text
    over_rest = np.asarray(json.loads(rest.text)["predictions"], np.float32)
    over_grpc = np.asarray(json.loads(grpc.text)["predictions"], np.float32)
    np.testing.assert_array_equal(over_grpc, over_rest)  # NaN where NaN, the same float32s


async def test_the_same_float32s_whatever_their_digits(gateway: RunningGateway) -> None:
    """Over REST TF Serving writes each float in as few digits as read back to it (0.1); over
    gRPC the float itself comes (0.10000000149011612 as a double). JSON digits may differ,
    the float32s never do."""
    rows = [[0.1, -0.2, 0.3, 0.7], [1e-3, 3.5, -2.25, 1e3]]
    rest, grpc = await twins(gateway, "POST", "/v1/models/{m}:predict", json={"instances": rows})
    over_rest = np.asarray(rest.json()["predictions"], np.float32)
    over_grpc = np.asarray(grpc.json()["predictions"], np.float32)
    assert over_grpc.tobytes() == over_rest.tobytes()


@pytest.mark.parametrize("version", ["1", "2"])
async def test_v2_json(gateway: RunningGateway, version: str) -> None:
    request = {"id": "req-1", "inputs": [v2_inputs("x", ROWS)]}
    path = f"/v2/models/{{m}}/versions/{version}/infer"
    rest, grpc = await twins(gateway, "POST", path, json=request)
    body = grpc.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (
        "linear-grpc",
        version,
        "req-1",
    )
    assert body["outputs"] == rest.json()["outputs"]
    (output,) = body["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("y", "FP32", [2, 2])
    assert close(output["data"], [x for row in EXPECTED[version] for x in row])


@pytest.mark.parametrize("version", ["1", "2"])
async def test_tritonclients_binary_tensors(gateway: RunningGateway, version: str) -> None:
    def infer(name: str) -> Any:
        client = triton_http.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            tensor_ = triton_http.InferInput("x", list(X.shape), "FP32")
            tensor_.set_data_from_numpy(X, binary_data=True)
            wanted = triton_http.InferRequestedOutput("y", binary_data=True)
            result = client.infer(name, [tensor_], outputs=[wanted], model_version=version)
            return result.as_numpy("y")
        finally:
            client.close()

    over_rest = await asyncio.to_thread(infer, "linear")
    over_grpc = await asyncio.to_thread(infer, "linear-grpc")
    assert over_grpc.dtype == over_rest.dtype == np.float32
    assert over_grpc.tobytes() == over_rest.tobytes()
    assert close(over_grpc.tolist(), EXPECTED[version])


async def test_kserve_grpc_in_front(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    """tritonclient.grpc to the gateway's KServe v2 frontend, then REST or gRPC to TF."""
    port = free_port()
    await start_gateway(routes(tfserving_server), grpc_port=port)
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        for version in ("1", "2"):
            answers = []
            for name in ("linear", "linear-grpc"):
                tensor_ = triton_grpc.InferInput("x", list(X.shape), "FP32")
                tensor_.set_data_from_numpy(X)
                result = await client.infer(name, [tensor_], model_version=version)
                answers.append(result.as_numpy("y"))
            assert answers[1].tobytes() == answers[0].tobytes()
            assert close(answers[1].tolist(), EXPECTED[version])
        for name in ("linear", "linear-grpc"):
            assert await client.is_model_ready(name, "2")
            assert not await client.is_model_ready(name, "9")
    finally:
        await client.close()


@asynccontextmanager
async def tf_frontend(start_gateway: StartGateway, tfs: TFServingHandle) -> AsyncIterator[Stubs]:
    port = free_port()
    await start_gateway(routes(tfs), grpc_port=port)
    async with stubs(f"127.0.0.1:{port}") as through:
        yield through


async def test_tf_grpc_in_front(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    """TF Serving's own stubs to the gateway's TF frontend, then REST or gRPC to TF."""
    rows = ([1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 2.0])
    classify = classification_pb2.ClassificationRequest()
    for row in rows:
        example = classify.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.extend(row)
    classify.model_spec.signature_name = "classify_x_to_y"
    regress = regression_pb2.RegressionRequest(input=classify.input)
    regress.model_spec.signature_name = "regress_x_to_y"
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    status = get_model_status_pb2.GetModelStatusRequest()
    answers: dict[str, list[Any]] = {}
    async with tf_frontend(start_gateway, tfserving_server) as through:
        for name in ("linear", "linear-grpc"):
            for version in (1, 2):
                request = predict_request(name, {"x": tensor(X)}, version=version)
                answers.setdefault(f"predict {version}", []).append(
                    await through.prediction.Predict(request)
                )
            echo = predict_request(
                name.replace("linear", "bytes"), {"text_bytes": strings([b"\xff\x00", b"a"])}
            )
            answers.setdefault("bytes", []).append(await through.prediction.Predict(echo))
            for message in (classify, regress, metadata, status):
                message.model_spec.name = name
            answers.setdefault("classify", []).append(await through.prediction.Classify(classify))
            answers.setdefault("regress", []).append(await through.prediction.Regress(regress))
            answers.setdefault("metadata", []).append(
                await through.prediction.GetModelMetadata(metadata)
            )
            answers.setdefault("status", []).append(await through.model.GetModelStatus(status))
    for what, (rest, grpc) in answers.items():
        if what == "status":  # why 9 is LOADING names the public model
            for entry in grpc.model_version_status:
                entry.status.error_message = entry.status.error_message.replace("-grpc", "")
        else:
            assert grpc.model_spec.name.endswith("-grpc")
            grpc.model_spec.name = rest.model_spec.name
        assert grpc == rest, what
    y = values(answers["predict 2"][1].outputs["y"])
    assert close(y.tolist(), EXPECTED["2"])
    assert list(answers["bytes"][1].outputs["out_bytes"].string_val) == [b"\xff\x00", b"a"]
    assert [r.value for r in answers["regress"][1].result.regressions] == [10.0, 2.5]  # v1


# --- what TF Serving tells about its models ---------------------------------------------------


@pytest.mark.parametrize(("public", "version"), [("linear", "2"), ("multi", "1"), ("bytes", "1")])
async def test_metadata(gateway: RunningGateway, public: str, version: str) -> None:
    rest, grpc = await twins(gateway, "GET", f"/v2/models/{{m}}/versions/{version}", public)
    assert grpc.json()["name"] == f"{public}-grpc"
    assert {k: v for k, v in grpc.json().items() if k != "name"} == {
        k: v for k, v in rest.json().items() if k != "name"
    }
    path = f"/v1/models/{{m}}/versions/{version}/metadata"
    rest, grpc = await twins(gateway, "GET", path, public)
    assert grpc.json()["metadata"] == rest.json()["metadata"]
    assert grpc.json()["model_spec"]["version"] == version


async def test_metadata_is_the_servers(gateway: RunningGateway) -> None:
    multi = (await gateway.client.get("/v2/models/multi-grpc")).json()
    assert [i["name"] for i in multi["inputs"]] == ["a", "b"]
    assert [o["name"] for o in multi["outputs"]] == ["diff", "sum"]  # in alias order
    assert multi["outputs"][0] == {"name": "diff", "datatype": "FP32", "shape": [-1, 2]}
    echo = (await gateway.client.get("/v2/models/bytes-grpc")).json()
    assert echo["inputs"] == [{"name": "text_bytes", "datatype": "BYTES", "shape": [-1]}]


async def test_status_and_readiness(gateway: RunningGateway) -> None:
    rest, grpc = await twins(gateway, "GET", "/v1/models/{m}")
    assert grpc.text.replace("linear-grpc", "linear") == rest.text  # why 9 is LOADING names it
    states = {s["version"]: s["state"] for s in grpc.json()["model_version_status"]}
    assert states == {"9": "LOADING", "2": "AVAILABLE", "1": "AVAILABLE"}
    rest, grpc = await twins(gateway, "GET", "/v1/models/{m}/versions/2")
    assert grpc.json() == rest.json()
    await twins(gateway, "GET", "/v2/models/{m}/versions/2/ready")
    await twins(gateway, "GET", "/v2/models/{m}/versions/9/ready", status=503)


async def test_a_tf_label_as_the_native_version(gateway: RunningGateway) -> None:
    """``version: canary`` reaches TF's label over gRPC (Predict and readiness both)."""
    status = (await gateway.client.get("/v1/models/labelled-grpc")).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    response = await gateway.client.post(
        "/v1/models/labelled-grpc:predict", json={"instances": ROWS}
    )
    assert response.status_code == 200, response.text
    assert close(response.json()["predictions"], EXPECTED["2"])  # TF's canary is version 2
    assert response.headers["X-Model-Version"] == "canary"


# --- classify and regress ---------------------------------------------------------------------


@pytest.mark.parametrize("context", [False, True], ids=["examples", "with_context"])
@pytest.mark.parametrize("method", ["classify", "regress"])
@pytest.mark.parametrize("version", ["1", "2"])
async def test_classify_and_regress(
    gateway: RunningGateway, method: str, version: str, context: bool
) -> None:
    body: dict[str, Any] = {
        "signature_name": f"{method}_x_to_y",
        "examples": [{"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [0.1, 0.2, 0.3, 0.7], "note": "é"}],
    }
    if context:
        body["context"] = {"x": [9.0, 9.0, 9.0, 9.0], "id": 7}  # the examples' own x wins
    path = f"/v1/models/{{m}}/versions/{version}:{method}"
    rest, grpc = await twins(gateway, "POST", path, json=body)
    assert grpc.json() == rest.json()  # the very numbers TF Serving's REST API writes
    assert grpc.headers["X-Model-Version"] == version
    results = grpc.json()["results"]
    if method == "classify":
        assert results[0] == [["", 1.0 * int(version)], ["", 9.0 * int(version)]]
    else:
        assert results[0] == 10.0 * int(version)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"signature_name": "classify_x_to_y"},
         "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [{"x": [1.0, 2]}]},
         "Unexpected element type in feature: x expecting type: float"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"signature_name": 3, "examples": [{}]}, "'signature_name' key must be a string value."),
        # read by the gateway over gRPC, then refused by the server in its words
        ({"signature_name": "classify_x_to_y", "examples": [{"x": [1.0, 2.0]}]},
         "Number of float values != expected.  Values size: 2 but output shape: [4]"),
        ({"signature_name": "nope", "examples": [{"x": [1.0]}]},
         "No signature was found with the name: nope"),
    ],
)  # fmt: skip
async def test_examples_tf_serving_refuses_are_400s_in_its_words(
    gateway: RunningGateway, body: dict[str, Any], words: str
) -> None:
    path = "/v1/models/{m}:classify"
    rest, grpc = await twins(gateway, "POST", path, status=400, json=body)
    assert words in error_of(rest)[1]
    assert words in error_of(grpc)[1]
    assert set(grpc.json()) == {"error", "code", "request_id"}  # TF REST's shape, and ours


async def test_examples_that_are_not_json(gateway: RunningGateway) -> None:
    path = "/v1/models/{m}:regress"
    for response in await twins(gateway, "POST", path, status=400, content=b"{"):
        assert isinstance(error_of(response)[1], str)


# --- strings, several tensors, versions, errors ----------------------------------------------


async def test_bytes_tensors(gateway: RunningGateway) -> None:
    blobs = [{"b64": "AAEC/w=="}, {"b64": "aGVsbG8="}]
    path = "/v1/models/{m}:predict"
    rest, grpc = await twins(gateway, "POST", path, "bytes", json={"instances": blobs})
    assert grpc.json() == rest.json() == {"predictions": blobs}
    v2 = {"inputs": [v2_inputs("text_bytes", ["hello", "wörld"], "BYTES")]}
    rest, grpc = await twins(gateway, "POST", "/v2/models/{m}/infer", "bytes", json=v2)
    assert grpc.json()["outputs"] == rest.json()["outputs"]
    assert grpc.json()["outputs"][0]["data"] == ["hello", "wörld"]
    columns = {"inputs": {"text_bytes": [{"b64": base64.b64encode(b"\xff").decode()}]}}
    rest, grpc = await twins(gateway, "POST", path, "bytes", json=columns)
    assert grpc.json() == rest.json() == {"outputs": [{"b64": "/w=="}]}


async def test_several_inputs_and_outputs(gateway: RunningGateway) -> None:
    rows = [{"a": [1.0, 2.0], "b": [0.5, 0.5]}, {"a": [3.0, 4.0], "b": [1.0, 1.0]}]
    path, infer = "/v1/models/{m}:predict", "/v2/models/{m}/infer"
    rest, grpc = await twins(gateway, "POST", path, "multi", json={"instances": rows})
    assert grpc.text == rest.text  # key order too
    assert grpc.json()["predictions"][0] == {"diff": [0.5, 1.5], "sum": [1.5, 2.5]}
    columns = {"inputs": {"a": [[1.0, 2.0]], "b": [[0.5, 0.5]]}}
    rest, grpc = await twins(gateway, "POST", path, "multi", json=columns)
    assert grpc.text == rest.text
    v2 = {"inputs": [v2_inputs("a", [[1, 2], [3, 4]]), v2_inputs("b", [[0.5, 0.5], [1, 1]])]}
    rest, grpc = await twins(gateway, "POST", infer, "multi", json=v2)
    assert grpc.json()["outputs"] == rest.json()["outputs"]
    assert [o["name"] for o in grpc.json()["outputs"]] == ["diff", "sum"]
    missing = {"inputs": [v2_inputs("a", [[1, 2]])]}
    rest, grpc = await twins(gateway, "POST", infer, "multi", status=422, json=missing)
    assert error_of(grpc) == error_of(rest)
    assert "missing input(s): b" in error_of(grpc)[1]


async def test_an_unknown_version_is_404_with_tf_servings_text(gateway: RunningGateway) -> None:
    for path in ("/v1/models/{m}/versions/9:predict", "/v1/models/{m}/versions/9:classify"):
        body = {"instances": ROWS} if path.endswith("predict") else {"examples": [{"x": [1.0]}]}
        rest, grpc = await twins(gateway, "POST", path, status=404, json=body)
        for response in (rest, grpc):
            code, message = error_of(response)
            assert code == "upstream_error"
            assert "Servable not found for request: Specific(linear, 9)" in message


async def test_a_bad_input_is_400_with_the_servers_text(gateway: RunningGateway) -> None:
    rows = {"instances": [[1.0, 2.0, 3.0]]}  # fits the declared [-1, 3], not the model
    path = "/v1/models/{m}:predict"
    rest, grpc = await twins(gateway, "POST", path, "narrow", status=400, json=rows)
    for response in (rest, grpc):
        code, message = error_of(response)
        assert code == "upstream_error"
        assert "Matrix size-incompatible: In[0]: [1,3], In[1]: [4,2]" in message


async def test_another_signature_is_the_servers_to_judge(gateway: RunningGateway) -> None:
    # an unknown signature: FAILED_PRECONDITION over gRPC, a 400 as over REST
    body = {"signature_name": "nope", "instances": [[1, 2, 3, 4]]}
    path = "/v1/models/{m}:predict"
    rest, grpc = await twins(gateway, "POST", path, status=400, json=body)
    assert '"nope"' in error_of(rest)[1]
    assert 'Serving signature key "nope" not found.' in error_of(grpc)[1]
    # another signature's one input, named and typed from its metadata: TF's model runs it
    body = {"signature_name": "classify_x_to_y", "instances": ["abc"]}
    rest, grpc = await twins(gateway, "POST", path, status=400, json=body)
    assert "Could not parse example input, value: 'abc'" in error_of(rest)[1]
    assert "Could not parse example input, value: 'abc'" in error_of(grpc)[1]


async def test_the_backend_speaks_grpc(
    gateway: RunningGateway, tfserving_server: TFServingHandle
) -> None:
    state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()["backends"]
    assert (state["tfs"]["protocol"], state["tfs-grpc"]["protocol"]) == ("http", "grpc")
    assert state["tfs-grpc"]["replicas"][0]["url"].startswith("grpc://127.0.0.1:")

    async def faces() -> dict[str, int]:
        async with httpx.AsyncClient(base_url=tfserving_server.url) as client:
            by_face: dict[str, int] = (await client.get("/__double__/stats")).json()["by_face"]
        return by_face

    await gateway.client.post("/v1/models/linear-grpc:predict", json={"instances": ROWS})
    before = await faces()  # the signature is known now: one call is one Predict
    for method in ("predict", "classify", "regress"):
        body: dict[str, Any] = {"instances": ROWS}
        if method != "predict":
            body = {"signature_name": f"{method}_x_to_y", "examples": [{"x": ROWS[0]}]}
        response = await gateway.client.post(f"/v1/models/linear-grpc:{method}", json=body)
        assert response.status_code == 200, response.text
    after = await faces()
    assert after.get("grpc", 0) - before.get("grpc", 0) == 3
    assert after.get("rest", 0) == before.get("rest", 0)


# --- faults ------------------------------------------------------------------------------------


async def test_a_stopped_server_is_503_and_its_replica_ejected(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    tfs = start_tfserving()
    served = {"1": {"backend": "tfs", "name": "linear", "version": "1"}}
    routes_ = routes_yaml(
        {
            "tfs": backend(
                "tfserving",
                f"grpc://{tfs.grpc_url}",
                protocol="grpc",
                timeout="2s",
                health={"interval": "200ms", "timeout": "1s", "unhealthy_after": 1},
                outlier={"consecutive_failures": 1, "ejection": "30s"},
            )
        },
        {"linear": model(served)},
    )
    gateway = await start_gateway(routes_, admin_token=ADMIN_TOKEN)
    ok = await gateway.client.post("/v1/models/linear:predict", json={"instances": ROWS})
    assert ok.status_code == 200, ok.text
    tfs.stop()
    response = await gateway.client.post("/v1/models/linear:predict", json={"instances": ROWS})
    assert response.status_code == 503, response.text
    assert error_of(response)[0] == "no_healthy_replica"

    async def ejected() -> bool:
        state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
        replica = state["backends"]["tfs"]["replicas"][0]
        return bool(replica["ejected_for"] > 0 or replica["unready"])

    await eventually(ejected)
    status = (await gateway.client.get("/v1/models/linear")).json()
    assert status["model_version_status"][0]["state"] == "LOADING"
