"""Tensor values as raw bytes: flat, row-major, little-endian, as Triton's binary tensor data
extension and KServe v2 gRPC's ``raw_*_contents`` carry them.

- numeric types and BOOL: the elements packed (BOOL one byte each, FP16 IEEE half, BF16 the
  upper half of an FP32);
- BYTES: each element a 4-byte little-endian length, then its bytes.

Conversions go through numpy (``frombuffer``, ``tobytes``), never element by element in
Python, so a large tensor's bytes are not turned into Python floats unless a JSON peer needs
them.

numpy and ml_dtypes are imported when a conversion first needs them, not with this module:
together about 16 MiB of RSS per worker, which a gateway that only passes JSON to KServe v2
servers never needs (bench/README.md, the routes curve). The callers that know a conversion is
coming load them off the event loop first (:func:`load`, from a thread: the reloader for a
table that converts tensors whatever the callers send, ``config.reload.converts_tensors``; the
gRPC frontends when they start; ``Call.inference`` before it decodes a body with binary tensor
data, sent or asked for); any other first conversion imports them where it runs, once.
"""

from __future__ import annotations

import functools
import struct
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from gateway.errors import BadRequest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# datatype → numpy's type code (little-endian); BF16 is ml_dtypes' bfloat16
_CODES: Final[dict[str, str]] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "bfloat16",
}
_SIZES: Final[dict[str, int]] = {
    name: 2 if code == "bfloat16" else int(code[2:]) if code[0] == "<" else 1
    for name, code in _CODES.items()
}


def loaded() -> bool:
    """Whether numpy and ml_dtypes are imported already."""
    return "ml_dtypes" in sys.modules and "numpy" in sys.modules


def load() -> None:
    """Import numpy and ml_dtypes: tens of milliseconds the first time, so call it off the
    loop (``asyncio.to_thread``) where a conversion is known to come."""
    dtype("BF16")


@functools.cache
def dtype(datatype: str) -> np.dtype[Any]:
    """numpy's type for a numeric or BOOL datatype (KeyError for BYTES or an unknown one)."""
    code = _CODES[datatype]
    import numpy as np  # on first use (the module's docstring)

    if code != "bfloat16":
        return np.dtype(code)
    import ml_dtypes

    bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
    return bfloat16


_LENGTH = struct.Struct("<I")


def element_size(datatype: str) -> int | None:
    """Bytes per element, or None for BYTES (each element carries its own length)."""
    return _SIZES.get(datatype)


def array(datatype: str, raw: bytes | memoryview, count: int, what: str) -> npt.NDArray[Any]:
    """The ``count`` elements of a numeric or BOOL tensor, viewed in place (no copy)."""
    size = _SIZES[datatype]
    if len(raw) != count * size:
        raise BadRequest(
            f"{what}: {count} {datatype} values take {count * size} bytes, got {len(raw)}"
        )
    import numpy as np  # on first use (the module's docstring)

    return np.frombuffer(raw, dtype=dtype(datatype), count=count)


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
    import numpy as np  # on first use (the module's docstring)

    try:
        # over="raise": a float past the type's range (1e39 for FP32) is refused, as TF
        # Serving refuses it, not rounded to infinity (NaN and Infinity given as such pass)
        with np.errstate(over="raise", invalid="raise"):
            return np.asarray(data, dtype=dtype(datatype)).tobytes()
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
