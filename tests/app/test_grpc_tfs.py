"""TF Serving's gRPC API on the gateway's gRPC port (``edge/grpc_tfs.py``), called the way TF
Serving's clients call it (the generated stubs over grpc.aio), in front of the bundled demo
model server (KServe v2, a Triton-kind backend: TF clients reach v2 servers too) and the echo
fake. Every answer is compared number for number with the same model over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import ml_dtypes
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.protos.tensorflow.core.framework import types_pb2
from gateway.protos.tensorflow.core.protobuf import error_codes_pb2
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import EchoServer, dead_url
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    backend,
    error_of,
    free_port,
    model,
    routes_yaml,
    versions,
)
from tests.tfs_client import Stubs, predict_request, refused, strings, stubs, tensor, values

pytestmark = pytest.mark.anyio

X = [[1.0, 2.0, 3.0, 4.0], [0.5, -0.25, 0.125, 1e3]]
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
LOADING = get_model_status_pb2.ModelVersionStatus.LOADING


def routes(demo: str, echo: str = "", **sections: Any) -> str:
    """``linear`` on the demo server: versions "1" (default), "2" and "canary" (its version 2,
    a name TF cannot number); ``echo`` on the echo fake when given."""
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    served["canary"] = {"backend": "demo", "name": "linear", "version": "2"}
    backends = {"demo": backend("triton", demo)}
    models = {"linear": model(served, default="1")}
    if echo:
        backends["echo"] = backend("triton", echo)
        models["echo"] = model(versions("echo", "1", name="echo"))
    return routes_yaml(backends, models, **sections)


@asynccontextmanager
async def served(
    start_gateway: StartGateway, text: str, **settings: Any
) -> AsyncIterator[tuple[RunningGateway, Stubs]]:
    port = free_port()
    gateway = await start_gateway(text, grpc_port=port, **settings)
    async with stubs(f"127.0.0.1:{port}") as client:
        yield gateway, client


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


async def v2_answer(gateway: RunningGateway, rows: Any, version: str = "1") -> np.ndarray[Any, Any]:
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [len(rows), 4],
                        "data": np.asarray(rows, np.float32).reshape(-1).tolist()}]}  # fmt: skip
    response = await gateway.client.post(f"/v2/models/linear/versions/{version}/infer", json=body)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


# --- Predict -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "float_val"])
async def test_predict_agrees_with_http(
    start_gateway: StartGateway, demo_backend: str, content: bool
) -> None:
    async with served(start_gateway, routes(demo_backend)) as (gateway, client):
        call = client.prediction.Predict(
            predict_request("linear", {"INPUT0": tensor(X, content=content)})
        )
        reply = await call
        trailers = dict(await call.trailing_metadata())
        v1 = await gateway.client.post("/v1/models/linear:predict", json={"instances": X})
        v2 = await v2_answer(gateway, X)
    assert reply.model_spec.name == "linear"
    assert reply.model_spec.version.value == 1
    assert reply.model_spec.signature_name == "serving_default"
    assert list(reply.outputs) == ["OUTPUT0"]
    out = reply.outputs["OUTPUT0"]
    assert out.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in out.tensor_shape.dim] == [2, 2]
    assert not out.tensor_content  # every element in float_val, as TF Serving answers
    assert len(out.float_val) == 4
    np.testing.assert_array_equal(values(out), v2)
    np.testing.assert_array_equal(values(out), np.asarray(v1.json()["predictions"], np.float32))
    assert trailers["x-model-version"] == "1"
    assert trailers["x-request-id"]


async def test_a_single_value_fills_the_shape(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    async with served(start_gateway, routes(demo_backend)) as (gateway, client):
        one = tensor([2.5], content=False, shape=[3, 4])
        reply = await client.prediction.Predict(predict_request("linear", {"INPUT0": one}))
        fewer = tensor([1.0, 2.0], content=False, shape=[1, 4])  # the last value repeats
        short = await client.prediction.Predict(predict_request("linear", {"INPUT0": fewer}))
        expected = await v2_answer(gateway, [[2.5] * 4] * 3)
    np.testing.assert_array_equal(values(reply.outputs["OUTPUT0"]), expected)
    assert values(short.outputs["OUTPUT0"]).tolist() == [[1.0, 6.0]]


async def test_versions_by_number_and_by_label(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    request = {"INPUT0": tensor(X)}
    async with served(start_gateway, routes(demo_backend)) as (gateway, client):
        two = await client.prediction.Predict(predict_request("linear", request, version=2))
        label = await client.prediction.Predict(predict_request("linear", request, label="2"))
        canary = await client.prediction.Predict(predict_request("linear", request, label="canary"))
        expected = await v2_answer(gateway, X, "2")
    for reply in (two, label, canary):
        np.testing.assert_array_equal(values(reply.outputs["OUTPUT0"]), expected)
    assert two.model_spec.version.value == label.model_spec.version.value == 2
    assert canary.model_spec.WhichOneof("version_choice") == "version_label"
    assert canary.model_spec.version_label == "canary"


async def test_output_filter(start_gateway: StartGateway, demo_backend: str) -> None:
    async with served(start_gateway, routes(demo_backend)) as (_, client):
        inputs = {"INPUT0": tensor(X)}
        kept = await client.prediction.Predict(
            predict_request("linear", inputs, output_filter=["OUTPUT0"])
        )
        assert list(kept.outputs) == ["OUTPUT0"]
        code, message, _ = await refused(
            client.prediction.Predict(predict_request("linear", inputs, output_filter=["nope"]))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message.startswith("output tensor alias not found in signature: nope")
        twice = predict_request("linear", inputs, output_filter=["OUTPUT0", "OUTPUT0"])
        code, message, _ = await refused(client.prediction.Predict(twice))
        assert (code, message) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "duplicate output tensor alias: OUTPUT0",
        )


ECHOED = [
    (np.float32, [[1.5, -2.25], [np.inf, 0.0]]),
    (np.float64, [[1e-300, 2.0]]),
    (np.int32, [[-7, 2**31 - 1]]),
    (np.int16, [[-300, 300]]),
    (np.int8, [[-128, 127]]),
    (np.uint8, [[0, 255]]),
    (np.uint16, [[0, 65535]]),
    (np.int64, [[-(2**63), 2**63 - 1]]),
    (np.uint32, [[0, 2**32 - 1]]),
    (np.uint64, [[0, 2**64 - 1]]),
    (np.bool_, [[True, False]]),
    (np.float16, [[0.5, -65504.0]]),
    (ml_dtypes.bfloat16, [[1.0, -3.0e38]]),
]


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "typed_val"])
@pytest.mark.parametrize(("dtype", "data"), ECHOED, ids=lambda v: getattr(v, "__name__", ""))
async def test_every_type_comes_back_as_sent(
    start_gateway: StartGateway,
    demo_backend: str,
    echo: EchoServer,
    dtype: Any,
    data: Any,
    content: bool,
) -> None:
    sent = tensor(data, dtype=dtype, content=content)
    async with served(start_gateway, routes(demo_backend, echo.url)) as (_, client):
        reply = await client.prediction.Predict(predict_request("echo", {"t": sent}))
    back = reply.outputs["t"]
    assert back.dtype == sent.dtype
    assert not back.tensor_content  # the typed field of the dtype, as TF Serving answers
    np.testing.assert_array_equal(values(back), np.asarray(data, dtype=dtype))


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "string_val"])
async def test_strings(
    start_gateway: StartGateway, demo_backend: str, echo: EchoServer, content: bool
) -> None:
    words = [b"caf\xc3\xa9", b"", b"\x00\xffbinary"]
    async with served(start_gateway, routes(demo_backend, echo.url)) as (_, client):
        reply = await client.prediction.Predict(
            predict_request("echo", {"text": strings(words, content=content)})
        )
    back = reply.outputs["text"]
    assert back.dtype == types_pb2.DT_STRING
    assert list(back.string_val) == words


# --- metadata and status -----------------------------------------------------------------------


def metadata_request(
    name: str, fields: list[str], version: int | None = None
) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


async def test_metadata(start_gateway: StartGateway, demo_backend: str) -> None:
    async with served(start_gateway, routes(demo_backend)) as (gateway, client):
        reply = await client.prediction.GetModelMetadata(
            metadata_request("linear", ["signature_def"], 2)
        )
        v1 = (await gateway.client.get("/v1/models/linear/versions/2/metadata")).json()
        for fields, text in (
            ([], "GetModelMetadataRequest must specify at least one metadata_field"),
            (["signature_def", "graph"], "Metadata field graph is not supported"),
        ):
            code, message, _ = await refused(
                client.prediction.GetModelMetadata(metadata_request("linear", fields))
            )
            assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT, text)
    assert reply.model_spec.name == "linear"
    assert reply.model_spec.version.value == 2
    assert list(reply.metadata) == ["signature_def"]
    any_message = reply.metadata["signature_def"]
    assert any_message.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert any_message.Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    x, y = default.inputs["INPUT0"], default.outputs["OUTPUT0"]
    assert (x.name, x.dtype, [d.size for d in x.tensor_shape.dim]) == (
        "INPUT0", types_pb2.DT_FLOAT, [-1, 4]
    )  # fmt: skip
    assert (y.dtype, [d.size for d in y.tensor_shape.dim]) == (types_pb2.DT_FLOAT, [-1, 2])
    rest = v1["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(rest["inputs"]) == set(default.inputs)
    assert set(rest["outputs"]) == set(default.outputs)


def status_request(
    name: str, *, version: int | None = None, label: str | None = None
) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def listed(reply: get_model_status_pb2.GetModelStatusResponse) -> list[tuple[int, int, int]]:
    return [(s.version, s.state, s.status.error_code) for s in reply.model_version_status]


async def test_status(start_gateway: StartGateway, demo_backend: str) -> None:
    ok = error_codes_pb2.OK
    text = routes(demo_backend)
    async with served(start_gateway, text) as (gateway, client):
        every = await client.model.GetModelStatus(status_request("linear"))
        one = await client.model.GetModelStatus(status_request("linear", version=1))
        canary = await client.model.GetModelStatus(status_request("linear", label="canary"))
        rest = (await gateway.client.get("/v1/models/linear")).json()
    # newest first, as over HTTP; "canary" has no number: version 0, the field's unset value
    assert [s["version"] for s in rest["model_version_status"]] == ["2", "1", "canary"]
    assert listed(every) == [(2, AVAILABLE, ok), (1, AVAILABLE, ok), (0, AVAILABLE, ok)]
    assert listed(one) == [(1, AVAILABLE, ok)]
    assert listed(canary) == [(0, AVAILABLE, ok)]


async def test_a_version_no_replica_serves_is_loading(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    served_versions = {
        "1": {"backend": "demo", "name": "linear", "version": "1"},
        "3": {"backend": "dead", "name": "linear", "version": "3"},
    }
    text = routes_yaml(
        {"demo": backend("triton", demo_backend), "dead": backend("triton", dead_url())},
        {"linear": model(served_versions, default="1")},
    )
    async with served(start_gateway, text) as (_, client):
        reply = await client.model.GetModelStatus(status_request("linear"))
    three, one = reply.model_version_status
    assert (three.version, three.state) == (3, LOADING)
    assert three.status.error_code == error_codes_pb2.UNAVAILABLE
    assert three.status.error_message == "no replica reports version 3 of model linear ready"
    assert (one.version, one.state, one.status.error_code) == (1, AVAILABLE, error_codes_pb2.OK)


# --- errors ------------------------------------------------------------------------------------

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


def _no_spec() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.inputs["INPUT0"].CopyFrom(tensor(X))
    return request


def _cut() -> predict_pb2.PredictRequest:
    proto = tensor(X)
    proto.tensor_content = proto.tensor_content[:-1]
    return predict_request("linear", {"INPUT0": proto})


def _complex() -> predict_pb2.PredictRequest:
    proto = tensor(X)
    proto.dtype = types_pb2.DT_COMPLEX64
    return predict_request("linear", {"INPUT0": proto})


PREDICT_ERRORS = [
    ("no spec", _no_spec(), INVALID, "Missing ModelSpec"),
    ("no name", predict_request("", {}), INVALID, "ModelSpec has no name specified."),
    (
        "unknown model",
        predict_request("nope", {"INPUT0": tensor(X)}),
        NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "unknown version",
        predict_request("linear", {"INPUT0": tensor(X)}, version=9),
        NOT_FOUND,
        "Servable not found for request: Specific(linear, 9)",
    ),
    (
        "unknown label",
        predict_request("linear", {"INPUT0": tensor(X)}, label="nope"),
        INVALID,
        "Unrecognized servable version label: nope",
    ),
    (
        "label on an unknown model",
        predict_request("nope", {"INPUT0": tensor(X)}, label="stable"),
        INVALID,
        "Unrecognized servable version label: stable",
    ),
    ("cut tensor_content", _cut(), INVALID, "tensor parsing error: INPUT0"),
    (
        "a dtype with no counterpart",
        _complex(),
        INVALID,
        "input 'INPUT0': DT_COMPLEX64 has no counterpart among the gateway's types",
    ),
    (
        "wrong dtype",
        predict_request("linear", {"INPUT0": tensor(X, dtype=np.float64)}),
        INVALID,
        "input 'INPUT0' has datatype FP64, the model expects FP32",
    ),
    (
        "wrong shape",
        predict_request("linear", {"INPUT0": tensor([1.0, 2.0])}),
        INVALID,
        "input 'INPUT0' has shape [2], the model expects [-1, 4]",
    ),
    (
        "wrong name",
        predict_request("linear", {"x": tensor(X)}),
        INVALID,
        "missing input(s): INPUT0",
    ),
]


@pytest.mark.parametrize(
    ("request_", "code", "text"),
    [case[1:] for case in PREDICT_ERRORS],
    ids=[case[0] for case in PREDICT_ERRORS],
)
async def test_predict_errors(
    start_gateway: StartGateway,
    demo_backend: str,
    request_: predict_pb2.PredictRequest,
    code: grpc.StatusCode,
    text: str,
) -> None:
    async with served(start_gateway, routes(demo_backend)) as (_, client):
        got, message, trailers = await refused(client.prediction.Predict(request_))
    assert (got, message) == (code, text)
    assert trailers["x-request-id"]


async def test_status_errors(start_gateway: StartGateway, demo_backend: str) -> None:
    async with served(start_gateway, routes(demo_backend)) as (_, client):
        for request, code, text in (
            (get_model_status_pb2.GetModelStatusRequest(), INVALID, "Missing ModelSpec"),
            (status_request("nope"), NOT_FOUND, "Could not find any versions of model nope"),
            (status_request(""), NOT_FOUND, "Could not find any versions of model "),
            (
                status_request("linear", version=7),
                NOT_FOUND,
                "Could not find version 7 of model linear",
            ),
            (
                status_request("linear", label="x"),
                INVALID,
                "Unrecognized servable version label: x",
            ),
        ):
            got, message, _ = await refused(client.model.GetModelStatus(request))
            assert (got, message) == (code, text)


async def test_classify_and_regress_name_the_method_on_a_v2_backend(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "linear"
    example = classify.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([1.0, 2.0, 3.0, 4.0])
    regress = regression_pb2.RegressionRequest(model_spec=classify.model_spec, input=classify.input)
    async with served(start_gateway, routes(demo_backend)) as (_, client):
        for method, call in (
            ("classify", client.prediction.Classify(classify)),
            ("regress", client.prediction.Regress(regress)),
        ):
            code, message, _ = await refused(call)
            assert code == INVALID
            assert message.startswith(f"{method} is a TF Serving method")
        empty = classification_pb2.ClassificationRequest(model_spec=classify.model_spec)
        code, message, _ = await refused(client.prediction.Classify(empty))
        assert (code, message) == (INVALID, "Input is empty.")
        code, message, _ = await refused(
            client.prediction.MultiInference(inference_pb2.MultiInferenceRequest())
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED
        assert message.startswith("MultiInference is not served by the gateway")


# --- the same chains as HTTP -------------------------------------------------------------------


async def tenant_key(gateway: RunningGateway, scopes: list[str]) -> str:
    name = "t-" + uuid.uuid4().hex[:8]
    created = await gateway.client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    assert created.status_code == 201
    key = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": scopes}, headers=ADMIN
    )
    value: str = key.json()["key"]
    return value


async def test_credentials_come_from_metadata(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    text = routes(demo_backend, auth={})
    settings = {"admin_token": ADMIN_TOKEN, "secret": "s-" + uuid.uuid4().hex}
    async with served(start_gateway, text, **settings) as (gateway, client):
        request = predict_request("linear", {"INPUT0": tensor(X)})
        code, _, trailers = await refused(client.prediction.Predict(request))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "www-authenticate" in trailers
        status_call = client.model.GetModelStatus(status_request("linear"))
        assert (await refused(status_call))[0] == grpc.StatusCode.UNAUTHENTICATED
        key = await tenant_key(gateway, ["predict:linear"])
        reply = await client.prediction.Predict(request, metadata=[("x-api-key", key)])
        assert values(reply.outputs["OUTPUT0"]).shape == (2, 2)
        bearer = [("authorization", f"Bearer {key}")]
        assert (await client.prediction.Predict(request, metadata=bearer)).outputs
        pinned = predict_request("linear", {"INPUT0": tensor(X)}, version=2)
        code, _, _ = await refused(client.prediction.Predict(pinned, metadata=bearer))
        assert code == grpc.StatusCode.PERMISSION_DENIED  # pinning needs pin:linear
        code, _, _ = await refused(
            client.model.GetModelStatus(status_request("linear"), metadata=bearer)
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED  # status needs metadata:linear


async def test_a_limit_refuses_with_retry_after(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    text = routes(
        demo_backend,
        rate_limits={"anonymous": {"rate": "1/min", "burst": 1}},
        auth={"required": False},
    )
    async with served(start_gateway, text) as (_, client):
        request = predict_request("linear", {"INPUT0": tensor(X)})
        await client.prediction.Predict(request)
        code, message, trailers = await refused(client.prediction.Predict(request))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message
    assert int(trailers["retry-after"]) > 0
    assert int(trailers["grpc-retry-pushback-ms"]) == int(trailers["retry-after"]) * 1000


async def test_the_cache_is_shared_with_http(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    served_versions = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1",)}
    linear = model(served_versions, default="1", deterministic=True, cache={"ttl": "60s"})
    text = routes_yaml({"demo": backend("triton", demo_backend)}, {"linear": linear})
    async with served(start_gateway, text) as (gateway, client):
        call = client.prediction.Predict(predict_request("linear", {"INPUT0": tensor(X)}))
        first = await call
        assert dict(await call.trailing_metadata())["cache-status"].endswith("stored")
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2, 4],
                            "data": np.asarray(X, np.float32).reshape(-1).tolist()}]}  # fmt: skip
        http = await gateway.client.post("/v2/models/linear/infer", json=body)
        assert http.headers["Cache-Status"].startswith("model-gateway; hit")
        again = client.prediction.Predict(
            predict_request("linear", {"INPUT0": tensor(X, content=False)})
        )
        second = await again
        assert dict(await again.trailing_metadata())["cache-status"].startswith(
            "model-gateway; hit"
        )
    assert second == first


async def test_health_and_reflection_name_the_services(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    names = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")
    async with served(start_gateway, routes(demo_backend)) as (_, client):
        channel: Any = client.channel  # the stubs' types name the sync channel
        health: Any = health_pb2_grpc.HealthStub(channel)
        for name in names:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        stream = reflection.ServerReflectionInfo()
        await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        for name in names:  # grpcurl's question: the file that declares the service
            await stream.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
        await stream.done_writing()
        listing, *files = [answer async for answer in stream]
    services = {s.name for s in listing.list_services_response.service}
    assert set(names) <= services
    for answer in files:
        assert not answer.HasField("error_response"), answer.error_response
        protos = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in answer.file_descriptor_response.file_descriptor_proto
        ]
        declared = {f"{p.package}.{s.name}" for p in protos for s in p.service}
        assert declared & set(names)


async def test_the_errors_of_http_keep_their_shape(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    """The gRPC frontend changes nothing on HTTP: the same unknown model is the gateway's own
    404 there."""
    async with served(start_gateway, routes(demo_backend)) as (gateway, _):
        response = await gateway.client.post("/v1/models/nope:predict", json={"instances": X})
    assert response.status_code == 404
    assert error_of(response)[0] == "model_not_found"
