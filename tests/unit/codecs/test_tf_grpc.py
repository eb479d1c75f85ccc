"""The TF Serving gRPC codec: model specs and versions, Predict, metadata and status messages.
No sockets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.codecs import tf_grpc
from gateway.codecs.tensors import (
    UNNAMED,
    InferenceRequest,
    InferenceResponse,
    ModelInfo,
    Signature,
    Tensor,
    TensorMeta,
)
from gateway.errors import BadGateway, BadRequest, PayloadTooLarge
from gateway.protos.tensorflow.core.framework import types_pb2
from gateway.protos.tensorflow.core.protobuf import error_codes_pb2
from gateway.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)
from tests.tfs_client import predict_request, strings, tensor

LIMIT = 1 << 20


# --- specs and versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "number"),
    [("7", 7), ("0", 0), ("-1", -1), (str(2**63 - 1), 2**63 - 1), (str(2**63), None),
     ("07", None), ("canary", None), ("1.0", None), ("", None), (" 7", None)],
)  # fmt: skip
def test_version_numbers(name: str, number: int | None) -> None:
    assert tf_grpc.version_number(name) == number


def test_specs() -> None:
    spec = model_pb2.ModelSpec(name="m", signature_name="sig")
    assert tf_grpc.read_spec(True, spec) == tf_grpc.Spec("m", None, False, "sig")
    spec.version.value = 0
    assert tf_grpc.read_spec(True, spec) == tf_grpc.Spec("m", "0", False, "sig")
    spec.version_label = "canary"
    assert tf_grpc.read_spec(True, spec) == tf_grpc.Spec("m", "canary", True, "sig")
    with pytest.raises(BadRequest, match=r"^Missing ModelSpec$"):
        tf_grpc.read_spec(False, model_pb2.ModelSpec())
    with pytest.raises(BadRequest, match=r"^ModelSpec has no name specified\.$"):
        tf_grpc.read_spec(True, model_pb2.ModelSpec())
    assert tf_grpc.read_spec(True, model_pb2.ModelSpec(), named=False).model == ""
    out = model_pb2.ModelSpec()
    tf_grpc.fill_spec(out, "m", "7", "")
    assert (out.name, out.version.value, out.signature_name) == ("m", 7, "serving_default")
    out = model_pb2.ModelSpec()
    tf_grpc.fill_spec(out, "m", "blue", None)
    assert (out.WhichOneof("version_choice"), out.version_label) == ("version_label", "blue")
    assert out.signature_name == ""


# --- Predict -----------------------------------------------------------------------------------


def test_predict_request() -> None:
    request = predict_request(
        "m",
        {"b": tensor([[1.0, 2.0]]), "a": strings([b"x"])},
        signature="sig",
        output_filter=["y", "z"],
    )
    decoded = tf_grpc.decode_predict(request, LIMIT)
    assert [(t.name, t.datatype, t.shape) for t in decoded.inputs] == [
        ("a", "BYTES", [1]),
        ("b", "FP32", [1, 2]),
    ]  # sorted by alias, as TF feeds them
    assert decoded.typed
    assert decoded.columnar
    assert decoded.outputs == [{"name": "y"}, {"name": "z"}]
    assert decoded.signature_name == "sig"
    bare = tf_grpc.decode_predict(predict_request("m", {"x": tensor([1.0])}), LIMIT)
    assert (bare.outputs, bare.signature_name) == (None, None)
    with pytest.raises(BadRequest, match=r"^duplicate output tensor alias: y$"):
        tf_grpc.decode_predict(predict_request("m", {}, output_filter=["y", "y"]), LIMIT)


def test_the_request_limit_counts_every_input() -> None:
    request = predict_request("m", {"a": tensor(np.zeros(200)), "b": tensor([0.0], shape=[200])})
    request.inputs["b"].ClearField("tensor_content")
    request.inputs["b"].float_val.append(0.0)
    tf_grpc.decode_predict(request, 1600)
    with pytest.raises(PayloadTooLarge):
        tf_grpc.decode_predict(request, 1599)


def test_predict_response() -> None:
    response = InferenceResponse(
        outputs=[
            Tensor("y", "FP32", [2], [1.0, math.nan]),
            Tensor("z", "BYTES", [1], ["text"]),
            Tensor("w", "INT64", [], [5]),
        ]
    )
    message = tf_grpc.encode_predict(response, "m", "3", "")
    assert (message.model_spec.name, message.model_spec.version.value) == ("m", 3)
    assert message.model_spec.signature_name == "serving_default"
    assert sorted(message.outputs) == ["w", "y", "z"]
    assert list(message.outputs["z"].string_val) == [b"text"]
    assert list(message.outputs["w"].int64_val) == [5]
    assert not message.outputs["w"].tensor_shape.dim
    y = message.outputs["y"]
    assert y.float_val[0] == 1.0
    assert math.isnan(y.float_val[1])
    only = tf_grpc.encode_predict(response, "m", "canary", "sig", ["z"])
    assert list(only.outputs) == ["z"]
    assert only.model_spec.version_label == "canary"
    assert only.model_spec.signature_name == "sig"
    with pytest.raises(BadRequest) as caught:
        tf_grpc.encode_predict(response, "m", "3", "", ["nope"])
    assert caught.value.message == (
        "output tensor alias not found in signature: nope Outputs expected to be in the set "
        "{w,y,z}."
    )
    wire = predict_pb2.PredictResponse.FromString(message.SerializeToString())
    assert list(wire.outputs["y"].float_val)[:1] == [1.0]  # the packed bytes are valid protobuf


# --- metadata and status -----------------------------------------------------------------------


def test_metadata_fields() -> None:
    tf_grpc.check_metadata_fields(["signature_def"])
    tf_grpc.check_metadata_fields(["signature_def", "signature_def"])  # TF answers each
    with pytest.raises(BadRequest, match="must specify at least one metadata_field"):
        tf_grpc.check_metadata_fields([])
    with pytest.raises(BadRequest, match=r"^Metadata field graph is not supported$"):
        tf_grpc.check_metadata_fields(["signature_def", "graph"])


def test_metadata() -> None:
    signature = Signature(
        inputs=(TensorMeta("x", "FP32", (-1, 4)), TensorMeta("s", "BYTES", None)),
        outputs=(TensorMeta("y", "BF16", (2,)),),
    )
    message = tf_grpc.encode_metadata(ModelInfo("m", "2", ("1", "2"), signature))
    assert (message.model_spec.name, message.model_spec.version.value) == ("m", 2)
    assert message.model_spec.signature_name == ""
    packed = message.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    assert list(signatures.signature_def) == ["serving_default"]
    default = signatures.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    x, s, y = default.inputs["x"], default.inputs["s"], default.outputs["y"]
    assert (x.name, x.dtype, [d.size for d in x.tensor_shape.dim]) == (
        "x",
        types_pb2.DT_FLOAT,
        [-1, 4],
    )
    assert (s.dtype, s.tensor_shape.unknown_rank) == (types_pb2.DT_STRING, True)
    assert y.dtype == types_pb2.DT_BFLOAT16
    unknown = tf_grpc.encode_metadata(ModelInfo("m", "blue", ("blue",), None))
    assert unknown.model_spec.version_label == "blue"


def test_status() -> None:
    info = ModelInfo(
        "m", None, ("1", "2", "blue"), None, (("2", True), ("1", False), ("blue", True))
    )
    message = tf_grpc.encode_status(info)
    states = get_model_status_pb2.ModelVersionStatus
    assert [(s.version, s.state, s.status.error_code, s.status.error_message)
            for s in message.model_version_status] == [
        (2, states.AVAILABLE, error_codes_pb2.OK, ""),
        (1, states.LOADING, error_codes_pb2.UNAVAILABLE,
         "no replica reports version 1 of model m ready"),
        (0, states.AVAILABLE, error_codes_pb2.OK, ""),
    ]  # fmt: skip


# --- toward a TF Serving backend ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "signature", "choice", "value"),
    [(None, None, None, None), ("7", "sig", "version", 7), ("0", "", "version", 0),
     ("canary", None, "version_label", "canary"), ("07", None, "version_label", "07")],
)  # fmt: skip
def test_a_backends_model_spec(
    native: str | None, signature: str | None, choice: str | None, value: object
) -> None:
    spec = model_pb2.ModelSpec()
    tf_grpc.target_spec(spec, "linear", native, signature)
    assert spec.name == "linear"
    assert spec.WhichOneof("version_choice") == choice
    if choice == "version":
        assert spec.version.value == value
    elif choice == "version_label":
        assert spec.version_label == value
    assert spec.signature_name == (signature or "")


def test_a_predict_request_toward_a_backend() -> None:
    raw = np.asarray([[1, 2, 3, 4]], dtype="<f4").tobytes()
    request = InferenceRequest(
        inputs=[
            Tensor("x", "FP32", [1, 4], raw=memoryview(raw)),
            Tensor("s", "BYTES", [2], ["a", b"\xff"]),
            Tensor("n", "INT64", [2], [1, -2]),
        ],
        outputs=[{"name": "y"}],  # TF Serving's REST API has no filter: every output comes
        signature_name="sig",
    )
    message = tf_grpc.encode_predict_request(request, "linear", "2")
    assert (message.model_spec.name, message.model_spec.version.value) == ("linear", 2)
    assert message.model_spec.signature_name == "sig"
    assert not message.output_filter
    assert message.inputs["x"].tensor_content == raw
    assert message.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert list(message.inputs["s"].string_val) == [b"a", b"\xff"]
    assert message.inputs["n"].tensor_content == np.asarray([1, -2], "<i8").tobytes()
    request.inputs.append(Tensor("x", "FP32", [1], [1.0]))
    with pytest.raises(BadRequest, match=r"^input 'x' is given twice$"):
        tf_grpc.encode_predict_request(request, "linear", None)


def test_a_backends_predict_response_reads_as_the_rest_api_writes_it() -> None:
    message = predict_pb2.PredictResponse()
    message.outputs["y"].CopyFrom(tensor([[1.0, 9.0]]))
    message.outputs["b_out"].CopyFrom(tensor([[0.5]], content=False))
    message.outputs["label"].CopyFrom(strings([b"cat", b"\xff"]))
    message.outputs["out_bytes"].CopyFrom(strings([b"dog"], content=True))
    response = tf_grpc.decode_predict_response(message, LIMIT)
    assert [t.name for t in response.outputs] == ["b_out", "label", "out_bytes", "y"]
    b_out, label, out_bytes, y = response.outputs
    assert (y.datatype, y.shape, y.has_raw) == ("FP32", [1, 2], True)
    assert y.raw == message.outputs["y"].tensor_content  # the server's bytes, untouched
    assert b_out.data == [0.5]
    # REST writes a string output as text unless its alias ends in _bytes (then {"b64": ...})
    assert label.data == ["cat", b"\xff"]
    assert out_bytes.data == [b"dog"]
    odd = predict_pb2.PredictResponse()
    odd.outputs["y"].dtype = types_pb2.DT_COMPLEX64
    with pytest.raises(BadGateway, match=r"^output 'y': DT_COMPLEX64 has no counterpart"):
        tf_grpc.decode_predict_response(odd, LIMIT)
    huge = predict_pb2.PredictResponse()
    huge.outputs["y"].CopyFrom(tensor([0.0], shape=[1 << 20], content=False))
    with pytest.raises(BadGateway, match=r"^the model server's output 'y' is too large$"):
        tf_grpc.decode_predict_response(huge, LIMIT)


def test_a_backends_signature() -> None:
    request = tf_grpc.metadata_request("linear", "canary")
    assert list(request.metadata_field) == ["signature_def"]
    assert request.model_spec.version_label == "canary"
    signature = Signature(
        inputs=(TensorMeta("x", "FP32", (-1, 4)),),
        outputs=(TensorMeta("z", "BYTES", None), TensorMeta("y", "FP32", (-1, 2))),
    )
    info = ModelInfo("linear", "2", ("2",), signature)
    response = tf_grpc.encode_metadata(info)  # what a server answers: a SignatureDefMap in an Any
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    other = signatures.signature_def["other"]
    other.inputs["z"].dtype = types_pb2.DT_COMPLEX64  # no gateway datatype: BYTES, as over REST
    other.inputs["a"].dtype = types_pb2.DT_INT32
    other.inputs["a"].tensor_shape.dim.add(size=-1)
    response.metadata["signature_def"].Pack(signatures)
    assert tf_grpc.decode_signature(response) == Signature(
        inputs=(TensorMeta("x", "FP32", (-1, 4)),),
        outputs=(TensorMeta("y", "FP32", (-1, 2)), TensorMeta("z", "BYTES", None)),
    )
    assert tf_grpc.decode_signature(response, "other") == Signature(
        inputs=(TensorMeta("a", "INT32", (-1,)), TensorMeta("z", "BYTES", ())), outputs=()
    )  # in alias order: a proto map has none
    with pytest.raises(BadGateway, match=r"^TF Serving metadata without signature 'nope'$"):
        tf_grpc.decode_signature(response, "nope")
    with pytest.raises(BadGateway, match=r"without signature 'serving_default'$"):
        tf_grpc.decode_signature(get_model_metadata_pb2.GetModelMetadataResponse())
    wrong = get_model_metadata_pb2.GetModelMetadataResponse()
    wrong.metadata["signature_def"].Pack(model_pb2.ModelSpec(name="not a map"))
    with pytest.raises(BadGateway):
        tf_grpc.decode_signature(wrong)


def test_a_backends_status() -> None:
    request = tf_grpc.status_request("linear", 0)
    assert (request.model_spec.name, request.model_spec.HasField("version")) == ("linear", True)
    assert not tf_grpc.status_request("linear", None).model_spec.HasField("version")
    states = get_model_status_pb2.ModelVersionStatus
    status = get_model_status_pb2.GetModelStatusResponse()
    assert not tf_grpc.available(status)
    status.model_version_status.add(version=2, state=states.LOADING)
    assert not tf_grpc.available(status)
    status.model_version_status.add(version=1, state=states.AVAILABLE)
    assert tf_grpc.available(status)


def test_inputs_fitted_to_another_signature() -> None:
    signature = Signature(inputs=(TensorMeta("inputs", "FP32", (-1, 4)),), outputs=())
    untyped = InferenceRequest(inputs=[Tensor(UNNAMED, "INT64", [1, 2], [1, 2])], typed=False)
    tf_grpc.fit_inputs(untyped, signature)
    assert (untyped.inputs[0].name, untyped.inputs[0].datatype) == ("inputs", "FP32")
    assert untyped.inputs[0].data == [1.0, 2.0]
    words = InferenceRequest(inputs=[Tensor(UNNAMED, "BYTES", [1], ["a"])], typed=False)
    tf_grpc.fit_inputs(words, signature)  # no conversion: the server refuses it, in its words
    assert (words.inputs[0].name, words.inputs[0].datatype) == ("inputs", "BYTES")
    typed = InferenceRequest(inputs=[Tensor(UNNAMED, "FP64", [1], [1.0])], typed=True)
    tf_grpc.fit_inputs(typed, signature)  # a typed tensor keeps its datatype
    assert (typed.inputs[0].name, typed.inputs[0].datatype) == ("inputs", "FP64")
    two = Signature(
        inputs=(TensorMeta("a", "FP32", None), TensorMeta("b", "FP32", None)), outputs=()
    )
    several = InferenceRequest(inputs=[Tensor(UNNAMED, "INT64", [1], [1])], typed=False)
    tf_grpc.fit_inputs(several, two)  # which one? the server says
    assert several.inputs[0].name == UNNAMED
