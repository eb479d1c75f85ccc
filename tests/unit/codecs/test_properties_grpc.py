"""Properties of the gRPC decoders: KServe v2 ``ModelInferRequest`` (``codecs.v2_grpc``), TF
Serving's ``PredictRequest`` and ``TensorProto`` (``codecs.tf_grpc``, ``codecs.tf_tensors``) and
the ``tf.Example`` inputs of Classify and Regress (``codecs.tf_examples``).

Arbitrary bytes parsed as each request message either parse or raise protobuf's
``DecodeError`` (which ``edge.grpc_decode`` answers INVALID_ARGUMENT); arbitrary messages,
built field by field with any datatype, shape, contents and raw contents, are decoded or
refused with a 4xx, and what is decoded can be sent to every backend wire."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.codecs import tf_examples, tf_grpc, tf_tensors, v2_grpc
from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.v2_proto import messages
from gateway.protos.tensorflow.core.example import example_pb2
from gateway.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    predict_pb2,
    regression_pb2,
)
from tests.unit.codecs.properties import examples, refused_or, sendable

LIMIT = 1 << 16
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
NAMES = st.sampled_from(["INPUT0", "x"]) | st.text(max_size=6)
SHAPE = st.lists(st.integers(0, 4) | st.sampled_from([-1, -(2**62), 2**40, 2**62]), max_size=4)
RAW = st.binary(max_size=40)


def _parse(message_class: Any, data: bytes) -> Any:
    try:
        return message_class.FromString(data)
    except DecodeError:
        return None


REQUEST_BYTES = st.binary(max_size=120) | st.sampled_from(
    [b"\x0a\xff\xff\xff\xff\x0f", (b"\xfb\x06" * 200) + (b"\xfc\x06" * 200)]
)


# -- KServe v2 -----------------------------------------------------------------------------------


@examples(150)
@given(REQUEST_BYTES)
def test_arbitrary_bytes_as_model_infer_request(data: bytes) -> None:
    pb = messages()
    for cls in (pb.ModelInferRequest, pb.ModelMetadataRequest, pb.ModelReadyRequest):
        _parse(cls, data)
    request = refused_or(v2_grpc.decode_request, data)
    if request is not None:
        sendable(request)


CONTENTS: dict[str, st.SearchStrategy[Any]] = {
    "bool_contents": st.booleans(),
    "int_contents": INT32,
    "int64_contents": INT64,
    "uint_contents": UINT32,
    "uint64_contents": UINT64,
    "fp32_contents": FLOATS,
    "fp64_contents": DOUBLES,
    "bytes_contents": st.binary(max_size=6),
}
PARAMETER = st.one_of(
    st.builds(lambda v: ("bool_param", v), st.booleans()),
    st.builds(lambda v: ("int64_param", v), INT64),
    st.builds(lambda v: ("uint64_param", v), UINT64),
    st.builds(lambda v: ("double_param", v), DOUBLES),
    st.builds(lambda v: ("string_param", v), st.text(max_size=6)),
)


def _fill_parameters(entries: Any, values: dict[str, tuple[str, Any]]) -> None:
    for name, (choice, value) in values.items():
        setattr(entries[name], choice, value)


@st.composite
def model_infer_requests(draw: st.DrawFn) -> Any:
    pb = messages()
    message = pb.ModelInferRequest(model_name="m", id=draw(st.text(max_size=4)))
    _fill_parameters(message.parameters, draw(st.dictionaries(NAMES, PARAMETER, max_size=2)))
    count = draw(st.integers(1, 3) | st.just(0))
    raw = draw(st.sampled_from(["none", "each", "some"]))
    for _ in range(count):
        datatype = draw(st.sampled_from(sorted(DATATYPES)) | st.sampled_from(["", "FP8"]))
        entry = message.inputs.add(name=draw(NAMES), datatype=datatype)
        entry.shape.extend(draw(SHAPE))
        _fill_parameters(entry.parameters, draw(st.dictionaries(NAMES, PARAMETER, max_size=2)))
        if draw(st.booleans()):
            field = draw(st.sampled_from(sorted(CONTENTS)))
            if draw(st.integers(0, 3)):  # mostly the datatype's own field
                field = v2_grpc.CONTENTS.get(datatype, field)
            values = draw(st.lists(CONTENTS[field], max_size=6))
            getattr(entry.contents, field).extend(values)
        if raw == "each" or (raw == "some" and draw(st.booleans())):
            message.raw_input_contents.append(draw(RAW))
    for _ in range(draw(st.integers(0, 2))):
        wanted = message.outputs.add(name=draw(NAMES))
        _fill_parameters(wanted.parameters, draw(st.dictionaries(NAMES, PARAMETER, max_size=1)))
    return message


@examples(300)
@given(model_infer_requests())
def test_arbitrary_model_infer_requests(message: Any) -> None:
    request = refused_or(v2_grpc.decode_request, message)
    if request is not None:
        sendable(request)
    # the same message through its bytes, as the frontend's deserializer reads it
    again = refused_or(v2_grpc.decode_request, message.SerializeToString())
    assert (request is None) == (again is None)


# -- TF Serving Predict -----------------------------------------------------------------------

VALS: dict[str, st.SearchStrategy[Any]] = {
    "float_val": FLOATS,
    "double_val": DOUBLES,
    "int_val": INT32,
    "int64_val": INT64,
    "bool_val": st.booleans(),
    "uint32_val": UINT32,
    "uint64_val": UINT64,
    "half_val": st.integers(0, 2**31 - 1),
    "string_val": st.binary(max_size=6),
}
DTYPES = st.sampled_from(sorted(tf_tensors.DTYPES)) | st.integers(0, 30) | st.just(101)


@st.composite
def tensor_protos(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=draw(DTYPES))  # type: ignore[arg-type]
    for size in draw(SHAPE):
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_shape.unknown_rank = draw(st.booleans())
    if draw(st.booleans()):
        proto.tensor_content = draw(RAW)
    for field in draw(st.lists(st.sampled_from(sorted(VALS)), max_size=2)):
        getattr(proto, field).extend(draw(st.lists(VALS[field], max_size=6)))
    return proto


@st.composite
def predict_requests(draw: st.DrawFn) -> predict_pb2.PredictRequest:
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "m"
    message.model_spec.signature_name = draw(st.sampled_from(["", "serving_default", "x"]))
    for alias in draw(st.lists(NAMES, max_size=3, unique=True)):
        message.inputs[alias].CopyFrom(draw(tensor_protos()))
    message.output_filter.extend(draw(st.lists(NAMES, max_size=2)))
    return message


@examples(150)
@given(REQUEST_BYTES)
def test_arbitrary_bytes_as_tf_serving_requests(data: bytes) -> None:
    for cls in (
        classification_pb2.ClassificationRequest,
        regression_pb2.RegressionRequest,
        get_model_metadata_pb2.GetModelMetadataRequest,
        get_model_status_pb2.GetModelStatusRequest,
    ):
        _parse(cls, data)
    message = _parse(predict_pb2.PredictRequest, data)
    if message is not None:
        request = refused_or(tf_grpc.decode_predict, message, LIMIT)
        if request is not None:
            sendable(request)


@examples(300)
@given(predict_requests())
@example(predict_pb2.PredictRequest())
@example(  # found: no values, 2**62 empty rows: the v1 JSON form looped over them (a hang)
    predict_pb2.PredictRequest(
        inputs={
            "x": tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT,
                tensor_shape={"dim": [{"size": 2**62}, {"size": 0}]},
            )
        }
    )
)
def test_arbitrary_predict_requests(message: predict_pb2.PredictRequest) -> None:
    request = refused_or(tf_grpc.decode_predict, message, LIMIT)
    if request is not None:
        sendable(request)


@examples(200)
@given(tensor_protos(), st.integers(0, 64))
@example(tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"ab"]), 0)
def test_arbitrary_tensor_protos(proto: tensor_pb2.TensorProto, limit: int) -> None:
    """Within any limit: the tensor, a 413 or a 400; and the values fill the shape."""
    tensor = refused_or(tf_tensors.decode_tensor, "x", proto, limit)
    if tensor is not None:
        count = math.prod(tensor.shape)
        assert len(tensor.data) == count


# -- tf.Example inputs (Classify, Regress) ---------------------------------------------------------


@st.composite
def tf_examples_of(draw: st.DrawFn) -> example_pb2.Example:
    example_ = example_pb2.Example()
    for name in draw(st.lists(st.text(max_size=5), max_size=3, unique=True)):
        feature = example_.features.feature[name]
        kind = draw(st.sampled_from(["float", "int64", "bytes", "none"]))
        if kind == "float":
            feature.float_list.value.extend(draw(st.lists(FLOATS, max_size=4)))
        elif kind == "int64":
            feature.int64_list.value.extend(draw(st.lists(INT64, max_size=4)))
        elif kind == "bytes":
            feature.bytes_list.value.extend(draw(st.lists(st.binary(max_size=5), max_size=4)))
    return example_


@st.composite
def inputs(draw: st.DrawFn) -> input_pb2.Input:
    message = input_pb2.Input()
    kind = draw(st.sampled_from(["list", "context", "none"]))
    if kind == "list":
        message.example_list.examples.extend(draw(st.lists(tf_examples_of(), max_size=3)))
    elif kind == "context":
        listed = message.example_list_with_context
        listed.context.CopyFrom(draw(tf_examples_of()))
        listed.examples.extend(draw(st.lists(tf_examples_of(), max_size=3)))
    return message


@examples(200)
@given(inputs(), st.sampled_from(["", "serving_default"]))
def test_examples_travel_as_json_and_back(source: input_pb2.Input, signature: str) -> None:
    """The gRPC frontend's examples → the REST JSON → (toward a gRPC backend) an Input again,
    with the same features."""
    body = refused_or(tf_examples.examples_body, source, signature)
    if body is None:
        return
    into = input_pb2.Input()
    assert refused_or(tf_examples.read_examples, body, into) == signature
    kind = source.WhichOneof("kind")
    got = into.example_list_with_context if into.HasField("example_list_with_context") else None
    sent = source.example_list_with_context if kind == "example_list_with_context" else None
    assert (got is None) == (sent is None)
