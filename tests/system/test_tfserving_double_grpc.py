"""Pins the TF Serving double's gRPC face (``tests/doubles/tfserving_grpc.py``) to TF Serving's
gRPC API (PROTOCOLS.md section 5.3), through a client on the generated stubs of gateway/protos.

Every test talks to a real subprocess of the double: gRPC on its ``grpc_url``, REST on its
``url``. Where both faces can answer the same question, their numbers must agree exactly.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from gateway.protos.tensorflow.core.example import example_pb2
from gateway.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from gateway.protos.tensorflow.core.protobuf import error_codes_pb2
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    regression_pb2,
)
from tests.doubles.plugin import StartTFServing, TFServingHandle
from tests.tfs_client import Array, Stubs, predict_request, strings, tensor, values
from tests.tfs_client import stubs as client_stubs

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def stubs(server: TFServingHandle) -> AsyncIterator[Stubs]:
    async with client_stubs(server.grpc_url) as both:
        yield both


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


async def rest(server: TFServingHandle, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
        if body is None:
            return await client.get(path)
        return await client.post(path, json=body)


def rest_floats(value: Any) -> Array:
    return np.asarray(value, dtype=np.float32)


# --- Predict -----------------------------------------------------------------------------------

X = [[1.0, 2.0, 3.0, 4.0], [0.1, -0.2, 0.3, 0.7], [1e-3, 3.5, -2.25, 1e3]]


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "float_val"])
async def test_predict_agrees_with_rest(tfserving_server: TFServingHandle, content: bool) -> None:
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(
            predict_request("linear", {"x": tensor(X, content=content)})
        )
    assert reply.model_spec.name == "linear"
    assert reply.model_spec.version.value == 2
    assert reply.model_spec.signature_name == "serving_default"
    assert list(reply.outputs) == ["y"]
    y = reply.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in y.tensor_shape.dim] == [3, 2]
    assert not y.tensor_content  # typed fields, as without --enable_serialization_as_tensor_content
    assert len(y.float_val) == 6  # every element, no compression
    answer = await rest(tfserving_server, "/v1/models/linear:predict", {"instances": X})
    assert answer.status_code == 200
    np.testing.assert_array_equal(values(y), rest_floats(answer.json()["predictions"]))
    assert values(y).tolist() == (np.asarray(X, np.float32) @ (2 * W1.T)).tolist()


W1 = np.asarray([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32)


async def test_a_single_value_fills_the_shape(tfserving_server: TFServingHandle) -> None:
    async with stubs(tfserving_server) as s:
        one = tensor([2.5], content=False, shape=[3, 4])
        reply = await s.prediction.Predict(predict_request("linear", {"x": one}))
        fewer = tensor([1.0, 2.0], content=False, shape=[1, 4])  # the last value repeats
        short = await s.prediction.Predict(predict_request("linear", {"x": fewer}))
        more = tensor([1.0, 2.0, 3.0, 4.0, 9.0], content=False, shape=[1, 4])  # the rest is cut
        long = await s.prediction.Predict(predict_request("linear", {"x": more}))
        none = tensor([], content=False, shape=[1, 4])  # no values: zeros
        zeros = await s.prediction.Predict(predict_request("linear", {"x": none}))
    answer = await rest(
        tfserving_server, "/v1/models/linear:predict", {"instances": [[2.5] * 4] * 3}
    )
    np.testing.assert_array_equal(
        values(reply.outputs["y"]), rest_floats(answer.json()["predictions"])
    )
    assert values(short.outputs["y"]).tolist() == [[2.0, 12.0]]
    assert values(long.outputs["y"]).tolist() == [[2.0, 18.0]]
    assert values(zeros.outputs["y"]).tolist() == [[0.0, 0.0]]


async def test_only_the_dtypes_own_field_counts(tfserving_server: TFServingHandle) -> None:
    """A DT_FLOAT tensor reads float_val only: values in double_val are ignored (zeros)."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=1)
    proto.tensor_shape.dim.add(size=4)
    proto.double_val.extend([1.0, 2.0, 3.0, 4.0])
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(predict_request("linear", {"x": proto}))
    assert values(reply.outputs["y"]).tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "string_val"])
async def test_strings_round_trip_and_agree_with_rest(
    tfserving_server: TFServingHandle, content: bool
) -> None:
    sent = [b"hello", b"\xff\x00bytes", b""]
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(
            predict_request("echo_bytes", {"text_bytes": strings(sent, content=content)})
        )
    out = reply.outputs["out_bytes"]
    assert out.dtype == types_pb2.DT_STRING
    assert list(out.string_val) == sent
    body = {"instances": [{"b64": base64.b64encode(v).decode()} for v in sent]}
    answer = await rest(tfserving_server, "/v1/models/echo_bytes:predict", body)
    assert [base64.b64decode(p["b64"]) for p in answer.json()["predictions"]] == sent


@pytest.mark.parametrize(
    ("version", "label", "served", "y"),
    [
        (None, None, 2, [2.0, 18.0]),
        (1, None, 1, [1.0, 9.0]),
        (2, None, 2, [2.0, 18.0]),
        (None, "stable", 1, [1.0, 9.0]),
        (None, "canary", 2, [2.0, 18.0]),
    ],
)
async def test_version_selection(
    tfserving_server: TFServingHandle,
    version: int | None,
    label: str | None,
    served: int,
    y: list[float],
) -> None:
    request = predict_request("linear", {"x": tensor([[1, 2, 3, 4]])}, version=version, label=label)
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(request)
    assert reply.model_spec.version.value == served
    assert reply.model_spec.WhichOneof("version_choice") == "version"  # never the label
    assert values(reply.outputs["y"]).tolist() == [y]
    path = f"/v1/models/linear/versions/{served}:predict"
    answer = await rest(tfserving_server, path, {"instances": [[1, 2, 3, 4]]})
    np.testing.assert_array_equal(
        values(reply.outputs["y"]), rest_floats(answer.json()["predictions"])
    )


async def test_output_filter_and_several_outputs(tfserving_server: TFServingHandle) -> None:
    a, b = [[1.5, -2.0], [0.1, 0.2]], [[0.25, 4.0], [0.3, 0.3]]
    inputs = {"a": tensor(a), "b": tensor(b, content=False)}
    async with stubs(tfserving_server) as s:
        both = await s.prediction.Predict(predict_request("multi", inputs))
        diff = await s.prediction.Predict(predict_request("multi", inputs, output_filter=["diff"]))
    assert sorted(both.outputs) == ["diff", "sum"]
    assert list(diff.outputs) == ["diff"]
    answer = await rest(tfserving_server, "/v1/models/multi:predict", {"inputs": {"a": a, "b": b}})
    outputs = answer.json()["outputs"]
    for name in ("sum", "diff"):
        np.testing.assert_array_equal(values(both.outputs[name]), rest_floats(outputs[name]))
    np.testing.assert_array_equal(values(diff.outputs["diff"]), rest_floats(outputs["diff"]))


async def test_a_named_signature(tfserving_server: TFServingHandle) -> None:
    request = predict_request("linear", {"x": tensor([[1, 2, 3, 4]])}, signature="serving_default")
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(request)
    assert reply.model_spec.signature_name == "serving_default"


def _long_name() -> str:
    return "m" * 2000


def _missing_spec() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.inputs["x"].CopyFrom(tensor([[1, 2, 3, 4]]))
    return request


def _with_shape(dims: Sequence[int]) -> tensor_pb2.TensorProto:
    proto = tensor([[1, 2, 3, 4]])
    del proto.tensor_shape.dim[:]
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _string_content(content: bytes, count: int) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=content)
    proto.tensor_shape.dim.add(size=count)
    return proto


_OK_X = {"x": tensor([[1, 2, 3, 4]])}
INVALID = grpc.StatusCode.INVALID_ARGUMENT

# (request, code, exact details)
PREDICT_ERRORS: list[tuple[predict_pb2.PredictRequest, grpc.StatusCode, str]] = [
    (
        predict_request("nope", _OK_X),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    (
        predict_request("linear", _OK_X, version=7),
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(linear, 7)",
    ),
    (
        predict_request("linear", _OK_X, label="bogus"),
        INVALID,
        "Unrecognized servable version label: bogus",
    ),
    (_missing_spec(), INVALID, "Missing ModelSpec"),
    (predict_request("", _OK_X), INVALID, "ModelSpec has no name specified."),
    (
        predict_request("linear", _OK_X, signature="nope"),
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    ),
    (
        predict_request("multi", {"a": tensor([[1, 2]])}),
        INVALID,
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
        "Missing but required: {b}.",
    ),
    (
        predict_request("linear", {}),
        INVALID,
        "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. "
        "Missing but required: {x}.",
    ),
    (
        predict_request("linear", {"z": tensor([[1, 2, 3, 4]])}),
        INVALID,
        "Signature input alias: x(feed name: x:0) not found in request and no default value "
        "provided. Inputs expected to be in the request {z}, or default input alias set: ",
    ),
    (
        predict_request("linear", {"x": tensor([[1, 2, 3, 4]], shape=[1, 3])}),
        INVALID,
        "tensor parsing error: x",
    ),
    (predict_request("linear", {"x": _with_shape([1, -4])}), INVALID, "tensor parsing error: x"),
    (
        predict_request("linear", {"x": tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID)}),
        INVALID,
        "tensor parsing error: x",
    ),
    (
        predict_request("echo_bytes", {"text_bytes": _string_content(b"\x05ab", 1)}),
        INVALID,
        "tensor parsing error: text_bytes",
    ),
    (
        predict_request("linear", {"x": tensor([[1, 2, 3, 4]], dtype=np.float64)}),
        INVALID,
        "Expects arg[0] to be float but double is provided",
    ),
    (
        predict_request("linear", {"x": tensor([[1, 2, 3, 4]], dtype=np.int64, content=False)}),
        INVALID,
        "Expects arg[0] to be float but int64 is provided",
    ),
    (
        predict_request("multi", {"a": tensor([[1, 2]]), "b": tensor([[1, 2]], dtype=np.int32)}),
        INVALID,
        "Expects arg[1] to be float but int32 is provided",
    ),
    (
        predict_request(
            "multi", {"a": tensor([[1, 2]]), "b": tensor([[1, 2]])}, output_filter=["x"]
        ),
        INVALID,
        "output tensor alias not found in signature: x Outputs expected to be in the set "
        "{diff,sum}.",
    ),
    (
        predict_request(
            "multi", {"a": tensor([[1, 2]]), "b": tensor([[1, 2]])}, output_filter=["sum", "sum"]
        ),
        INVALID,
        "duplicate output tensor alias: sum",
    ),
    (
        predict_request(_long_name(), _OK_X),
        grpc.StatusCode.NOT_FOUND,
        ("Servable not found for request: Latest(" + _long_name())[:1024] + "...TRUNCATED",
    ),
]


@pytest.mark.parametrize(("request_", "code", "details"), PREDICT_ERRORS)
async def test_predict_errors(
    tfserving_server: TFServingHandle,
    request_: predict_pb2.PredictRequest,
    code: grpc.StatusCode,
    details: str,
) -> None:
    async with stubs(tfserving_server) as s:
        assert await status_of(s.prediction.Predict(request_)) == (code, details)


@pytest.mark.parametrize(
    ("model", "path", "inputs", "body"),
    [
        (
            "linear",
            "/v1/models/linear:predict",
            {"x": tensor([[1, 2, 3]])},
            {"instances": [[1, 2, 3]]},
        ),
        (
            "linear",
            "/v1/models/linear:predict",
            {"x": tensor([1, 2, 3, 4])},
            {"inputs": [1, 2, 3, 4]},
        ),
        (
            "multi",
            "/v1/models/multi:predict",
            {"a": tensor([[1, 2, 3]]), "b": tensor([[1, 2]])},
            {"inputs": {"a": [[1, 2, 3]], "b": [[1, 2]]}},
        ),
    ],
)
async def test_the_models_own_errors_are_the_rest_faces(
    tfserving_server: TFServingHandle,
    model: str,
    path: str,
    inputs: dict[str, tensor_pb2.TensorProto],
    body: Any,
) -> None:
    answer = await rest(tfserving_server, path, body)
    assert answer.status_code == 400
    async with stubs(tfserving_server) as s:
        got = await status_of(s.prediction.Predict(predict_request(model, inputs)))
    assert got == (INVALID, answer.json()["error"])


async def test_tensor_content_replies_with_the_flag(start_tfserving: StartTFServing) -> None:
    server = start_tfserving(tensor_content=True)
    async with stubs(server) as s:
        reply = await s.prediction.Predict(
            predict_request("linear", {"x": tensor(X, content=False)})
        )
        echoed = await s.prediction.Predict(
            predict_request("echo_bytes", {"text_bytes": strings([b"ab", b"c"])})
        )
    y = reply.outputs["y"]
    assert not y.float_val
    assert len(y.tensor_content) == 3 * 2 * 4
    answer = await rest(server, "/v1/models/linear:predict", {"instances": X})
    np.testing.assert_array_equal(values(y), rest_floats(answer.json()["predictions"]))
    assert echoed.outputs["out_bytes"].tensor_content == b"\x02\x01abc"


async def test_messages_over_4_mib_both_ways(tfserving_server: TFServingHandle) -> None:
    rows = 400_000  # 6.4 MB in, 3.2 MB out
    x = np.tile(np.asarray([1, 2, 3, 4], dtype=np.float32), (rows, 1))
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.Predict(predict_request("linear", {"x": tensor(x)}))
    y = values(reply.outputs["y"])
    assert y.shape == (rows, 2)
    assert y[-1].tolist() == [2.0, 18.0]


# --- Classify and Regress ------------------------------------------------------------------


def example(**features: list[float]) -> example_pb2.Example:
    out = example_pb2.Example()
    for name, floats in features.items():
        out.features.feature[name].float_list.value.extend(floats)
    return out


def examples_input(rows: Sequence[Sequence[float]], context: bool = False) -> input_pb2.Input:
    """Each row as feature ``x``; with ``context``, an unrelated context feature too."""
    source = input_pb2.Input()
    if context:
        listed = source.example_list_with_context
        listed.context.features.feature["unused"].int64_list.value.append(7)
        listed.examples.extend(example(x=list(row)) for row in rows)
    else:
        source.example_list.examples.extend(example(x=list(row)) for row in rows)
    return source


@pytest.mark.parametrize("context", [False, True], ids=["example_list", "with_context"])
@pytest.mark.parametrize("version", [1, 2])
async def test_classify_and_regress_agree_with_rest(
    tfserving_server: TFServingHandle, version: int, context: bool
) -> None:
    body: dict[str, Any] = {"examples": [{"x": row} for row in X]}
    if context:
        body["context"] = {"unused": 7}
    async with stubs(tfserving_server) as s:
        request = classification_pb2.ClassificationRequest(input=examples_input(X, context))
        request.model_spec.name = "linear"
        request.model_spec.version.value = version
        request.model_spec.signature_name = "classify_x_to_y"
        classified = await s.prediction.Classify(request)
        regress = regression_pb2.RegressionRequest(input=examples_input(X, context))
        regress.model_spec.name = "linear"
        regress.model_spec.version.value = version
        regress.model_spec.signature_name = "regress_x_to_y"
        regressed = await s.prediction.Regress(regress)
    assert classified.model_spec.name == regressed.model_spec.name == "linear"
    assert classified.model_spec.version.value == regressed.model_spec.version.value == version
    assert classified.model_spec.signature_name == "classify_x_to_y"
    assert regressed.model_spec.signature_name == "regress_x_to_y"
    path = f"/v1/models/linear/versions/{version}"
    over_rest = await rest(
        tfserving_server, f"{path}:classify", {**body, "signature_name": "classify_x_to_y"}
    )
    classes = [[(c.label, c.score) for c in e.classes] for e in classified.result.classifications]
    expected = [[(label, score) for label, score in row] for row in over_rest.json()["results"]]
    assert len(classes) == len(X)
    assert classes == [
        [(label, float(np.float32(score))) for label, score in row] for row in expected
    ]
    over_rest = await rest(
        tfserving_server, f"{path}:regress", {**body, "signature_name": "regress_x_to_y"}
    )
    regressions = [r.value for r in regressed.result.regressions]
    assert regressions == [float(np.float32(v)) for v in over_rest.json()["results"]]


async def test_classify_and_regress_errors(tfserving_server: TFServingHandle) -> None:
    def classify(**spec: Any) -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest(input=examples_input([[1, 2, 3, 4]]))
        for key, value in spec.items():
            setattr(request.model_spec, key, value)
        return request

    async with stubs(tfserving_server) as s:
        missing = await status_of(s.prediction.Classify(classification_pb2.ClassificationRequest()))
        unknown = await status_of(s.prediction.Classify(classify(name="nope")))
        signature = await status_of(s.prediction.Classify(classify(name="linear")))
        empty = classification_pb2.ClassificationRequest()
        empty.model_spec.name = "linear"
        empty.model_spec.signature_name = "classify_x_to_y"
        no_examples = await status_of(s.prediction.Classify(empty))
        bad = regression_pb2.RegressionRequest(input=examples_input([[1, 2, 3]]))
        bad.model_spec.name = "linear"
        bad.model_spec.signature_name = "regress_x_to_y"
        short = await status_of(s.prediction.Regress(bad))
        multi = await status_of(s.prediction.MultiInference(inference_pb2.MultiInferenceRequest()))
    assert missing == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    assert unknown == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")
    assert signature[0] == grpc.StatusCode.INVALID_ARGUMENT  # serving_default is no classifier
    assert signature[1].startswith("No classification inputs found in SignatureDef")
    assert no_examples == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    assert short[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "Number of float values != expected.  Values size: 3 but output shape: [4]" in short[1]
    assert multi == (
        grpc.StatusCode.UNIMPLEMENTED,
        "MultiInference is not modelled by the TF Serving double",
    )


# --- GetModelMetadata ---------------------------------------------------------------------


def metadata_request(
    model: str, fields: Sequence[str] = ("signature_def",), version: int | None = None
) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


@pytest.mark.parametrize("version", [None, 1])
async def test_metadata_agrees_with_rest(
    tfserving_server: TFServingHandle, version: int | None
) -> None:
    async with stubs(tfserving_server) as s:
        reply = await s.prediction.GetModelMetadata(metadata_request("linear", version=version))
    assert list(reply.metadata) == ["signature_def"]
    packed = reply.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(defs)
    served = version or 2
    assert reply.model_spec.name == "linear"
    assert reply.model_spec.version.value == served
    assert reply.model_spec.signature_name == ""
    path = "/v1/models/linear" + (f"/versions/{version}" if version else "") + "/metadata"
    answer = (await rest(tfserving_server, path)).json()
    assert answer["model_spec"] == {"name": "linear", "signature_name": "", "version": str(served)}
    expected = answer["metadata"]["signature_def"]["signature_def"]
    assert sorted(defs.signature_def) == sorted(expected)
    for name, sig in defs.signature_def.items():
        want = expected[name]
        assert sig.method_name == want["method_name"]
        for got_infos, want_infos in ((sig.inputs, want["inputs"]), (sig.outputs, want["outputs"])):
            assert sorted(got_infos) == sorted(want_infos)
            for alias, info in got_infos.items():
                w = want_infos[alias]
                assert info.name == w["name"]
                assert types_pb2.DataType.Name(info.dtype) == w["dtype"]
                assert info.tensor_shape.unknown_rank == w["tensor_shape"]["unknown_rank"]
                assert [str(d.size) for d in info.tensor_shape.dim] == [
                    d["size"] for d in w["tensor_shape"]["dim"]
                ]
    x = defs.signature_def["serving_default"].inputs["x"]
    assert (x.name, x.dtype, [d.size for d in x.tensor_shape.dim]) == (
        "x:0",
        types_pb2.DT_FLOAT,
        [-1, 4],
    )


@pytest.mark.parametrize(
    ("request_", "code", "details"),
    [
        (
            metadata_request("linear", fields=()),
            INVALID,
            "GetModelMetadataRequest must specify at least one metadata_field",
        ),
        (
            metadata_request("linear", fields=("signature_def", "graph")),
            INVALID,
            "Metadata field graph is not supported",
        ),
        (  # the fields are checked before the model
            metadata_request("nope", fields=("graph",)),
            INVALID,
            "Metadata field graph is not supported",
        ),
        (
            metadata_request("nope"),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            metadata_request("linear", version=3),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(linear, 3)",
        ),
        (
            get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]),
            INVALID,
            "Missing ModelSpec",
        ),
    ],
)
async def test_metadata_errors(
    tfserving_server: TFServingHandle,
    request_: get_model_metadata_pb2.GetModelMetadataRequest,
    code: grpc.StatusCode,
    details: str,
) -> None:
    async with stubs(tfserving_server) as s:
        assert await status_of(s.prediction.GetModelMetadata(request_)) == (code, details)


# --- GetModelStatus -----------------------------------------------------------------------


def status_request(
    model: str, *, version: int | None = None, label: str | None = None
) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def listed(reply: get_model_status_pb2.GetModelStatusResponse) -> list[tuple[int, int, int, str]]:
    return [
        (v.version, v.state, v.status.error_code, v.status.error_message)
        for v in reply.model_version_status
    ]


AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
OK = error_codes_pb2.OK


async def test_status_agrees_with_rest(tfserving_server: TFServingHandle) -> None:
    async with stubs(tfserving_server) as s:
        every = await s.model.GetModelStatus(status_request("linear"))
        one = await s.model.GetModelStatus(status_request("linear", version=1))
        labelled = await s.model.GetModelStatus(status_request("linear", label="stable"))
    assert AVAILABLE == 30
    assert listed(every) == [(2, AVAILABLE, OK, ""), (1, AVAILABLE, OK, "")]  # newest first
    assert listed(one) == [(1, AVAILABLE, OK, "")]
    assert listed(labelled) == listed(every)  # over gRPC only a version narrows the list
    answer = (await rest(tfserving_server, "/v1/models/linear")).json()
    assert [
        (int(v["version"]), v["state"], v["status"]["error_code"])
        for v in answer["model_version_status"]
    ] == [
        (
            v.version,
            get_model_status_pb2.ModelVersionStatus.State.Name(v.state),
            error_codes_pb2.Code.Name(v.status.error_code),
        )
        for v in every.model_version_status
    ]


@pytest.mark.parametrize(
    ("request_", "code", "details"),
    [
        (
            status_request("nope"),
            grpc.StatusCode.NOT_FOUND,
            "Could not find any versions of model nope",
        ),
        (
            status_request("linear", version=7),
            grpc.StatusCode.NOT_FOUND,
            "Could not find version 7 of model linear",
        ),
        (
            status_request("nope", label="stable"),
            grpc.StatusCode.NOT_FOUND,
            "Could not find any versions of model nope",
        ),
        (get_model_status_pb2.GetModelStatusRequest(), INVALID, "Missing ModelSpec"),
    ],
)
async def test_status_errors(
    tfserving_server: TFServingHandle,
    request_: get_model_status_pb2.GetModelStatusRequest,
    code: grpc.StatusCode,
    details: str,
) -> None:
    async with stubs(tfserving_server) as s:
        assert await status_of(s.model.GetModelStatus(request_)) == (code, details)


async def test_model_states_set_over_rest_show_over_grpc(start_tfserving: StartTFServing) -> None:
    server = start_tfserving()
    knob = {
        "model": "linear",
        "version": 2,
        "state": "LOADING",
        "error_code": "UNAVAILABLE",
        "error_message": "still loading",
    }
    assert (await rest(server, "/__double__/model_state", knob)).status_code == 200
    async with stubs(server) as s:
        status = await s.model.GetModelStatus(status_request("linear"))
        reply = await s.prediction.Predict(predict_request("linear", _OK_X))
        pinned = await status_of(s.prediction.Predict(predict_request("linear", _OK_X, version=2)))
    assert listed(status) == [
        (
            2,
            get_model_status_pb2.ModelVersionStatus.LOADING,
            error_codes_pb2.UNAVAILABLE,
            "still loading",
        ),
        (1, AVAILABLE, OK, ""),
    ]
    assert reply.model_spec.version.value == 1  # Latest falls back to the available version
    assert pinned == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(linear, 2)",
    )


# --- the knobs ----------------------------------------------------------------------------


async def test_faults_delays_and_stats_over_grpc(start_tfserving: StartTFServing) -> None:
    server = start_tfserving()
    predict = predict_request("linear", _OK_X)
    async with stubs(server) as s:
        await rest(server, "/__double__/fail", {"status": 503, "count": 2})
        assert await status_of(s.prediction.Predict(predict)) == (
            grpc.StatusCode.UNAVAILABLE,
            "Injected fault from the test double: UNAVAILABLE",
        )
        answer = await rest(server, "/v1/models/linear:predict", {"instances": [[1, 2, 3, 4]]})
        assert answer.status_code == 503  # one fault, shared by both faces
        await s.prediction.Predict(predict)

        await rest(
            server,
            "/__double__/fail",
            {"code": "RESOURCE_EXHAUSTED", "error": "full", "route": "predict", "face": "grpc"},
        )
        await s.model.GetModelStatus(status_request("linear"))  # another route: unaffected
        assert (
            await rest(server, "/v1/models/linear:predict", {"instances": [[1, 2, 3, 4]]})
        ).status_code == 200
        assert await status_of(s.prediction.Predict(predict)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "full",
        )

        await rest(server, "/__double__/fail", {"status": 500, "face": "rest"})
        await s.prediction.Predict(predict)  # a REST-only fault leaves gRPC alone
        assert (
            await rest(server, "/v1/models/linear:predict", {"instances": [[1, 2, 3, 4]]})
        ).status_code == 500

        await rest(server, "/__double__/delay", {"seconds": 0.3, "count": 1})
        started = time.monotonic()
        await s.prediction.Predict(predict)
        assert time.monotonic() - started >= 0.3
        await rest(server, "/__double__/delay", {"seconds": 5, "count": 1})
        started = time.monotonic()
        late = await status_of(s.prediction.Predict(predict, timeout=0.5))
        assert late[0] == grpc.StatusCode.DEADLINE_EXCEEDED  # the client's deadline ends it
        assert time.monotonic() - started < 3

    stats = (await rest(server, "/__double__/stats")).json()
    assert stats["by_face"] == {"grpc": 7, "rest": 3}
    assert stats["by_route"] == {"predict": 9, "status": 1}
    assert stats["injected_failures"] == 4
    assert stats["delayed"] == 2
    assert stats["in_flight"] == 0
    assert stats["by_status"] == {
        "UNAVAILABLE": 1,
        "503": 1,
        "200": 1,
        "RESOURCE_EXHAUSTED": 1,
        "OK": 4,
        "500": 1,
        "CANCELLED": 1,
    }
