"""KServe v2 over gRPC (``inference.GRPCInferenceService``) ↔ tensors, for the gRPC frontend
and gRPC backends. The messages come from the gateway's own descriptor pool
(``codecs.v2_proto``), so any client library can live in the same process.

Tensor values travel either typed (``InferTensorContents``: ``fp32_contents`` ...) or as raw
bytes (``raw_input_contents[i]`` for ``inputs[i]``, flat, row-major, little-endian; BYTES
elements length-prefixed), never both in one message. Replies are always raw, as Triton's are:
tritonclient reads only ``raw_output_contents`` (or ``bytes_contents``) back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from gateway.codecs import raw
from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.tensors import (
    InferenceRequest,
    InferenceResponse,
    ModelInfo,
    Signature,
    Tensor,
    TensorMeta,
    element_count,
)
from gateway.codecs.v2_proto import messages
from gateway.errors import BadGateway, BadRequest, GatewayError

# The InferTensorContents field of each datatype (FP16 and BF16 have none: raw only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


# -- parameters -------------------------------------------------------------------------------


def parameters_of(entries: Mapping[str, Any]) -> dict[str, Any] | None:
    """``map<string, InferParameter>`` → plain values (None when empty)."""
    out: dict[str, Any] = {}
    for name, parameter in entries.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            out[name] = getattr(parameter, choice)
    return out or None


def fill_parameters(entries: Any, values: Mapping[str, Any] | None) -> None:
    for name, value in (values or {}).items():
        parameter = entries[name]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            if value >= 2**63:
                parameter.uint64_param = value
            else:
                parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        else:
            parameter.string_param = str(value)


# -- tensors ----------------------------------------------------------------------------------


def _tensor(message: Any, data: bytes | None, what: str, error: type[GatewayError]) -> Tensor:
    name, datatype = message.name, message.datatype
    if not name:
        raise error(f"{what}: a tensor needs a name")
    if datatype not in DATATYPES:
        raise error(f"{what}: {datatype!r} is not a v2 datatype")
    shape = list(message.shape)
    if any(d < 0 for d in shape):
        raise error(f"{what}: shape {shape} has a negative dimension")
    parameters = parameters_of(message.parameters)
    count = element_count(shape)
    field = CONTENTS.get(datatype)
    typed = message.HasField("contents") and field is not None
    values = list(getattr(message.contents, field)) if typed and field is not None else []
    if data is not None:
        if values:
            raise error(f"{what}: contents and raw contents both given for {name!r}")
        try:
            if datatype == "BYTES":
                raw.split_bytes(data, count, what)
            else:
                raw.array(datatype, data, count, what)
        except BadRequest as exc:
            raise error(exc.message) from exc
        return Tensor(name, datatype, shape, parameters=parameters, raw=data)
    if field is None:
        raise error(f"{what}: {datatype} values travel as raw contents only")
    if len(values) != count:
        raise error(f"{what}: shape {shape} needs {count} values, got {len(values)}")
    return Tensor(name, datatype, shape, values, parameters)


def _raws(count: int, raws: Sequence[bytes], what: str, error: type[GatewayError]) -> list[Any]:
    if raws and len(raws) != count:
        raise error(f"{len(raws)} raw contents for {count} {what}")
    return list(raws) if raws else [None] * count


def decode_request(message: Any, error: type[GatewayError] = BadRequest) -> InferenceRequest:
    """A ``ModelInferRequest`` (or its bytes) → the call's tensors."""
    if isinstance(message, bytes):
        try:
            message = messages().ModelInferRequest.FromString(message)
        except DecodeError as exc:
            raise error(f"not a ModelInferRequest: {exc}") from exc
    if not message.inputs:
        raise error("a ModelInferRequest needs at least one input")
    datas = _raws(len(message.inputs), message.raw_input_contents, "inputs", error)
    inputs = [
        _tensor(t, data, f"inputs[{i}]", error)
        for i, (t, data) in enumerate(zip(message.inputs, datas, strict=True))
    ]
    outputs = [
        {"name": o.name, **({"parameters": p} if (p := parameters_of(o.parameters)) else {})}
        for o in message.outputs
    ]
    return InferenceRequest(
        inputs=inputs,
        id=message.id or None,
        parameters=parameters_of(message.parameters),
        outputs=outputs or None,
    )


def encode_request(request: InferenceRequest, model: str, version: str | None) -> Any:
    """The call's tensors → a ``ModelInferRequest`` for a v2 gRPC server (raw contents)."""
    message = messages().ModelInferRequest(model_name=model, model_version=version or "")
    if request.id:
        message.id = request.id
    fill_parameters(message.parameters, request.parameters)
    for tensor in request.inputs:
        entry = message.inputs.add(name=tensor.name, datatype=tensor.datatype)
        entry.shape.extend(tensor.shape)
        fill_parameters(entry.parameters, tensor.parameters)
        message.raw_input_contents.append(bytes(tensor.raw))
    for output in request.outputs or ():
        wanted = message.outputs.add(name=str(output.get("name")))
        fill_parameters(wanted.parameters, output.get("parameters"))
    return message


def decode_response(message: Any) -> InferenceResponse:
    """A server's ``ModelInferResponse`` → the answer's tensors (raw or typed, both accepted:
    MLServer answers typed contents to a typed request)."""
    datas = _raws(len(message.outputs), message.raw_output_contents, "outputs", BadGateway)
    outputs = [
        _tensor(t, data, f"outputs[{i}]", BadGateway)
        for i, (t, data) in enumerate(zip(message.outputs, datas, strict=True))
    ]
    return InferenceResponse(
        outputs=outputs,
        id=message.id or None,
        parameters=parameters_of(message.parameters),
        model_version=message.model_version or None,
    )


def encode_response(
    response: InferenceResponse, model: str, version: str, request_id: str | None
) -> Any:
    """The answer → a ``ModelInferResponse``, every output as raw contents."""
    message = messages().ModelInferResponse(model_name=model, model_version=version)
    answer_id = request_id if request_id is not None else response.id
    if answer_id:
        message.id = answer_id
    fill_parameters(message.parameters, response.parameters)
    for tensor in response.outputs:
        entry = message.outputs.add(name=tensor.name, datatype=tensor.datatype)
        entry.shape.extend(tensor.shape)
        fill_parameters(entry.parameters, tensor.parameters)
        message.raw_output_contents.append(bytes(tensor.raw))
    return message


# -- metadata ---------------------------------------------------------------------------------


def encode_metadata(info: ModelInfo) -> Any:
    message = messages().ModelMetadataResponse(name=info.model, versions=list(info.versions))
    signature = info.signature
    for metas, out in (
        (signature.inputs if signature else (), message.inputs),
        (signature.outputs if signature else (), message.outputs),
    ):
        for meta in metas:
            entry = out.add(name=meta.name, datatype=meta.datatype)
            entry.shape.extend(meta.shape if meta.shape is not None else [])
    return message


def decode_metadata(message: Any) -> Signature:
    def metas(entries: Any) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(e.name, e.datatype, tuple(e.shape)) for e in entries)

    return Signature(inputs=metas(message.inputs), outputs=metas(message.outputs))
