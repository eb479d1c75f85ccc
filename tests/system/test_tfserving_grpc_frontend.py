"""TF Serving's gRPC API served by the gateway in front of TF Serving (the double, faithful to its
source, reached over REST): a client on the generated stubs gets, from the gateway's gRPC port,
what it gets from TF Serving's own gRPC port (the double's), message for message where the
gateway has nothing to add, and the same numbers as the gateway's HTTP v1 and v2 endpoints."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)
from tests.conftest import RunningGateway, StartGateway
from tests.doubles.plugin import StartTFServing, TFServingHandle
from tests.support import backend, error_of, free_port, model, routes_yaml
from tests.tfs_client import Stubs, predict_request, refused, strings, stubs, tensor, values

pytestmark = pytest.mark.anyio

X = [[1.0, 2.0, 3.0, 4.0], [0.1, -0.2, 0.3, 0.7], [1e-3, 3.5, -2.25, 1e3]]


def routes(tfs: str) -> str:
    """The double's models under their own names; ``linear``'s gateway versions are "1", "2"
    (default, TF's Latest) and the names "stable" and "canary" (TF's labels: 1 and 2)."""
    on_tfs = backend("tfserving", tfs, timeout="10s")

    def versions(name: str, **native: int) -> dict[str, dict[str, Any]]:
        return {v: {"backend": "tfs", "name": name, "version": str(n)} for v, n in native.items()}

    linear = versions("linear", **{"1": 1, "2": 2, "stable": 1, "canary": 2})
    return routes_yaml(
        {"tfs": on_tfs},
        {
            "linear": model(linear, default="2"),
            "multi": model(versions("multi", **{"1": 1})),
            "echo_bytes": model(versions("echo_bytes", **{"1": 1})),
        },
    )


@asynccontextmanager
async def both(
    start_gateway: StartGateway, tfs: TFServingHandle
) -> AsyncIterator[tuple[RunningGateway, Stubs, Stubs]]:
    """The gateway (in front of ``tfs``) and the stubs of its gRPC port and of the double's."""
    port = free_port()
    gateway = await start_gateway(routes(tfs.url), grpc_port=port)
    async with stubs(f"127.0.0.1:{port}") as through, stubs(tfs.grpc_url) as direct:
        yield gateway, through, direct


def same_outputs(a: predict_pb2.PredictResponse, b: predict_pb2.PredictResponse) -> None:
    assert dict(a.outputs) == dict(b.outputs)  # dtype, shape and every value in its *_val


# --- Predict -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "float_val"])
async def test_predict_is_tf_servings_answer(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, content: bool
) -> None:
    request = predict_request("linear", {"x": tensor(X, content=content)})
    async with both(start_gateway, tfserving_server) as (gateway, through, direct):
        got = await through.prediction.Predict(request)
        expected = await direct.prediction.Predict(request)
        v1 = await gateway.client.post("/v1/models/linear:predict", json={"instances": X})
        v2 = await gateway.client.post(
            "/v2/models/linear/infer",
            json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4],
                              "data": np.asarray(X, np.float32).reshape(-1).tolist()}]},
        )  # fmt: skip
    assert got == expected  # model_spec (name, version 2, serving_default) and outputs
    y = values(got.outputs["y"])
    np.testing.assert_array_equal(y, np.asarray(v1.json()["predictions"], np.float32))
    [out] = v2.json()["outputs"]
    np.testing.assert_array_equal(y, np.asarray(out["data"], np.float32).reshape(out["shape"]))


async def test_a_single_value_fills_the_shape_as_tf_does(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        for sent in (
            tensor([2.5], content=False, shape=[3, 4]),
            tensor([1.0, 2.0], content=False, shape=[2, 4]),
            tensor([1.0, 2.0, 3.0, 4.0, 9.0], content=False, shape=[1, 4]),
        ):
            request = predict_request("linear", {"x": sent})
            same_outputs(
                await through.prediction.Predict(request),
                await direct.prediction.Predict(request),
            )


@pytest.mark.parametrize(
    ("pin", "native"),
    [({"version": 1}, {"version": 1}), ({"version": 2}, {"version": 2}),
     ({"label": "stable"}, {"label": "stable"}), ({"label": "canary"}, {"label": "canary"}),
     ({"label": "1"}, {"version": 1})],
)  # fmt: skip
async def test_versions_by_number_and_by_label(
    start_gateway: StartGateway,
    tfserving_server: TFServingHandle,
    pin: dict[str, Any],
    native: dict[str, Any],
) -> None:
    inputs = {"x": tensor(X)}
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        got = await through.prediction.Predict(predict_request("linear", inputs, **pin))
        expected = await direct.prediction.Predict(predict_request("linear", inputs, **native))
    same_outputs(got, expected)
    if "label" in pin and not pin["label"].isdigit():  # a gateway version TF cannot number
        assert got.model_spec.version_label == pin["label"]
    else:
        assert got.model_spec.version.value == expected.model_spec.version.value


async def test_strings(start_gateway: StartGateway, tfserving_server: TFServingHandle) -> None:
    sent = [b"hello", b"\xff\x00bytes", b""]
    async with both(start_gateway, tfserving_server) as (gateway, through, direct):
        for content in (False, True):
            request = predict_request("echo_bytes", {"text_bytes": strings(sent, content=content)})
            got = await through.prediction.Predict(request)
            assert got == await direct.prediction.Predict(request)
            assert list(got.outputs["out_bytes"].string_val) == sent
        body = {"instances": [{"b64": base64.b64encode(v).decode()} for v in sent]}
        v1 = await gateway.client.post("/v1/models/echo_bytes:predict", json=body)
    assert [base64.b64decode(p["b64"]) for p in v1.json()["predictions"]] == sent


async def test_several_outputs_and_the_output_filter(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    """TF Serving's REST API has no output filter: the gateway keeps the outputs asked for."""
    inputs = {"a": tensor([[1.0, 2.0]]), "b": tensor([[0.5, 4.0]])}
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        for wanted in ([], ["diff"], ["diff", "sum"]):
            request = predict_request("multi", inputs, output_filter=wanted)
            got = await through.prediction.Predict(request)
            assert got == await direct.prediction.Predict(request)
            assert sorted(got.outputs) == sorted(wanted or ["sum", "diff"])
        request = predict_request("multi", inputs, output_filter=["nope"])
        got_error = await refused(through.prediction.Predict(request))
        expected_error = await refused(direct.prediction.Predict(request))
    assert got_error[:2] == expected_error[:2]


# --- metadata and status -----------------------------------------------------------------------


async def test_metadata_describes_what_tf_serving_does(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "linear"
    request.model_spec.version.value = 1
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        got = await through.prediction.GetModelMetadata(request)
        expected = await direct.prediction.GetModelMetadata(request)
    assert got.model_spec == expected.model_spec  # name and version
    ours, theirs = (
        get_model_metadata_pb2.SignatureDefMap(),
        get_model_metadata_pb2.SignatureDefMap(),
    )
    assert got.metadata["signature_def"].Unpack(ours)
    assert expected.metadata["signature_def"].Unpack(theirs)
    mine, tf = ours.signature_def["serving_default"], theirs.signature_def["serving_default"]
    assert mine.method_name == tf.method_name
    for side in ("inputs", "outputs"):
        a, b = getattr(mine, side), getattr(tf, side)
        assert sorted(a) == sorted(b)
        for alias in a:  # TF's names are graph tensors ("x:0"), which a gateway cannot know
            assert (a[alias].dtype, a[alias].tensor_shape) == (
                b[alias].dtype,
                b[alias].tensor_shape,
            )


def status_request(name: str, version: int | None = None) -> Any:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


async def test_status_is_tf_servings(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        for request in (status_request("multi"), status_request("linear", 1)):
            assert await through.model.GetModelStatus(request) == await direct.model.GetModelStatus(
                request
            )


async def test_a_version_tf_serving_is_loading_is_loading(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    tfs = start_tfserving()
    knob = {"model": "linear", "version": 1, "state": "LOADING"}
    async with httpx.AsyncClient(base_url=tfs.url) as client:
        assert (await client.post("/__double__/model_state", json=knob)).status_code == 200
    async with both(start_gateway, tfs) as (_, through, direct):
        got = await through.model.GetModelStatus(status_request("linear", 1))
        expected = await direct.model.GetModelStatus(status_request("linear", 1))
    [ours], [theirs] = got.model_version_status, expected.model_version_status
    assert ours.state == theirs.state == get_model_status_pb2.ModelVersionStatus.LOADING
    assert ours.version == theirs.version == 1


# --- errors in TF Serving's words --------------------------------------------------------------


def _no_spec() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.inputs["x"].CopyFrom(tensor(X))
    return request


def _metadata(fields: list[str], name: str = "linear") -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = name
    return request


ERRORS = [
    ("Predict", _no_spec()),
    ("Predict", predict_request("", {"x": tensor(X)})),
    ("Predict", predict_request("nope", {"x": tensor(X)})),
    ("Predict", predict_request("linear", {"x": tensor(X)}, version=9)),
    ("Predict", predict_request("linear", {"x": tensor(X)}, label="nope")),
    ("Predict", predict_request("linear", {"x": tensor(X)}, output_filter=["y", "y"])),
    ("GetModelMetadata", get_model_metadata_pb2.GetModelMetadataRequest()),
    ("GetModelMetadata", _metadata([])),
    ("GetModelMetadata", _metadata(["graph"])),
    ("GetModelMetadata", _metadata(["signature_def"], "nope")),
    ("GetModelStatus", get_model_status_pb2.GetModelStatusRequest()),
    ("GetModelStatus", status_request("nope")),
    ("GetModelStatus", status_request("linear", 9)),
]


@pytest.mark.parametrize(("rpc", "request_"), ERRORS, ids=lambda v: v if isinstance(v, str) else "")
async def test_errors_the_gateway_decides_are_worded_as_tf_serving_words_them(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, rpc: str, request_: Any
) -> None:
    async with both(start_gateway, tfserving_server) as (_, through, direct):
        service = "model" if rpc == "GetModelStatus" else "prediction"
        got = await refused(getattr(getattr(through, service), rpc)(request_))
        expected = await refused(getattr(getattr(direct, service), rpc)(request_))
    assert got[:2] == expected[:2]


# --- Classify and Regress ----------------------------------------------------------------------


def examples_input(*rows: list[float]) -> Any:
    request = classification_pb2.ClassificationRequest()
    for row in rows:
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.extend(row)
    return request.input


@pytest.mark.parametrize("version", [1, 2])
async def test_classify_and_regress_reach_tf_serving(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, version: int
) -> None:
    rows = ([1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 2.0])
    body = {"examples": [{"x": row} for row in rows]}
    classify = classification_pb2.ClassificationRequest(input=examples_input(*rows))
    classify.model_spec.name = "linear"
    classify.model_spec.version.value = version
    classify.model_spec.signature_name = "classify_x_to_y"
    regress = regression_pb2.RegressionRequest(input=classify.input)
    regress.model_spec.CopyFrom(classify.model_spec)
    regress.model_spec.signature_name = "regress_x_to_y"
    async with both(start_gateway, tfserving_server) as (gateway, through, _):
        classified = await through.prediction.Classify(classify)
        regressed = await through.prediction.Regress(regress)
        path = f"/v1/models/linear/versions/{version}"
        rest_classified = await gateway.client.post(
            f"{path}:classify", json={"signature_name": "classify_x_to_y", **body}
        )
        rest_regressed = await gateway.client.post(
            f"{path}:regress", json={"signature_name": "regress_x_to_y", **body}
        )
    assert [[[c.label, c.score] for c in e.classes] for e in classified.result.classifications] == (
        rest_classified.json()["results"]
    )
    assert [r.value for r in regressed.result.regressions] == rest_regressed.json()["results"]
    assert classified.model_spec.version.value == regressed.model_spec.version.value == version
    assert classified.model_spec.signature_name == "classify_x_to_y"


async def test_tf_servings_own_errors_keep_their_text(
    start_gateway: StartGateway, tfserving_server: TFServingHandle
) -> None:
    request = classification_pb2.ClassificationRequest(input=examples_input([1.0, 2.0]))
    request.model_spec.name = "linear"
    request.model_spec.signature_name = "classify_x_to_y"
    async with both(start_gateway, tfserving_server) as (gateway, through, _):
        code, message, _ = await refused(through.prediction.Classify(request))
        rest = await gateway.client.post(
            "/v1/models/linear:classify",
            json={"signature_name": "classify_x_to_y", "examples": [{"x": [1.0, 2.0]}]},
        )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Number of float values != expected" in message  # the feature was read as floats
    assert error_of(rest)[1] == message
