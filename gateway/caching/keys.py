"""The cache key: where a call's answer is stored, and the pattern a purge matches.

Key = scope (the tenant, unless the model's cache is ``shared``) + model + the *resolved*
version + SHA-256 of what decides a deterministic model's answer: every input's name, datatype,
shape and values, the outputs asked for and the parameters. It is computed from the decoded
tensors, so the same tensors hit the same entry whatever the wire format (JSON ``1`` and
``1.0`` in an FP32 tensor are one value); the request ``id`` is not part of it (it is echoed
to each caller, not computed by the model).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import orjson

from gateway.codecs import raw
from gateway.codecs.tensors import FLOAT_TYPES, InferenceRequest, Tensor, element_count
from gateway.errors import BadRequest
from gateway.headers import Headers

_NONE: frozenset[str] = frozenset()
_SMALL = 64  # up to this many JSON numbers, a float tensor's values are packed without numpy
# struct's packers of 0.._SMALL values, compiled once (not a format string per call)
_FP32 = tuple(struct.Struct(f"<{count}f") for count in range(_SMALL + 1))
_FP64 = tuple(struct.Struct(f"<{count}d") for count in range(_SMALL + 1))
_PACKERS = {"FP32": _FP32, "FP64": _FP64}
_EXACT = 2**53  # an int up to this is exactly a float64: one rounding to FP32, as numpy's


def digest(request: InferenceRequest) -> str:
    """SHA-256 (hex) of the request's inputs, requested outputs and parameters."""
    sha = hashlib.sha256()
    inputs = request.inputs
    for tensor in inputs if len(inputs) < 2 else sorted(inputs, key=lambda t: t.name):
        sha.update(_canonical([tensor.name, tensor.datatype, tensor.shape, tensor.parameters]))
        sha.update(_values(tensor))
    sha.update(_canonical([request.outputs, request.parameters, request.signature_name]))
    return sha.hexdigest()


def cache_key(
    request: InferenceRequest, tenant: str | None, shared: bool, model: str, version: str
) -> tuple[str, str]:
    """(group, key) for the store."""
    group = f"m:{model}" if shared else f"t:{tenant or '-'}"
    return group, f"{model}:{version}:{digest(request)}"


def purge_pattern(model: str | None, version: str | None, tenant: str | None) -> str:
    """The store glob (``<group>|<key>``) for a purge by model, version and/or tenant."""
    group = f"t:{tenant}" if tenant else "*"
    key = f"{model}:{version}:*" if model and version else f"{model}:*" if model else "*"
    return f"{group}|{key}"


def directives(headers: Headers) -> frozenset[str]:
    """The client's Cache-Control request directives (lower case, arguments dropped)."""
    given = headers.first(b"cache-control")
    if not given:
        return _NONE
    value = given.decode("latin-1")
    return frozenset(
        part.split("=", 1)[0].strip().lower() for part in value.split(",") if part.strip()
    )


def _canonical(value: object) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits (read by the NaN-tolerant JSON parser)
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _values(tensor: Tensor) -> bytes:
    """The values as the model receives them (rounded to the tensor's own datatype), then
    widened to one canonical type per kind: JSON numbers and raw bytes of the same tensor give
    the same bytes here, and NaN and ±Infinity stay apart."""
    datatype = tensor.datatype
    if datatype == "BYTES":  # length-prefixed elements: already the raw form's own layout
        return bytes(tensor.raw)
    small = _small_floats(tensor)
    if small is not None:
        return small
    count = element_count(tensor.shape)
    import numpy as np  # on first use (codecs/raw.py's docstring)

    if tensor.has_raw:
        values = raw.array(datatype, tensor.raw, count, tensor.name)
    else:
        try:
            values = np.asarray(tensor.data, dtype=raw.dtype(datatype))
        except (OverflowError, ValueError, TypeError) as exc:
            raise BadRequest(f"{tensor.name}: a value does not fit {datatype}: {exc}") from exc
    canonical: bytes = values.astype(_CANONICAL[datatype], copy=False).tobytes()
    return canonical


def _small_floats(tensor: Tensor) -> bytes | None:
    """:func:`_values` of a few plain finite JSON numbers in an FP32 or FP64 tensor (a flat
    list), packed by ``struct``: the same roundings as numpy's (C casts), a fraction of its
    set-up. None for anything else, numpy's then (an FP32 overflow included)."""
    packer = _PACKERS.get(tensor.datatype)
    data = tensor.data
    if packer is None or tensor.has_raw or data is None or len(data) > _SMALL:
        return None
    for value in data:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return None
        elif kind is not int or not -_EXACT <= value <= _EXACT:
            return None
    count = len(data)
    try:
        packed = packer[count].pack(*data)
    except OverflowError:  # beyond FP32: numpy's infinity
        return None
    if packer is _FP64:
        return packed
    return _FP64[count].pack(*packer[count].unpack(packed))


_CANONICAL: dict[str, str] = {
    **dict.fromkeys(FLOAT_TYPES, "<f8"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64"), "<i8"),
    **dict.fromkeys(("UINT8", "UINT16", "UINT32", "UINT64"), "<u8"),
    "BOOL": "u1",
}
