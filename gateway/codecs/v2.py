"""The Open Inference Protocol (KServe v2) JSON ↔ unified tensors, for clients and backends."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from gateway.codecs.tensors import (
    DATATYPES,
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


def decode_request(body: bytes) -> InferenceRequest:
    obj = loads(body)
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
    return InferenceRequest(
        inputs=[_tensor(t, f"inputs[{i}]", BadRequest) for i, t in enumerate(inputs)],
        typed=True,
        columnar=True,
        id=request_id if isinstance(request_id, str) else None,
        parameters=parameters,
        outputs=outputs,
        v2_json=body,
    )


def encode_request(request: InferenceRequest) -> bytes:
    body: dict[str, Any] = {"inputs": [_json_tensor(t, InvalidTensor) for t in request.inputs]}
    if request.id is not None:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = request.parameters
    if request.outputs:
        body["outputs"] = request.outputs
    return dumps(body, request.inputs)


def decode_response(body: bytes) -> InferenceResponse:
    try:
        obj = loads(body, "the model server's reply")
    except GatewayError as exc:
        raise BadGateway(exc.message) from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("outputs"), list):
        raise BadGateway("the model server's reply has no 'outputs' list")
    version = obj.get("model_version")
    return InferenceResponse(
        outputs=[_tensor(t, f"outputs[{i}]", BadGateway) for i, t in enumerate(obj["outputs"])],
        id=obj.get("id") if isinstance(obj.get("id"), str) else None,
        parameters=obj.get("parameters") if isinstance(obj.get("parameters"), dict) else None,
        model_version=str(version) if version is not None else None,
    )


def encode_response(
    response: InferenceResponse, model_name: str, model_version: str, id: str | None = None
) -> bytes:
    """The reply; ``id`` is the caller's request id, echoed (else the server's, if any)."""
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    request_id = id if id is not None else response.id
    if request_id is not None:
        body["id"] = request_id
    if response.parameters:
        body["parameters"] = response.parameters
    body["outputs"] = [_json_tensor(t, BadGateway) for t in response.outputs]
    return dumps(body, response.outputs)


def _tensor(obj: Any, what: str, error: type[GatewayError]) -> Tensor:
    if not isinstance(obj, dict):
        raise error(f"{what} must be an object")
    name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
    if not isinstance(name, str) or not name:
        raise error(f"{what}.name must be a non-empty string")
    if datatype not in DATATYPES:
        raise error(f"{what}.datatype {datatype!r} is not a v2 datatype")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise error(f"{what}.shape must be a list of non-negative integers")
    if "data" not in obj:
        raise error(f"{what} has no 'data'")
    try:
        flat, _ = flatten(obj["data"], f"{what}.data")
    except BadRequest as exc:
        raise error(exc.message) from exc
    if len(flat) != element_count(shape):
        raise error(f"{what}: shape {shape} needs {element_count(shape)} values, got {len(flat)}")
    _check_values(flat, datatype, what, error)
    parameters = obj.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else None
    if datatype == "BYTES" and parameters and parameters.get("content_type") == "base64":
        # The inverse of _json_tensor: binary strings come back as bytes, so a v1 peer gets
        # {"b64": ...} and a v2 peer the same base64 again.
        flat = [_from_base64(x, what, error) for x in flat]
        parameters = {k: v for k, v in parameters.items() if k != "content_type"} or None
    return Tensor(name=name, datatype=datatype, shape=shape, data=flat, parameters=parameters)


_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "BOOL": (bool,),
    "BYTES": (str,),
    **{t: (int,) for t in INT_TYPES},
    **{t: (int, float) for t in FLOAT_TYPES},
}


def _check_values(flat: list[Any], datatype: str, what: str, error: type[GatewayError]) -> None:
    """Values must be JSON of the datatype's kind: no strings in FP32, no null, no 1 for BOOL."""
    wrong = set(map(type, flat)).difference(_VALUE_TYPES[datatype])
    if wrong:
        kinds = ", ".join(sorted("null" if t is type(None) else t.__name__ for t in wrong))
        raise error(f"{what}.data holds {kinds} values, which a {datatype} tensor cannot hold")


def _from_base64(value: Any, what: str, error: type[GatewayError]) -> bytes:
    if not isinstance(value, str):
        raise error(f"{what}.data: content_type base64 needs strings")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
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
