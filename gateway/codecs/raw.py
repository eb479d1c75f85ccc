"""Tensor values as raw bytes: flat, row-major, little-endian, as Triton's binary tensor data
extension and KServe v2 gRPC's ``raw_*_contents`` carry them.

- numeric types and BOOL: the elements packed (BOOL one byte each, FP16 IEEE half, BF16 the
  upper half of an FP32);
- BYTES: each element a 4-byte little-endian length, then its bytes.

Conversions go through numpy (``frombuffer``, ``tobytes``), never element by element in
Python, so a large tensor's bytes are not turned into Python floats unless a JSON peer needs
them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

import ml_dtypes
import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest

DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
}
_LENGTH = struct.Struct("<I")


def element_size(datatype: str) -> int | None:
    """Bytes per element, or None for BYTES (each element carries its own length)."""
    dtype = DTYPES.get(datatype)
    return dtype.itemsize if dtype is not None else None


def array(datatype: str, raw: bytes | memoryview, count: int, what: str) -> npt.NDArray[Any]:
    """The ``count`` elements of a numeric or BOOL tensor, viewed in place (no copy)."""
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"{what}: {count} {datatype} values take {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count)


def to_list(datatype: str, raw: bytes | memoryview, count: int, what: str) -> list[Any]:
    """The elements as Python values (``bytes`` for BYTES)."""
    if datatype == "BYTES":
        return split_bytes(raw, count, what)
    values: list[Any] = array(datatype, raw, count, what).tolist()
    return values


def from_list(datatype: str, data: Sequence[Any], what: str) -> bytes:
    """The elements packed. A value that does not fit the datatype is a 400."""
    if datatype == "BYTES":
        return join_bytes(data)
    try:
        # over="raise": a float past the type's range (1e39 for FP32) is refused, as TF
        # Serving refuses it, not rounded to infinity (NaN and Infinity given as such pass)
        with np.errstate(over="raise", invalid="raise"):
            return np.asarray(data, dtype=DTYPES[datatype]).tobytes()
    except (OverflowError, ValueError, TypeError, FloatingPointError) as exc:
        raise BadRequest(f"{what}: a value does not fit {datatype}: {exc}") from exc


def split_bytes(raw: bytes | memoryview, count: int, what: str) -> list[bytes]:
    """BYTES elements: each a little-endian uint32 length, then that many bytes."""
    view = memoryview(raw)
    out: list[bytes] = []
    offset, end = 0, len(view)
    while offset < end:
        if offset + 4 > end:
            raise BadRequest(f"{what}: a BYTES element's length is cut off")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(f"{what}: a BYTES element runs past the data")
        out.append(bytes(view[offset : offset + length]))
        offset += length
    if len(out) != count:
        raise BadRequest(f"{what}: the shape needs {count} BYTES elements, got {len(out)}")
    return out


def join_bytes(data: Sequence[Any]) -> bytes:
    parts = [x if isinstance(x, bytes) else str(x).encode() for x in data]
    return b"".join(_LENGTH.pack(len(p)) + p for p in parts)
