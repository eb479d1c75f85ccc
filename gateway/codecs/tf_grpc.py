"""TF Serving's gRPC messages (``tensorflow.serving``, PROTOCOLS.md §5.3) ↔ the gateway's calls
and model descriptions: model specs and versions, Predict, model metadata and status, read and
written both ways, for the TF Serving gRPC frontend (``edge.grpc_tfs``) and the gRPC wire toward
TF Serving backends (``backends.tfserving_grpc``). The messages are the generated modules of
``gateway/protos``; the tensors inside them are ``codecs.tf_tensors``'.

Versions: a gateway version name is a string, TF's an int64. A name that is an int64 written
the canonical way (``"7"``) is version 7 both ways; any other name is reached, and reported,
through ``version_label`` (which may name any gateway version, numeric ones included). A
backend's native version is sent the same way.

Toward a backend, the answers are read as TF Serving's REST API would have written them, so a
caller gets the same answer whichever wire the backend speaks: outputs and signature entries in
alias order (a proto map has none), a DT_STRING output whose alias does not end in ``_bytes``
as text (REST writes it as a JSON string, ``_bytes`` ones as ``{"b64": ...}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import DecodeError

from gateway.codecs.tensors import (
    UNNAMED,
    InferenceRequest,
    InferenceResponse,
    ModelInfo,
    Signature,
    TensorMeta,
    coerce,
)
from gateway.codecs.tf_tensors import DTYPES, TF_DTYPES, decode_tensor, fill_tensor
from gateway.codecs.v1 import not_ready
from gateway.errors import BadGateway, BadRequest, GatewayError, InvalidTensor, PayloadTooLarge
from gateway.protos.tensorflow.core.framework import types_pb2
from gateway.protos.tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2
from gateway.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

DEFAULT_SIGNATURE: Final = "serving_default"
PREDICT_METHOD: Final = "tensorflow/serving/predict"
SIGNATURE_DEF: Final = "signature_def"  # the one metadata field TF Serving serves
_INT64: Final = range(-(2**63), 2**63)
_CANONICAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")


# -- model specs and versions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """What a request's ``model_spec`` asks for: the model, the version pinned (by number or
    by label, as a gateway version name), the signature (``""``: the default one)."""

    model: str
    pin: str | None
    label: bool  # the pin came as ``version_label``
    signature_name: str


def read_spec(has_spec: bool, spec: model_pb2.ModelSpec, *, named: bool = True) -> Spec:
    """The request's ``model_spec``, with TF Serving's errors for a missing one or (when
    ``named``, as ServerCore asks) a missing name."""
    if not has_spec:
        raise BadRequest("Missing ModelSpec")
    if named and not spec.name:
        raise BadRequest("ModelSpec has no name specified.")
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return Spec(spec.name, str(spec.version.value), False, spec.signature_name)
    if choice == "version_label":
        return Spec(spec.name, spec.version_label, True, spec.signature_name)
    return Spec(spec.name, None, False, spec.signature_name)


def version_number(name: str) -> int | None:
    """The int64 a gateway version name stands for (``"7"`` → 7), None for any other name."""
    if not _CANONICAL.fullmatch(name):
        return None
    number = int(name)
    return number if number in _INT64 else None


def fill_spec(
    spec: model_pb2.ModelSpec, model: str, version: str, signature_name: str | None
) -> None:
    """A reply's ``model_spec``: the version as a number, or as a label when it is not one."""
    spec.name = model
    number = version_number(version)
    if number is not None:
        spec.version.value = number
    else:
        spec.version_label = version
    if signature_name is not None:  # MakeModelSpec: the default signature when none was given
        spec.signature_name = signature_name or DEFAULT_SIGNATURE


# -- Predict ----------------------------------------------------------------------------------


def decode_predict(
    request: predict_pb2.PredictRequest, limit: int, error: type[GatewayError] = BadRequest
) -> InferenceRequest:
    """A ``PredictRequest``'s tensors: inputs by alias (sorted, as TF feeds them), the
    ``output_filter`` as the outputs asked for, the signature name."""
    inputs = []
    budget = limit
    for alias in sorted(request.inputs):
        tensor = decode_tensor(alias, request.inputs[alias], budget)
        budget -= len(tensor.raw) if tensor.has_raw else sum(len(x) + 4 for x in tensor.data)
        inputs.append(tensor)
    wanted: list[str] = []
    for alias in request.output_filter:
        if alias in wanted:
            raise error(f"duplicate output tensor alias: {alias}")
        wanted.append(alias)
    return InferenceRequest(
        inputs=inputs,
        typed=True,
        columnar=True,
        outputs=[{"name": alias} for alias in wanted] or None,
        signature_name=request.model_spec.signature_name or None,
    )


def encode_predict(
    response: InferenceResponse,
    model: str,
    version: str,
    signature_name: str,
    wanted: Iterable[str] = (),
) -> predict_pb2.PredictResponse:
    """The answer → a ``PredictResponse``: the outputs asked for (all when none were), the
    ``model_spec`` that served it."""
    message = predict_pb2.PredictResponse()
    fill_spec(message.model_spec, model, version, signature_name)
    by_name = {t.name: t for t in response.outputs}
    chosen = list(wanted) or list(by_name)
    for alias in chosen:
        tensor = by_name.get(alias)
        if tensor is None:  # a server without output filtering (TF Serving's REST) sent them all
            raise BadRequest(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{','.join(sorted(by_name))}}}."
            )
        fill_tensor(message.outputs[alias], tensor)
    return message


# -- metadata and status ----------------------------------------------------------------------


def check_metadata_fields(fields: Iterable[str]) -> None:
    """GetModelMetadataImpl: ``metadata_field`` must ask for ``signature_def`` and nothing else."""
    fields = list(fields)
    if not fields:
        raise BadRequest("GetModelMetadataRequest must specify at least one metadata_field")
    for name in fields:
        if name != SIGNATURE_DEF:
            raise BadRequest(f"Metadata field {name} is not supported")


def encode_metadata(info: ModelInfo) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The model version's signature as ``serving_default`` of a ``SignatureDefMap``, packed in
    an Any under ``signature_def``; ``model_spec`` with the name and version."""
    message = get_model_metadata_pb2.GetModelMetadataResponse()
    fill_spec(message.model_spec, info.model, info.version or "", None)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signature = signatures.signature_def[DEFAULT_SIGNATURE]
    signature.method_name = PREDICT_METHOD
    if info.signature is not None:
        _tensor_infos(signature.inputs, info.signature.inputs)
        _tensor_infos(signature.outputs, info.signature.outputs)
    message.metadata[SIGNATURE_DEF].Pack(signatures)
    return message


def _tensor_infos(into: Any, metas: Iterable[TensorMeta]) -> None:
    for meta in metas:
        entry: meta_graph_pb2.TensorInfo = into[meta.name]
        entry.name = meta.name
        entry.dtype = TF_DTYPES.get(meta.datatype, types_pb2.DT_INVALID)
        if meta.shape is None:
            entry.tensor_shape.unknown_rank = True
        for size in meta.shape or ():
            entry.tensor_shape.dim.add(size=size)


def encode_status(info: ModelInfo) -> get_model_status_pb2.GetModelStatusResponse:
    """Each version asked about, in the order given (newest first): AVAILABLE when a replica
    serves it; else LOADING, TF's state for a version the server means to serve but cannot
    yet, with an UNAVAILABLE status saying why. A version whose name is not a number is
    reported as version 0 (the field's unset value)."""
    message = get_model_status_pb2.GetModelStatusResponse()
    states = get_model_status_pb2.ModelVersionStatus
    for version, ready in info.ready:
        entry = message.model_version_status.add(version=version_number(version) or 0)
        if ready:
            entry.state = states.AVAILABLE
            entry.status.error_code = error_codes_pb2.OK
        else:
            entry.state = states.LOADING
            entry.status.error_code = error_codes_pb2.UNAVAILABLE
            entry.status.error_message = not_ready(info, version)
    return message


# -- toward a TF Serving backend --------------------------------------------------------------


def target_spec(
    spec: model_pb2.ModelSpec,
    name: str,
    native_version: str | None,
    signature_name: str | None = None,
) -> None:
    """A request's ``model_spec`` for a backend's model: its name, its native version as the
    number it is (else as a label; none: the latest), the signature when one is named."""
    spec.name = name
    if native_version is not None:
        number = version_number(native_version)
        if number is None:
            spec.version_label = native_version
        else:
            spec.version.SetInParent()  # version 0 is a version too
            spec.version.value = number
    if signature_name:
        spec.signature_name = signature_name


def fit_inputs(request: InferenceRequest, signature: Signature) -> None:
    """What TF Serving's REST API does for JSON inputs on its own, for a request the default
    signature's check did not fit (another signature): the one unnamed tensor named after the
    signature's one input, untyped (v1 JSON) values given the signature's dtypes where they
    convert. What does not fit is left for the server to refuse."""
    inputs = request.inputs
    if len(inputs) == 1 and len(signature.inputs) == 1 and inputs[0].name == UNNAMED:
        inputs[0].name = signature.inputs[0].name
    if request.typed:
        return
    for tensor in inputs:
        meta = signature.input(tensor.name)
        if meta is not None:
            with suppress(InvalidTensor):
                coerce(tensor, meta.datatype)


def encode_predict_request(
    request: InferenceRequest, name: str, native_version: str | None
) -> predict_pb2.PredictRequest:
    """The call's tensors as a ``PredictRequest``: inputs by name, numeric ones as their raw
    bytes in ``tensor_content``, strings in ``string_val``; every output (TF Serving's REST API
    has no filter either)."""
    message = predict_pb2.PredictRequest()
    target_spec(message.model_spec, name, native_version, request.signature_name)
    for tensor in request.inputs:
        if tensor.name in message.inputs:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        fill_tensor(message.inputs[tensor.name], tensor, content=True, error=BadRequest)
    return message


def decode_predict_response(message: predict_pb2.PredictResponse, limit: int) -> InferenceResponse:
    """A backend's ``PredictResponse``: every output in alias order, read from either of TF's
    encodings; ``limit`` bounds what typed fields may fill."""
    outputs = []
    for alias in sorted(message.outputs):
        try:
            tensor = decode_tensor(alias, message.outputs[alias], limit, BadGateway, "output")
        except PayloadTooLarge as exc:
            raise BadGateway(f"the model server's output {alias!r} is too large") from exc
        if tensor.datatype == "BYTES" and not alias.endswith("_bytes"):
            tensor.data = [_text(x) for x in tensor.data]
        outputs.append(tensor)
    return InferenceResponse(outputs=outputs)


def _text(value: bytes) -> str | bytes:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value  # REST would have written bytes no JSON reader takes: kept as they are


def metadata_request(
    name: str, native_version: str | None
) -> get_model_metadata_pb2.GetModelMetadataRequest:
    message = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF])
    target_spec(message.model_spec, name, native_version)
    return message


def decode_signature(
    message: get_model_metadata_pb2.GetModelMetadataResponse, name: str = DEFAULT_SIGNATURE
) -> Signature:
    """Signature ``name`` of the ``SignatureDefMap`` packed under ``signature_def``, its inputs
    and outputs in alias order."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    try:
        found = SIGNATURE_DEF in message.metadata and message.metadata[SIGNATURE_DEF].Unpack(
            signatures
        )
    except DecodeError as exc:
        raise BadGateway(f"TF Serving metadata with a malformed {SIGNATURE_DEF}") from exc
    if not found or name not in signatures.signature_def:
        raise BadGateway(f"TF Serving metadata without signature {name!r}")
    signature = signatures.signature_def[name]
    return Signature(
        inputs=tuple(_meta(a, signature.inputs[a]) for a in sorted(signature.inputs)),
        outputs=tuple(_meta(a, signature.outputs[a]) for a in sorted(signature.outputs)),
    )


def _meta(alias: str, info: meta_graph_pb2.TensorInfo) -> TensorMeta:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(dim.size for dim in shape.dim)
    # a DataType the gateway has no name for reads as BYTES, as from the REST metadata
    return TensorMeta(name=alias, datatype=DTYPES.get(info.dtype, "BYTES"), shape=dims)


def status_request(name: str, version: int | None) -> get_model_status_pb2.GetModelStatusRequest:
    message = get_model_status_pb2.GetModelStatusRequest()
    message.model_spec.name = name
    if version is not None:
        message.model_spec.version.SetInParent()
        message.model_spec.version.value = version
    return message


def available(message: get_model_status_pb2.GetModelStatusResponse) -> bool:
    """Whether a version the status lists is AVAILABLE (TF lists only the version asked for,
    when one was)."""
    state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return any(entry.state == state for entry in message.model_version_status)
