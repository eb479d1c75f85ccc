"""The Open Inference Protocol (KServe v2) over HTTP ↔ tensors, for clients and backends: JSON,
and JSON with binary tensor data (``codecs.binary``)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final

import orjson

from gateway.codecs import binary, raw
from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.tensors import (
    FLOAT_TYPES,
    INT_TYPES,
    InferenceRequest,
    InferenceResponse,
    ModelInfo,
    Tensor,
    dumps,
    element_count,
    flatten,
    loads,
)
from gateway.errors import BadGateway, BadRequest, GatewayError, InvalidTensor


def decode_request(body: bytes, header_length: int | None = None) -> InferenceRequest:
    """A request: all JSON, or (``header_length``) a JSON header and binary tensors."""
    head: bytes = body
    reader = None
    if header_length is not None:  # (an all-JSON body needs no split)
        head, reader = binary.split(body, header_length, BadRequest)
    obj = loads(head)
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    outputs = obj.get("outputs")
    if outputs is not None and not (
        isinstance(outputs, list) and all(isinstance(o, dict) and "name" in o for o in outputs)
    ):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be an object")
    request_id = obj.get("id")
    tensors = [
        _plain(t) or _tensor(t, f"inputs[{i}]", BadRequest, reader) for i, t in enumerate(inputs)
    ]
    if reader is not None:
        reader.finish()
    request_id = request_id if isinstance(request_id, str) else None
    # every field by position (a keyword call costs twice as much, once per request)
    return InferenceRequest(
        tensors, True, True, request_id, parameters, outputs, None, body, header_length
    )


def encode_request(request: InferenceRequest) -> bytes:
    """The request as all JSON (the binary extension's parameters left out)."""
    body = _request_header(request, binary_outputs=False)
    body["inputs"] = [_json_tensor(t, InvalidTensor) for t in request.inputs]
    return dumps(body, request.inputs)


def encode_request_binary(request: InferenceRequest, binary_outputs: bool) -> tuple[bytes, int]:
    """(body, header length): every input as binary tensor data; the outputs asked for binary
    when ``binary_outputs``, else JSON."""
    body = _request_header(request, binary_outputs)
    body["inputs"] = [_binary_tensor(t) for t in request.inputs]
    return binary.join(body, request.inputs)


def _request_header(request: InferenceRequest, binary_outputs: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request.id is not None:
        body["id"] = request.id
    parameters = binary.without(request.parameters, binary.ALL_OUTPUTS)
    if binary_outputs and not request.outputs:
        parameters = {**(parameters or {}), binary.ALL_OUTPUTS: True}
    if parameters:
        body["parameters"] = parameters
    if request.outputs:
        outputs = []
        for output in request.outputs:
            options = binary.without(output.get("parameters"), binary.OUTPUT)
            if binary_outputs:
                options = {**(options or {}), binary.OUTPUT: True}
            named: dict[str, Any] = {k: v for k, v in output.items() if k != "parameters"}
            outputs.append({**named, "parameters": options} if options else named)
        body["outputs"] = outputs
    return body


def decode_response(body: bytes, header_length: int | None = None) -> InferenceResponse:
    """A model server's reply: all JSON, or a JSON header and binary outputs. An all-JSON
    reply keeps its outputs' JSON objects (``v2_outputs``) for the encoders."""
    head: bytes = body
    reader = None
    try:
        if header_length is not None:  # (an all-JSON reply needs no split)
            head, reader = binary.split(body, header_length, BadGateway)
        try:
            obj, strict = orjson.loads(head), True
        except orjson.JSONDecodeError:  # NaN, Infinity, or not JSON: the full reading
            obj, strict = loads(head, "the model server's reply"), False
    except GatewayError as exc:
        raise BadGateway(exc.message) from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("outputs"), list):
        raise BadGateway("the model server's reply has no 'outputs' list")
    items: list[Any] = obj["outputs"]
    outputs: list[Tensor] = []
    as_written = True  # each output object is what _json_tensor writes of its tensor
    for i, item in enumerate(items):
        tensor = _plain(item)
        if tensor is None:
            tensor = _tensor(item, f"outputs[{i}]", BadGateway, reader)
            as_written = False
        elif as_written and list(item) != _WRITTEN:  # (flat data, no parameters)
            as_written = False
        outputs.append(tensor)
    kept = None
    if reader is not None:
        reader.finish()
    elif strict:  # every number finite (orjson reads no other), so orjson writes them all
        kept = items if as_written else [_json_tensor(t, BadGateway) for t in outputs]
    version = obj.get("model_version")
    response_id, parameters = obj.get("id"), obj.get("parameters")
    return InferenceResponse(  # by position, as InferenceRequest above
        outputs,
        response_id if isinstance(response_id, str) else None,
        parameters if isinstance(parameters, dict) else None,
        str(version) if version is not None else None,
        kept,
    )


def encode_response(
    response: InferenceResponse,
    model_name: str,
    model_version: str,
    id: str | None = None,
    *,
    server_id: bool = True,
) -> bytes:
    """The reply, all JSON; ``id`` is the caller's request id, echoed (else the server's, unless
    not ``server_id``: an answer for any caller, as the cache keeps it)."""
    if id is None and server_id:
        id = response.id
    body = _response_header(response, model_name, model_version, id)
    kept = response.v2_outputs
    if kept is not None:  # the outputs' JSON as the decoder kept it: one orjson call writes all
        body["outputs"] = kept
        return orjson.dumps(body)
    body["outputs"] = [_json_tensor(t, BadGateway) for t in response.outputs]
    return dumps(body, response.outputs)


def encode_response_binary(
    response: InferenceResponse,
    model_name: str,
    model_version: str,
    id: str | None,
    wanted: Callable[[str], bool],
) -> tuple[bytes, int]:
    """(body, header length): the outputs ``wanted`` binary as binary tensor data, the others
    in the JSON header."""
    body = _response_header(response, model_name, model_version, response.id if id is None else id)
    raws = [t for t in response.outputs if wanted(t.name)]
    body["outputs"] = [
        _binary_tensor(t) if wanted(t.name) else _json_tensor(t, BadGateway)
        for t in response.outputs
    ]
    return binary.join(body, raws)


def _response_header(
    response: InferenceResponse, model_name: str, model_version: str, id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if id is not None:
        body["id"] = id
    if response.parameters:
        body["parameters"] = response.parameters
    return body


_WRITTEN: Final = ["name", "datatype", "shape", "data"]  # a tensor's keys as _json_tensor writes


def _plain(obj: Any) -> Tensor | None:
    """The common tensor, checked in a few C-level scans: flat ``data`` of its datatype's
    kinds and count, no binary data, no base64. None for anything else, which ``_tensor``
    then reads (and words the error of): both give the same tensor where both accept it."""
    if type(obj) is not dict:
        return None
    name, datatype, shape, data = (
        obj.get("name"),
        obj.get("datatype"),
        obj.get("shape"),
        obj.get("data"),
    )
    if type(name) is not str or not name or type(datatype) is not str:
        return None
    kinds = _VALUE_KINDS.get(datatype)
    if kinds is None or type(shape) is not list or type(data) is not list:
        return None
    count = 1
    for size in shape:  # (a loop, not builtins over the shape: fewer calls for a few sizes)
        if type(size) is not int or size < 0:
            return None
        count *= size
    if len(data) != count or not kinds.issuperset(map(type, data)):  # a list is no value kind
        return None
    parameters = obj.get("parameters")
    if parameters is not None and (
        type(parameters) is not dict or binary.SIZE in parameters or datatype == "BYTES"
    ):
        return None
    return Tensor(name, datatype, shape, data, parameters)


def _tensor(
    obj: Any, what: str, error: type[GatewayError], reader: binary.Reader | None = None
) -> Tensor:
    if not isinstance(obj, dict):
        raise error(f"{what} must be an object")
    name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
    if not isinstance(name, str) or not name:
        raise error(f"{what}.name must be a non-empty string")
    if not isinstance(datatype, str) or datatype not in DATATYPES:  # a list is unhashable
        raise error(f"{what}.datatype {datatype!r} is not a v2 datatype")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise error(f"{what}.shape must be a list of non-negative integers")
    parameters = obj.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else None
    if parameters is not None and binary.SIZE in parameters:
        return _raw_tensor(obj, name, datatype, shape, parameters, what, error, reader)
    if "data" not in obj:
        raise error(f"{what} has no 'data'")
    try:
        flattened = flatten(obj["data"], f"{what}.data")
    except BadRequest as exc:
        raise error(exc.message) from exc
    flat = flattened.data
    if len(flat) != element_count(shape):
        raise error(f"{what}: shape {shape} needs {element_count(shape)} values, got {len(flat)}")
    _check_values(flattened.kinds, datatype, what, error)
    if datatype == "BYTES" and parameters and parameters.get("content_type") == "base64":
        # The inverse of _json_tensor: binary strings come back as bytes, so a v1 peer gets
        # {"b64": ...} and a v2 peer the same base64 again.
        flat = [_from_base64(x, what, error) for x in flat]
        parameters = {k: v for k, v in parameters.items() if k != "content_type"} or None
    return Tensor(name=name, datatype=datatype, shape=shape, data=flat, parameters=parameters)


def _raw_tensor(
    obj: dict[str, Any],
    name: str,
    datatype: str,
    shape: list[int],
    parameters: dict[str, Any],
    what: str,
    error: type[GatewayError],
    reader: binary.Reader | None,
) -> Tensor:
    """A tensor whose values follow the JSON header as binary tensor data."""
    if reader is None:
        raise error(f"{what}: {binary.SIZE} needs a binary body ({binary.HEADER})")
    if "data" in obj:
        raise error(f"{what}: a binary tensor has no 'data'")
    data = reader.take(parameters[binary.SIZE], what)
    count = element_count(shape)
    try:
        if datatype == "BYTES":
            raw.split_bytes(data, count, what)  # checked now, kept as bytes
        else:
            raw.array(datatype, data, count, what)
    except BadRequest as exc:
        raise error(exc.message) from exc
    kept = binary.without(parameters, binary.SIZE)
    return Tensor(name=name, datatype=datatype, shape=shape, parameters=kept, raw=data)


def _binary_tensor(tensor: Tensor) -> dict[str, Any]:
    parameters = binary.without(tensor.parameters, "content_type")
    return {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": tensor.shape,
        "parameters": {**(parameters or {}), binary.SIZE: len(tensor.raw)},
    }


_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "BOOL": (bool,),
    "BYTES": (str,),
    **{t: (int,) for t in INT_TYPES},
    **{t: (int, float) for t in FLOAT_TYPES},
}
_VALUE_KINDS: Final = {datatype: frozenset(kinds) for datatype, kinds in _VALUE_TYPES.items()}


def _check_values(kinds: set[type], datatype: str, what: str, error: type[GatewayError]) -> None:
    """Values must be JSON of the datatype's kind: no strings in FP32, no null, no 1 for BOOL."""
    wrong = kinds.difference(_VALUE_TYPES[datatype])
    if wrong:
        named = ", ".join(sorted("null" if t is type(None) else t.__name__ for t in wrong))
        raise error(f"{what}.data holds {named} values, which a {datatype} tensor cannot hold")


def _from_base64(value: Any, what: str, error: type[GatewayError]) -> bytes:
    if not isinstance(value, str):
        raise error(f"{what}.data: content_type base64 needs strings")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not ASCII
        raise error(f"{what}.data: invalid base64") from exc


def _json_tensor(tensor: Tensor, error: type[GatewayError]) -> dict[str, Any]:
    data = tensor.data
    parameters = tensor.parameters
    if tensor.datatype == "BYTES" and any(isinstance(x, bytes) for x in data):
        try:
            data = [x.decode() if isinstance(x, bytes) else x for x in data]
        except UnicodeDecodeError:
            # Binary strings have no JSON form in v2 but base64 (MLServer's "base64" codec).
            # The parameter covers the whole tensor, so text elements are encoded too.
            data = [
                base64.b64encode(x if isinstance(x, bytes) else str(x).encode()).decode()
                for x in data
            ]
            parameters = {**(parameters or {}), "content_type": "base64"}
    out: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": tensor.shape,
        "data": data,
    }
    if parameters:
        out["parameters"] = parameters
    return out


def encode_metadata(info: ModelInfo) -> bytes:
    """Model metadata: name, versions, platform, inputs and outputs."""
    signature = info.signature
    return dumps(
        {
            "name": info.model,
            "versions": list(info.versions),
            "platform": "",
            "inputs": [m.as_json() for m in signature.inputs] if signature else [],
            "outputs": [m.as_json() for m in signature.outputs] if signature else [],
        }
    )
