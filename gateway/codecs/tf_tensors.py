"""TF's ``tensorflow.TensorProto`` ↔ the gateway's tensors (PROTOCOLS.md §5.3), for the TF
Serving gRPC frontend and backend wire (``codecs.tf_grpc``).

- **in**, both encodings TF reads (``Tensor::FromProto``): ``tensor_content`` (packed, row-major,
  little-endian; DT_STRING as TF's varint32 lengths then the bytes), kept as raw bytes and
  never turned into Python numbers; or the typed ``*_val`` field of the dtype, with TF's fill
  rules (no values: zeros; fewer than the shape: the last one repeats, so a single value fills
  the shape; more: cut). ``half_val`` holds the bit patterns of DT_HALF and DT_BFLOAT16.
  ``float_val`` and ``double_val`` are read from their packed wire bytes, not element by element.
- **toward TF Serving** (the gRPC backend wire): numeric tensors as their raw bytes in
  ``tensor_content``, strings in ``string_val``, as ``tf.make_tensor_proto`` sends them.
- **out**, as TF Serving answers by default (``Tensor::AsProtoField``): every element in the
  typed ``*_val`` field, strings in ``string_val``. TF's own example clients read
  ``outputs[...].float_val`` directly (``tensorflow_serving/example/mnist_client.py``), which a
  ``tensor_content`` reply would leave empty; ``tf.make_ndarray`` reads either. ``float_val`` and
  ``double_val`` are written as packed bytes from the raw tensor, so no Python floats are made.

DataTypes map to the Open Inference Protocol's datatypes (DT_FLOAT FP32, DT_HALF FP16,
DT_BFLOAT16 BF16, DT_STRING BYTES...); any other DataType is refused.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from gateway.codecs import raw
from gateway.codecs.tensors import Tensor
from gateway.errors import BadGateway, BadRequest, GatewayError, PayloadTooLarge
from gateway.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

if TYPE_CHECKING:
    import numpy.typing as npt

DataType = types_pb2.DataType
_MAX_DIMS: Final = 254  # TensorShape::MaxDimensions()
_INT64: Final = range(-(2**63), 2**63)

# TF's DataType ↔ the Open Inference Protocol's datatypes (the v1 codec's table, by number)
DTYPES: Final[dict[DataType, str]] = {
    types_pb2.DT_FLOAT: "FP32",
    types_pb2.DT_DOUBLE: "FP64",
    types_pb2.DT_INT32: "INT32",
    types_pb2.DT_UINT8: "UINT8",
    types_pb2.DT_INT16: "INT16",
    types_pb2.DT_INT8: "INT8",
    types_pb2.DT_STRING: "BYTES",
    types_pb2.DT_INT64: "INT64",
    types_pb2.DT_BOOL: "BOOL",
    types_pb2.DT_BFLOAT16: "BF16",
    types_pb2.DT_UINT16: "UINT16",
    types_pb2.DT_HALF: "FP16",
    types_pb2.DT_UINT32: "UINT32",
    types_pb2.DT_UINT64: "UINT64",
}
TF_DTYPES: Final[dict[str, DataType]] = {v2: tf for tf, v2 in DTYPES.items()}

# datatype → (its typed TensorProto field, the numpy type of that field's elements)
_VALS: Final[dict[str, tuple[str, str]]] = {
    "FP32": ("float_val", "<f4"),
    "FP64": ("double_val", "<f8"),
    "INT32": ("int_val", "<i4"),
    "INT16": ("int_val", "<i4"),
    "INT8": ("int_val", "<i4"),
    "UINT8": ("int_val", "<i4"),
    "UINT16": ("int_val", "<i4"),
    "INT64": ("int64_val", "<i8"),
    "BOOL": ("bool_val", "?"),
    "UINT32": ("uint32_val", "<u4"),
    "UINT64": ("uint64_val", "<u8"),
    "FP16": ("half_val", "<i4"),  # bit patterns
    "BF16": ("half_val", "<i4"),
}
_BITS: Final = frozenset({"FP16", "BF16"})  # held raw as their 16-bit patterns
# the fixed-width typed fields, read and written as packed little-endian bytes
_FIXED: Final = {"float_val": tensor_pb2.TensorProto.FLOAT_VAL_FIELD_NUMBER,
                 "double_val": tensor_pb2.TensorProto.DOUBLE_VAL_FIELD_NUMBER}  # fmt: skip


def decode_tensor(
    alias: str,
    proto: tensor_pb2.TensorProto,
    limit: int,
    error: type[GatewayError] = BadRequest,
    role: str = "input",
) -> Tensor:
    """A TensorProto → a Tensor named ``alias``. ``limit`` bounds the bytes the values may
    take once the typed fields fill the shape (413 beyond it); what TF cannot parse raises
    ``error`` (a server's reply: BadGateway, its tensors' ``role`` "output")."""
    datatype = DTYPES.get(proto.dtype)
    if datatype is None:
        name = _dtype_name(proto.dtype)
        raise error(f"{role} {alias!r}: {name} has no counterpart among the gateway's types")
    shape = _shape(proto.tensor_shape)
    if shape is None:
        raise error(f"tensor parsing error: {alias}")  # TF's text for an invalid shape
    count = math.prod(shape)
    if count == 0:  # FromProto reads no values at all for an empty shape
        return (
            Tensor(alias, datatype, shape, [])
            if datatype == "BYTES"
            else _empty(alias, datatype, shape)
        )
    if datatype == "BYTES":
        return Tensor(alias, datatype, shape, _strings(alias, proto, count, limit, error))
    size = raw.element_size(datatype) or 1
    if count * size > limit:
        raise _too_large(alias, count * size, limit)
    content = proto.tensor_content
    if content:
        if len(content) != count * size:
            raise error(f"tensor parsing error: {alias}")
        return Tensor(alias, datatype, shape, raw=content)
    return Tensor(alias, datatype, shape, raw=_from_vals(proto, datatype, count))


def _empty(alias: str, datatype: str, shape: list[int]) -> Tensor:
    return Tensor(alias, datatype, shape, raw=b"")


def _too_large(alias: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"input {alias!r} takes {size} bytes once filled, more than the {limit} left of the "
        "request's limit"
    )


def _dtype_name(dtype: int) -> str:
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DataType {dtype}"


def _shape(proto: tensor_shape_pb2.TensorShapeProto) -> list[int] | None:
    """TensorShape::IsValid: at most 254 dims, none negative (``unknown_rank`` is ignored)."""
    shape = [dim.size for dim in proto.dim]
    if len(shape) > _MAX_DIMS or any(d < 0 for d in shape) or math.prod(shape) not in _INT64:
        return None
    return shape


def _strings(
    alias: str, proto: tensor_pb2.TensorProto, count: int, limit: int, error: type[GatewayError]
) -> list[bytes]:
    if proto.tensor_content:
        strings = _split_strings(proto.tensor_content, count)
        if strings is None:
            raise error(f"tensor parsing error: {alias}")
        return strings
    values = list(proto.string_val)
    if len(values) < count:
        filler = values[-1] if values else b""
        size = sum(map(len, values)) + (count - len(values)) * len(filler) + 4 * count
        if size > limit:
            raise _too_large(alias, size, limit)
        values.extend([filler] * (count - len(values)))
    return values[:count]


def _split_strings(content: bytes, count: int) -> list[bytes] | None:
    """port::DecodeStringList: ``count`` varint32 lengths, then exactly that many bytes."""
    lengths: list[int] = []
    pos = 0
    for _ in range(count):
        read = _varint(content, pos, 5)
        if read is None or read[0] >= 2**32:
            return None
        length, pos = read
        lengths.append(length)
    if len(content) - pos != sum(lengths):
        return None
    out: list[bytes] = []
    for length in lengths:
        out.append(content[pos : pos + length])
        pos += length
    return out


def _varint(data: bytes, pos: int, most: int = 10) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 7 * most, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


def _from_vals(proto: tensor_pb2.TensorProto, datatype: str, count: int) -> bytes:
    """FromProtoField: the typed values filling ``count`` elements, packed as the raw form."""
    import numpy as np  # on first use (codecs/raw.py's docstring)

    field, source = _VALS[datatype]
    target = np.dtype("<u2") if datatype in _BITS else raw.dtype(datatype)
    values: npt.NDArray[Any]
    if field in _FIXED:
        values = np.frombuffer(_field_bytes(proto.SerializeToString(), _FIXED[field]), source)
    else:
        values = np.asarray(list(getattr(proto, field)), dtype=source)
    if not values.size:
        return bytes(count * target.itemsize)
    if values.size >= count:
        values = values[:count]
    else:
        values = np.concatenate([values, np.full(count - values.size, values[-1], source)])
    with np.errstate(all="ignore"):  # TF casts int_val to narrower types as C does: it wraps
        packed: bytes = values.astype(target).tobytes()
    return packed


def _field_bytes(wire: bytes, number: int) -> bytes:
    """The payload of a fixed-width repeated field in a message's wire bytes (packed or not),
    found by walking its top-level fields only."""
    parts: list[bytes] = []
    pos = 0
    while pos < len(wire):
        read = _varint(wire, pos)
        if read is None:
            break
        key, pos = read
        kind, start = key & 7, pos
        if kind == 0:
            pos = (_varint(wire, pos) or (0, len(wire)))[1]
        elif kind in (1, 5):
            pos += 8 if kind == 1 else 4
        elif kind == 2:
            length, start = _varint(wire, pos) or (0, len(wire))
            pos = start + length
        else:
            break  # groups: not in a TensorProto
        if key >> 3 == number:
            parts.append(wire[start:pos])
    return b"".join(parts)


def fill_tensor(
    proto: tensor_pb2.TensorProto,
    tensor: Tensor,
    *,
    content: bool = False,
    error: type[GatewayError] = BadGateway,
) -> None:
    """A Tensor → ``proto``: every element in the dtype's typed field (a reply, as TF Serving
    answers), or with ``content`` a numeric tensor's raw bytes in ``tensor_content`` as they
    are (a request toward TF Serving, as ``tf.make_tensor_proto`` sends it: no element becomes
    a Python number when the tensor is held raw). Strings always go in ``string_val``. A tensor
    TF cannot hold raises ``error``."""
    what = f"{'input' if content else 'output'} {tensor.name!r}"
    dtype = TF_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise error(f"{what}: {tensor.datatype} has no TF DataType")
    proto.dtype = dtype
    for size in tensor.shape:
        proto.tensor_shape.dim.add(size=size)
    if tensor.datatype == "BYTES":
        proto.string_val.extend(x if isinstance(x, bytes) else str(x).encode() for x in tensor.data)
        return
    count = math.prod(tensor.shape)
    try:
        values = raw.array(tensor.datatype, tensor.raw, count, what)
    except BadRequest as exc:
        raise error(exc.message) from exc
    if content:
        proto.tensor_content = values.tobytes()  # the one copy protobuf needs (from a view)
        return
    field = _VALS[tensor.datatype][0]
    if field in _FIXED:
        if count:  # packed, as protobuf writes it: the tag, the length, the little-endian bytes
            payload = values.tobytes()
            head = _varint_bytes(_FIXED[field] << 3 | 2) + _varint_bytes(len(payload))
            proto.MergeFromString(head + payload)
    elif tensor.datatype in _BITS:
        proto.half_val.extend(values.view("<u2").tolist())
    else:
        getattr(proto, field).extend(values.tolist())


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
