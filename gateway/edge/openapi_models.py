"""JSON Schemas of one model's v1 and v2 requests and replies, from its signature.

A model whose inputs are known (declared in routes.yaml or read from its server's metadata)
gets schemas naming each input with its datatype and the rank of its shape (a fixed dimension
is pinned, ``-1`` is any size); a model whose signature is unknown gets the generic tensor
schemas, which any well-formed request matches. The schemas describe the wire formats of
``gateway.codecs.v1`` and ``gateway.codecs.v2``; they accept what the gateway accepts, so a
request they describe reaches the model (or is refused by it, a 4xx).
"""

from __future__ import annotations

from typing import Any

from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.tensors import Signature, TensorMeta

Schema = dict[str, Any]

_INTEGER_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
SCALAR: Schema = {"type": ["number", "string", "boolean"]}
_B64: Schema = {"type": "object", "required": ["b64"], "properties": {"b64": {"type": "string"}}}
PARAMETERS: Schema = {"type": "object", "description": "Free-form parameters, passed on."}
NESTED: Schema = {"type": "array", "description": "Values, flat or nested row-major."}


def element(datatype: str) -> Schema:
    """One value of ``datatype`` as JSON carries it."""
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype == "BYTES":
        return {"type": "string"}
    bounds = _INTEGER_RANGES.get(datatype)
    if bounds is not None:
        return {"type": "integer", "minimum": bounds[0], "maximum": bounds[1]}
    return {"type": "number"}


def nested(item: Schema, dims: tuple[int, ...]) -> Schema:
    """``item`` in lists nested as ``dims`` says (a fixed size is pinned; ``-1`` is any)."""
    for size in reversed(dims):
        level: Schema = {"type": "array", "items": item}
        if size >= 0:
            level["minItems"] = level["maxItems"] = size
        item = level
    return item


def _shape(meta: TensorMeta | None) -> Schema:
    schema: Schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    if meta is not None and meta.shape is not None:
        rank = len(meta.shape)
        schema["minItems"] = schema["maxItems"] = rank
        # The sizes go in the description: prefixItems is JSON Schema 2020-12, which some
        # OpenAPI tools (schemathesis 4 among them) still read as draft 4's tuple items.
        schema["description"] = f"{list(meta.shape)} (-1: any size)"
    return schema


def v2_tensor(meta: TensorMeta | None, *, reply: bool = False) -> Schema:
    """A KServe v2 tensor: ``meta``'s name, datatype and shape when known."""
    if meta is None:
        name: Schema = {"type": "string"}
        datatype: Schema = {"type": "string", "enum": sorted(DATATYPES)}
        data: Schema = {"type": "array"}
    else:
        name, datatype = {"const": meta.name}, {"const": meta.datatype}
        data = {"type": "array", "items": {"anyOf": [element(meta.datatype), {"type": "array"}]}}
    required = ["name", "datatype", "shape"] if reply else ["name", "datatype", "shape", "data"]
    return {
        "type": "object",
        "required": required,
        "properties": {
            "name": name,
            "datatype": datatype,
            "shape": _shape(meta),
            "data": data,
            "parameters": PARAMETERS,
        },
    }


def _tensors(metas: tuple[TensorMeta, ...], *, reply: bool = False) -> Schema:
    if not metas:
        return {"type": "array", "items": v2_tensor(None, reply=reply)}
    each = [v2_tensor(m, reply=reply) for m in metas]
    return {"type": "array", "items": each[0] if len(each) == 1 else {"anyOf": each}}


def v2_request(signature: Signature | None) -> Schema:
    """``POST /v2/models/{model}/infer``'s JSON body."""
    inputs = _tensors(signature.inputs if signature else ())
    if signature is not None and signature.inputs:
        inputs["minItems"] = inputs["maxItems"] = len(signature.inputs)
    else:
        inputs["minItems"] = 1
    output: Schema = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": PARAMETERS},
    }
    if signature is not None and signature.outputs:
        output["properties"]["name"] = {"enum": [m.name for m in signature.outputs]}
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "inputs": inputs,
            "outputs": {"type": "array", "items": output},
        },
    }


def v2_response(model: str, versions: list[str], signature: Signature | None) -> Schema:
    """The JSON reply of a v2 inference (outputs with binary data are in the JSON header)."""
    return {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"const": model} if model else {"type": "string"},
            "model_version": {"enum": versions} if versions else {"type": "string"},
            "id": {"type": "string"},
            "parameters": PARAMETERS,
            "outputs": _tensors(signature.outputs if signature else (), reply=True),
        },
    }


def _row(meta: TensorMeta) -> Schema:
    """One instance (a row: the tensor without its batch dimension)."""
    if meta.shape is None:
        return {}  # any rank: any row
    item = element(meta.datatype)
    if meta.datatype == "BYTES":
        item = {"anyOf": [item, _B64]}
    return nested(item, meta.shape[1:])


def _column(meta: TensorMeta) -> Schema:
    item = element(meta.datatype)
    if meta.datatype == "BYTES":
        item = {"anyOf": [item, _B64]}
    return nested(item, meta.shape) if meta.shape is not None else NESTED


def v1_request(signature: Signature | None) -> Schema:
    """``POST /v1/models/{model}:predict``'s body: rows (``instances``) or columns
    (``inputs``), as TF Serving's REST API takes them."""
    rows: Schema = {"type": "array", "minItems": 1}
    columns: Schema = {"description": "A tensor, or an object of named tensors."}
    if signature is not None and signature.inputs:
        metas = signature.inputs
        if len(metas) == 1:
            rows["items"] = _row(metas[0])
            columns = _column(metas[0])
        else:
            names = [m.name for m in metas]
            row = {m.name: _row(m) for m in metas}
            rows["items"] = {"type": "object", "required": names, "properties": row}
            cols = {m.name: _column(m) for m in metas}
            columns = {"type": "object", "required": names, "properties": cols}
    common = {"signature_name": {"type": "string"}}
    return {
        "oneOf": [
            {
                "type": "object",
                "required": ["instances"],
                "properties": {**common, "instances": rows},
                "not": {"required": ["inputs"]},
            },
            {
                "type": "object",
                "required": ["inputs"],
                "properties": {**common, "inputs": columns},
                "not": {"required": ["instances"]},
            },
        ]
    }


V1_RESPONSE: Schema = {
    "type": "object",
    "description": "``predictions`` for rows, ``outputs`` for columns (one tensor, or named).",
    "properties": {"predictions": {"type": "array"}, "outputs": {}},
}
V1_EXAMPLES: Schema = {
    "type": "object",
    "description": "TF Serving's Classify/Regress JSON (``examples`` of ``tf.Example``).",
    "required": ["examples"],
    "properties": {
        "signature_name": {"type": "string"},
        "context": {"type": "object"},
        "examples": {"type": "array", "items": {"type": "object"}},
    },
}
V1_RESULTS: Schema = {"type": "object", "properties": {"result": {}}}


def v2_metadata(model: str, signature: Signature | None) -> Schema:
    meta: Schema = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": ["array", "null"], "items": {"type": "integer"}},
        },
    }
    return {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"const": model} if model else {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": meta},
            "outputs": {"type": "array", "items": meta},
        },
    }


V1_STATUS: Schema = {
    "type": "object",
    "required": ["model_version_status"],
    "properties": {
        "model_version_status": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["version", "state", "status"],
                "properties": {
                    "version": {"type": "string"},
                    "state": {"enum": ["AVAILABLE", "LOADING"]},
                    "status": {"type": "object"},
                },
            },
        }
    },
}
V1_METADATA: Schema = {
    "type": "object",
    "required": ["model_spec", "metadata"],
    "properties": {"model_spec": {"type": "object"}, "metadata": {"type": "object"}},
}
V2_READY: Schema = {
    "type": "object",
    "required": ["name", "ready"],
    "properties": {"name": {"type": "string"}, "ready": {"const": True}},
}
