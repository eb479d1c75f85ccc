"""The TensorProto codec: TF's two encodings in, every dtype, TF's fill rules and parse errors,
the typed fields out, and bytes that never become Python numbers. No sockets."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from gateway.codecs import tensors, tf_grpc, tf_tensors
from gateway.codecs.tensors import Tensor
from gateway.errors import BadGateway, BadRequest, PayloadTooLarge
from gateway.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from tests.tfs_client import predict_request, strings, tensor, values

LIMIT = 1 << 20


def proto(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    message = tensor_pb2.TensorProto(dtype=dtype, **fields)  # type: ignore[arg-type]
    for size in shape:
        message.tensor_shape.dim.add(size=size)
    return message


# --- reading tensors ---------------------------------------------------------------------------

TYPES = [
    (np.float32, "FP32", [1.5, -0.25, np.inf]),
    (np.float64, "FP64", [1e-300, 2.0, -3.5]),
    (np.int32, "INT32", [-(2**31), 0, 2**31 - 1]),
    (np.int16, "INT16", [-300, 0, 300]),
    (np.int8, "INT8", [-128, 0, 127]),
    (np.uint8, "UINT8", [0, 1, 255]),
    (np.uint16, "UINT16", [0, 1, 65535]),
    (np.int64, "INT64", [-(2**63), 0, 2**63 - 1]),
    (np.uint32, "UINT32", [0, 1, 2**32 - 1]),
    (np.uint64, "UINT64", [0, 1, 2**64 - 1]),
    (np.bool_, "BOOL", [True, False, True]),
    (np.float16, "FP16", [0.5, -65504.0, 1.0]),
    (ml_dtypes.bfloat16, "BF16", [1.0, -3.0e38, 0.5]),
]


@pytest.mark.parametrize("content", [True, False], ids=["tensor_content", "typed_val"])
@pytest.mark.parametrize(("np_type", "datatype", "data"), TYPES, ids=[t[1] for t in TYPES])
def test_every_dtype_both_encodings(np_type: Any, datatype: str, data: Any, content: bool) -> None:
    sent = tensor(data, dtype=np_type, content=content)
    got = tf_tensors.decode_tensor("t", sent, LIMIT)
    assert (got.name, got.datatype, got.shape) == ("t", datatype, [3])
    assert got.has_raw
    expected = np.asarray(data, dtype=np_type)
    assert bytes(got.raw) == expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    back = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(back, got)
    assert back.dtype == sent.dtype
    assert not back.tensor_content  # the reply is in the typed field, as TF Serving's is
    np.testing.assert_array_equal(values(back), expected)


def test_tensor_content_stays_bytes_and_never_becomes_python_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> list[Any]:
        raise AssertionError("a tensor became Python values")

    monkeypatch.setattr(tensors, "to_list", refuse)  # Tensor.data would call it
    array = np.arange(4_000_000, dtype=np.float32).reshape(1000, 4000)
    sent = tensor(array)
    got = tf_tensors.decode_tensor("big", sent, 1 << 26)
    assert got.shape == [1000, 4000]
    assert got.raw == sent.tensor_content  # the same bytes, untouched
    back = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(back, got)  # float_val written from the bytes (packed), no floats
    assert len(back.float_val) == 4_000_000
    assert back.float_val[3_999_999] == 3_999_999.0
    request = predict_request("m", {"big": sent})
    decoded = tf_grpc.decode_predict(request, 1 << 26)
    assert decoded.inputs[0].raw == sent.tensor_content


def test_large_float_val_is_read_from_its_packed_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    array = np.linspace(-1, 1, 1_000_000, dtype=np.float32)
    sent = tensor(array, content=False)
    got = tf_tensors.decode_tensor("x", sent, 1 << 26)
    assert bytes(got.raw) == array.tobytes()


@pytest.mark.parametrize(
    ("field", "given", "shape", "expected"),
    [
        ("float_val", [2.5], [2, 3], [2.5] * 6),  # a single value fills the shape
        ("float_val", [1.0, 2.0], [4], [1.0, 2.0, 2.0, 2.0]),  # the last one repeats
        ("float_val", [1.0, 2.0, 3.0], [2], [1.0, 2.0]),  # more are cut
        ("float_val", [], [3], [0.0, 0.0, 0.0]),  # none: zeros
        ("float_val", [7.0], [], [7.0]),  # a scalar
    ],
)
def test_tfs_fill_rules(field: str, given: list[Any], shape: list[int], expected: Any) -> None:
    sent = proto(types_pb2.DT_FLOAT, shape, **{field: given})
    assert tf_tensors.decode_tensor("x", sent, LIMIT).data == expected


def test_fill_rules_for_other_fields() -> None:
    ints = proto(types_pb2.DT_INT8, [4], int_val=[300, -1])  # TF casts as C does: it wraps
    assert tf_tensors.decode_tensor("i", ints, LIMIT).data == [44, -1, -1, -1]
    half_bits = int(np.float16(1.5).view(np.uint16))
    half = proto(types_pb2.DT_HALF, [2, 2], half_val=[half_bits])
    assert tf_tensors.decode_tensor("h", half, LIMIT).data == [1.5] * 4
    bf16_bits = int(np.asarray(2.0, dtype=ml_dtypes.bfloat16).view(np.uint16))
    bf16 = proto(types_pb2.DT_BFLOAT16, [3], half_val=[bf16_bits])
    assert tf_tensors.decode_tensor("b", bf16, LIMIT).data == [2.0] * 3
    flags = proto(types_pb2.DT_BOOL, [3], bool_val=[True])
    assert tf_tensors.decode_tensor("f", flags, LIMIT).data == [True] * 3
    words = proto(types_pb2.DT_STRING, [3], string_val=[b"a", b"b"])
    assert tf_tensors.decode_tensor("s", words, LIMIT).data == [b"a", b"b", b"b"]
    empty = proto(types_pb2.DT_STRING, [2])
    assert tf_tensors.decode_tensor("s", empty, LIMIT).data == [b"", b""]


def test_strings_in_tensor_content() -> None:
    long = b"x" * 300  # a two-byte varint length
    content = b"\x02" + b"\xac\x02" + b"\x00" + b"ab" + long
    got = tf_tensors.decode_tensor("s", proto(types_pb2.DT_STRING, [3], tensor_content=content), 1)
    assert got.data == [b"ab", long, b""]
    short = strings([b"caf\xc3\xa9", b"z"], content=True)
    assert tf_tensors.decode_tensor("s", short, LIMIT).data == [b"caf\xc3\xa9", b"z"]
    back = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(back, got)
    assert list(back.string_val) == [b"ab", long, b""]


def test_an_empty_shape_reads_nothing() -> None:
    ignored = proto(types_pb2.DT_FLOAT, [0, 4], tensor_content=b"junk")
    got = tf_tensors.decode_tensor("e", ignored, LIMIT)
    assert (got.shape, got.data) == ([0, 4], [])


@pytest.mark.parametrize(
    ("sent", "error", "text"),
    [
        (proto(types_pb2.DT_FLOAT, [3], tensor_content=b"\0" * 11), BadRequest,
         "tensor parsing error: x"),
        (proto(types_pb2.DT_FLOAT, [-1, 2]), BadRequest, "tensor parsing error: x"),
        (proto(types_pb2.DT_FLOAT, [1] * 255), BadRequest, "tensor parsing error: x"),
        (proto(types_pb2.DT_STRING, [2], tensor_content=b"\x01\x01ab!"), BadRequest,
         "tensor parsing error: x"),
        (proto(types_pb2.DT_STRING, [2], tensor_content=b"\x81"), BadRequest,
         "tensor parsing error: x"),
        (proto(types_pb2.DT_COMPLEX64, [1]), BadRequest,
         "input 'x': DT_COMPLEX64 has no counterpart among the gateway's types"),
        (proto(types_pb2.DT_INVALID, [1]), BadRequest,
         "input 'x': DT_INVALID has no counterpart among the gateway's types"),
        (proto(types_pb2.DT_FLOAT, [1 << 20, 1 << 10], float_val=[1.0]), PayloadTooLarge,
         "input 'x' takes 4294967296 bytes once filled, more than the 1048576 left of the "
         "request's limit"),
        (proto(types_pb2.DT_STRING, [1 << 20], string_val=[b"abc"]), PayloadTooLarge,
         "input 'x' takes 7340032 bytes once filled, more than the 1048576 left of the "
         "request's limit"),
    ],
)  # fmt: skip
def test_what_tf_cannot_parse(
    sent: tensor_pb2.TensorProto, error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as caught:
        tf_tensors.decode_tensor("x", sent, LIMIT)
    assert str(caught.value) == text


def test_a_servers_tensor_tf_cannot_parse_is_the_servers_fault() -> None:
    cut = proto(types_pb2.DT_FLOAT, [3], tensor_content=b"\0" * 11)
    with pytest.raises(BadGateway, match=r"^tensor parsing error: y$"):
        tf_tensors.decode_tensor("y", cut, LIMIT, BadGateway)


def test_a_reply_tensor_that_does_not_fit_its_shape_is_the_servers_fault() -> None:
    with pytest.raises(BadGateway):
        tf_tensors.fill_tensor(tensor_pb2.TensorProto(), Tensor("y", "FP32", [3], raw=b"\0" * 8))


# --- toward a TF Serving backend: tensor_content ----------------------------------------------


@pytest.mark.parametrize(("np_type", "datatype", "data"), TYPES, ids=[t[1] for t in TYPES])
def test_a_request_tensor_goes_as_its_raw_bytes(np_type: Any, datatype: str, data: Any) -> None:
    expected = np.asarray(data, dtype=np_type)
    raw = expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    out = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(out, Tensor("x", datatype, [3], raw=memoryview(raw)), content=True)
    assert out.tensor_content == raw
    assert [d.size for d in out.tensor_shape.dim] == [3]
    assert tf_tensors.decode_tensor("x", out, LIMIT).raw == raw  # TF reads it back the same
    np.testing.assert_array_equal(values(out), expected)


def test_a_request_tensor_of_json_values_is_packed_by_numpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(out, Tensor("x", "FP32", [2, 2], [1.0, 2, 0.5, -1]), content=True)
    assert out.dtype == types_pb2.DT_FLOAT
    assert out.tensor_content == np.asarray([1, 2, 0.5, -1], dtype="<f4").tobytes()
    assert not out.float_val

    def refuse(*args: Any) -> list[Any]:
        raise AssertionError("a raw tensor became Python values")

    monkeypatch.setattr(tensors, "to_list", refuse)
    big = np.arange(1_000_000, dtype=np.float32)
    out = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(out, Tensor("x", "FP32", [1_000_000], raw=big.tobytes()), content=True)
    assert out.tensor_content == big.tobytes()


def test_request_strings_go_in_string_val() -> None:
    out = tensor_pb2.TensorProto()
    tf_tensors.fill_tensor(out, Tensor("s", "BYTES", [2], [b"\x00a", "wörld"]), content=True)
    assert (out.dtype, list(out.string_val)) == (types_pb2.DT_STRING, [b"\x00a", "wörld".encode()])
    assert not out.tensor_content


def test_a_request_tensor_that_does_not_fit_its_shape_is_the_callers_fault() -> None:
    short = Tensor("x", "FP32", [3], raw=b"\0" * 8)
    with pytest.raises(BadRequest, match=r"^input 'x': 3 FP32 values take 12 bytes, got 8$"):
        tf_tensors.fill_tensor(tensor_pb2.TensorProto(), short, content=True, error=BadRequest)
