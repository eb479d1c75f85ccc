"""A TF Serving gRPC client for the tests, built on the generated stubs of gateway/protos the way
TF Serving's users build theirs: ``PredictionServiceStub`` and ``ModelServiceStub`` over
grpc.aio, requests made as ``tf.make_tensor_proto`` makes them (``tensor_content`` for numeric
tensors, or the typed ``*_val`` fields), replies read back as ``tf.make_ndarray`` reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import ml_dtypes
import numpy as np
import numpy.typing as npt
import pytest

from gateway.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from gateway.protos.tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

Array = npt.NDArray[Any]
MAX = 2**31 - 1
OPTIONS = [("grpc.max_receive_message_length", MAX), ("grpc.max_send_message_length", MAX)]

# numpy dtype → (DataType, its typed field); half_val carries HALF and BFLOAT16 as bit patterns
DTYPES: dict[Any, tuple[Any, str]] = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int16): (types_pb2.DT_INT16, "int_val"),
    np.dtype(np.int8): (types_pb2.DT_INT8, "int_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
    np.dtype(np.uint16): (types_pb2.DT_UINT16, "int_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.uint32): (types_pb2.DT_UINT32, "uint32_val"),
    np.dtype(np.uint64): (types_pb2.DT_UINT64, "uint64_val"),
    np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
    np.dtype(np.float16): (types_pb2.DT_HALF, "half_val"),
    np.dtype(ml_dtypes.bfloat16): (types_pb2.DT_BFLOAT16, "half_val"),
}
NUMPY = {dtype: np_type for np_type, (dtype, _) in DTYPES.items()}


@dataclass
class Stubs:
    prediction: Any  # prediction_service_pb2_grpc.PredictionServiceStub (untyped, generated)
    model: Any  # model_service_pb2_grpc.ModelServiceStub
    channel: grpc.aio.Channel


@asynccontextmanager
async def stubs(target: str) -> AsyncIterator[Stubs]:
    """Both services' stubs on one channel to ``target`` ("127.0.0.1:PORT")."""
    async with grpc.aio.insecure_channel(target, options=OPTIONS) as channel:
        yield Stubs(
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
            channel,
        )


def tensor(
    values: Any, *, dtype: Any = np.float32, content: bool = True, shape: Sequence[int] = ()
) -> tensor_pb2.TensorProto:
    """A TensorProto of ``values``: packed in ``tensor_content``, or in the typed ``*_val``
    field (then ``shape`` may be larger than the values, which fill it)."""
    array = np.asarray(values, dtype=dtype)
    proto_dtype, field = DTYPES[array.dtype]
    proto = tensor_pb2.TensorProto(dtype=proto_dtype)
    for size in shape or array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.reshape(-1)
    if content:
        proto.tensor_content = flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    elif field == "half_val":
        proto.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto


def strings(values: Sequence[bytes], *, content: bool = False) -> tensor_pb2.TensorProto:
    """A DT_STRING vector: ``string_val``, or TF's varint32 lengths then bytes in
    ``tensor_content`` (every value here under 128 bytes: one-byte varints)."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    proto.tensor_shape.dim.add(size=len(values))
    if content:
        proto.tensor_content = b"".join([*(bytes([len(v)]) for v in values), *values])
    else:
        proto.string_val.extend(values)
    return proto


def predict_request(
    model: str,
    inputs: dict[str, tensor_pb2.TensorProto],
    *,
    version: int | None = None,
    label: str | None = None,
    signature: str = "",
    output_filter: Sequence[str] = (),
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def values(proto: tensor_pb2.TensorProto) -> Array:
    """The reply tensor as numpy, as ``tf.make_ndarray`` reads it (either encoding)."""
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.dtype == types_pb2.DT_STRING:
        array = np.empty(len(proto.string_val), dtype=object)
        array[:] = list(proto.string_val)
        return array.reshape(shape)
    np_type: Any = NUMPY[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np_type).reshape(shape)
    field = DTYPES[np.dtype(np_type)][1]
    if field == "half_val":
        bits = np.asarray(proto.half_val, dtype=np.uint16)
        halves: Array = bits.view(np_type)
        return halves.reshape(shape)
    typed: Array = np.asarray(getattr(proto, field), dtype=np_type)
    return typed.reshape(shape)


async def refused(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """The status code, message and trailing metadata of a call that fails."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    trailers = {k: v for k, v in (error.trailing_metadata() or ()) if isinstance(v, str)}
    return error.code(), error.details() or "", trailers
