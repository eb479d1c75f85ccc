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

import orjson

from gateway.codecs import raw
from gateway.codecs.tensors import FLOAT_TYPES, InferenceRequest, Tensor, element_count
from gateway.errors import BadRequest
from gateway.headers import Headers

_NONE: frozenset[str] = frozenset()


def digest(request: InferenceRequest) -> str:
    """SHA-256 (hex) of the request's inputs, requested outputs and parameters."""
    sha = hashlib.sha256()
    for tensor in sorted(request.inputs, key=lambda t: t.name):
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
    value = headers.get("cache-control")
    if not value:
        return _NONE
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


_CANONICAL: dict[str, str] = {
    **dict.fromkeys(FLOAT_TYPES, "<f8"),
    **dict.fromkeys(("INT8", "INT16", "INT32", "INT64"), "<i8"),
    **dict.fromkeys(("UINT8", "UINT16", "UINT32", "UINT64"), "<u8"),
    "BOOL": "u1",
}
