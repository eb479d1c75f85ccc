"""TF Serving's REST JSON (``instances`` rows / ``inputs`` columns) ↔ unified tensors.

Used on both sides: to read clients of ``/v1/models/{m}:predict`` and to speak to TF Serving
and TorchServe backends. Binary strings travel as ``{"b64": ...}`` and become ``bytes``.
"""

from __future__ import annotations

import base64
from typing import Any

from gateway.codecs.tensors import (
    FLOAT_TYPES,
    UNNAMED,
    InferenceRequest,
    InferenceResponse,
    ModelInfo,
    Signature,
    Tensor,
    TensorMeta,
    dumps,
    flatten,
    infer_datatype,
    loads,
    nest,
)
from gateway.errors import BadGateway, BadRequest, GatewayError, InvalidTensor

# TF Serving's dtype names (metadata) ↔ the Open Inference Protocol's datatypes
DTYPES = {
    "DT_BOOL": "BOOL",
    "DT_UINT8": "UINT8",
    "DT_UINT16": "UINT16",
    "DT_UINT32": "UINT32",
    "DT_UINT64": "UINT64",
    "DT_INT8": "INT8",
    "DT_INT16": "INT16",
    "DT_INT32": "INT32",
    "DT_INT64": "INT64",
    "DT_HALF": "FP16",
    "DT_BFLOAT16": "BF16",
    "DT_FLOAT": "FP32",
    "DT_DOUBLE": "FP64",
    "DT_STRING": "BYTES",
}
TF_DTYPES = {v2: tf for tf, v2 in DTYPES.items()}


def decode_request(body: bytes) -> InferenceRequest:
    obj = loads(body)
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    signature_name = obj.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise BadRequest("'signature_name' must be a string")
    if ("instances" in obj) == ("inputs" in obj):
        raise BadRequest("expected exactly one of 'instances' (rows) or 'inputs' (columns)")
    if "instances" in obj:
        instances = obj["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("'instances' must be a non-empty list")
        inputs = _tensors_from_rows(instances, "instances", BadRequest)
        columnar = False
    else:
        inputs = _tensors_from_columns(obj["inputs"], "inputs", BadRequest)
        columnar = True
    return InferenceRequest(
        inputs=inputs,
        typed=False,
        columnar=columnar,
        signature_name=signature_name,
    )


def encode_request(request: InferenceRequest, *, columnar: bool, named: bool) -> bytes:
    """The body for a v1-speaking backend. ``named`` sends ``{"inputs": {name: ...}}``."""
    body: dict[str, Any] = {}
    if request.signature_name:
        body["signature_name"] = request.signature_name
    if columnar:
        if len(request.inputs) == 1 and not named:
            body["inputs"] = _nested(request.inputs[0])
        else:
            body["inputs"] = {t.name: _nested(t) for t in request.inputs}
    else:
        body["instances"] = _rows(request.inputs, InvalidTensor)
    return dumps(body, request.inputs)


def decode_response(
    body: bytes, signature: Signature | None, output_names: list[str] | None = None
) -> InferenceResponse:
    """Read ``{"predictions": ...}`` or ``{"outputs": ...}`` from a backend."""
    try:
        obj = loads(body, "the model server's reply")
    except GatewayError as exc:
        raise BadGateway(exc.message) from exc
    if not isinstance(obj, dict) or not ({"predictions", "outputs"} & obj.keys()):
        raise BadGateway("the model server's reply has neither 'predictions' nor 'outputs'")
    if "predictions" in obj:
        predictions = obj["predictions"]
        if not isinstance(predictions, list):
            raise BadGateway("the model server's 'predictions' is not a list")
        outputs = _tensors_from_rows(predictions, "predictions", BadGateway)
    else:
        outputs = _tensors_from_columns(obj["outputs"], "outputs", BadGateway)
    declared = list(signature.outputs) if signature else []
    if len(outputs) == 1 and outputs[0].name == UNNAMED:
        if len(declared) == 1:
            outputs[0].name = declared[0].name
        elif output_names:
            outputs[0].name = output_names[0]
        else:
            outputs[0].name = "output_0"
    for tensor in outputs:
        meta = signature.output(tensor.name) if signature else None
        if meta is not None and tensor.datatype != "BYTES":
            tensor.datatype = meta.datatype
    return InferenceResponse(outputs=outputs)


def encode_response(response: InferenceResponse, *, columnar: bool) -> bytes:
    outputs = response.outputs
    if columnar:
        if len(outputs) == 1:
            body: dict[str, Any] = {"outputs": _nested(outputs[0])}
        else:
            body = {"outputs": {t.name: _nested(t) for t in outputs}}
    else:
        body = {"predictions": _rows(outputs, BadGateway)}
    return dumps(body, outputs)


def _tensors_from_rows(rows: list[Any], what: str, error: type[GatewayError]) -> list[Tensor]:
    if rows and isinstance(rows[0], dict) and not _is_b64(rows[0]):
        names = list(rows[0])
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or row.keys() != rows[0].keys():  # in any order
                raise error(f"{what}[{i}]: every row needs the same named fields {names}")
        return [
            _tensor(name, [row[name] for row in rows], f"{what}.{name}", error) for name in names
        ]
    return [_tensor(UNNAMED, rows, what, error)]


def _tensors_from_columns(value: Any, what: str, error: type[GatewayError]) -> list[Tensor]:
    if isinstance(value, dict) and not _is_b64(value):
        if not value:
            raise error(f"'{what}' is an empty object")
        return [_tensor(name, v, f"{what}.{name}", error) for name, v in value.items()]
    return [_tensor(UNNAMED, value, what, error)]


def _tensor(name: str, value: Any, what: str, error: type[GatewayError]) -> Tensor:
    try:
        flattened = flatten(value, what)
    except BadRequest as exc:
        raise error(exc.message) from exc
    flat, kinds = flattened.data, flattened.kinds
    if dict in kinds:
        flat = [_from_b64(x, what, error) if isinstance(x, dict) else x for x in flat]
        kinds = set(map(type, flat))
    if type(None) in kinds:
        raise error(f"{what}: null is not a tensor value")
    try:
        datatype = infer_datatype(kinds)
    except BadRequest as exc:
        raise error(f"{what}: {exc.message}") from exc
    return Tensor(name=name, datatype=datatype, shape=flattened.shape, data=flat)


def _is_b64(value: dict[str, Any]) -> bool:
    return len(value) == 1 and "b64" in value


def _from_b64(value: dict[str, Any], what: str, error: type[GatewayError]) -> bytes:
    if not _is_b64(value) or not isinstance(value["b64"], str):
        raise error(f'{what}: objects inside a tensor must be {{"b64": "..."}}')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not ASCII
        raise error(f"{what}: invalid base64") from exc


def _nested(tensor: Tensor) -> Any:
    data = tensor.data
    if tensor.datatype == "BYTES" and any(isinstance(x, bytes) for x in data):
        data = [{"b64": base64.b64encode(x).decode()} if isinstance(x, bytes) else x for x in data]
    elif tensor.datatype in FLOAT_TYPES and any(type(x) is int for x in data):
        # v1 JSON has no datatype: write 1.0, not 1, so the server reads a float tensor.
        data = [float(x) if type(x) is int else x for x in data]
    return nest(data, tensor.shape)


def _rows(tensors: list[Tensor], error: type[GatewayError]) -> list[Any]:
    if len(tensors) == 1:
        nested = _nested(tensors[0])
        return nested if isinstance(nested, list) else [nested]
    batch = {t.shape[0] if t.shape else None for t in tensors}
    if len(batch) != 1 or None in batch:
        raise error("row format needs every tensor to share its first (batch) dimension")
    columns = {t.name: _nested(t) for t in tensors}
    size = batch.pop() or 0
    return [{name: column[i] for name, column in columns.items()} for i in range(size)]


def encode_metadata(info: ModelInfo) -> bytes:
    """TF Serving's metadata shape (``signature_def`` nested twice, dim sizes as strings)."""
    signature = info.signature

    def tensors(metas: tuple[TensorMeta, ...]) -> dict[str, Any]:
        return {
            m.name: {
                "dtype": TF_DTYPES.get(m.datatype, "DT_INVALID"),
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in m.shape or ()],
                    "unknown_rank": m.shape is None,
                },
                "name": m.name,
            }
            for m in metas
        }

    serving_default = {
        "inputs": tensors(signature.inputs) if signature else {},
        "outputs": tensors(signature.outputs) if signature else {},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    body = {
        "model_spec": {"name": info.model, "signature_name": "", "version": info.version},
        "metadata": {"signature_def": {"signature_def": {"serving_default": serving_default}}},
    }
    return dumps(body)


def encode_status(info: ModelInfo) -> bytes:
    """TF Serving's model status: each version asked about, AVAILABLE when a replica serves
    it; else LOADING (TF's state for a version the server means to serve but cannot yet) with
    an UNAVAILABLE status saying why, as the gRPC ModelService answers."""
    return dumps(
        {
            "model_version_status": [
                {
                    "version": version,
                    "state": "AVAILABLE" if ok else "LOADING",
                    "status": {"error_code": "OK", "error_message": ""}
                    if ok
                    else {"error_code": "UNAVAILABLE", "error_message": not_ready(info, version)},
                }
                for version, ok in info.ready
            ]
        }
    )


def not_ready(info: ModelInfo, version: str) -> str:
    """Why a version of a model is not AVAILABLE, in TF Serving's status (REST and gRPC)."""
    return f"no replica reports version {version} of model {info.model} ready"
