"""The gRPC face of the TensorFlow Serving double: ``tensorflow.serving.PredictionService`` and
``ModelService`` (the ``--port`` of tensorflow_model_server), over the REST double's models.

``python -m tests.doubles.tfserving --grpc-port N`` serves it from the same process and event
loop as the REST port (a grpc.aio server started and stopped by the ASGI lifespan), with the
message limits raised to INT32_MAX as ``model_servers/server.cc`` does. The models, the model
states and the ``/__double__/`` knobs are the REST double's: a fault (``fail``) answers a gRPC call
with the canonical code of its HTTP status (or its ``code``), ``delay`` holds gRPC calls too
(there is no server-side timeout over gRPC: the client's deadline ends the call), and
``stats`` counts gRPC calls with ``by_status`` keyed by the code name (``"OK"``,
``"NOT_FOUND"``; ``"CANCELLED"`` for a call its client gave up on) and ``by_face["grpc"]``.
Both knobs take ``"face": "rest"|"grpc"`` to apply to one face only.

What it reproduces (tensorflow/serving at 9d981c5c)
---------------------------------------------------
* ``Predict`` (``predict_impl.cc``, ``predict_util.cc``; TF's ``saved_model/util.cc``
  GetInputValues, ``Tensor::FromProto``, ``FunctionCallFrame::SetArgs``): ``Missing ModelSpec``;
  ServerCore's ``ModelSpec has no name specified.``, ``Unrecognized servable version label: l``
  and ``Servable not found for request: Latest(m)|Specific(m, v)``; FAILED_PRECONDITION
  ``Serving signature key "s" not found.``; the response's ``model_spec`` is name, signature name
  (``serving_default`` when none was given) and the version served; ``input size does not match
  signature: ...``, ``Signature input alias: ...``, ``tensor parsing error: <alias>``, ``output
  tensor alias not found in signature: ...``, ``duplicate output tensor alias: ...`` and
  ``Expects arg[i] to be float but double is provided``, then the model's own errors (the REST
  double's). Inputs are fed in alias order, so ``arg[i]`` counts sorted aliases (protobuf map
  order in TF). Tensors: ``tensor_content`` (little-endian, row-major; DT_STRING as varint32
  lengths then the bytes) or the typed ``*_val`` field of the dtype (any other field is
  ignored): no values give zeros, fewer values than the shape repeat the last one (one value
  fills the shape), more are cut. Outputs are written as ``*_val`` fields (``AsProtoField``),
  or as ``tensor_content`` with ``--enable-serialization-as-tensor-content``.
* ``GetModelMetadata`` (``get_model_metadata_impl.cc``): ``metadata_field`` must be
  ``["signature_def"]`` (``GetModelMetadataRequest must specify at least one metadata_field``,
  ``Metadata field f is not supported``, both checked before the model); the answer packs a
  ``SignatureDefMap`` in an Any under ``"signature_def"``, with ``model_spec`` name and version.
* ``GetModelStatus`` (``get_model_status_impl.cc``): a ``version`` lists that version
  (``Could not find version v of model m``), anything else, a label included, lists every
  version newest first (``Could not find any versions of model m``).
* Errors are the gRPC status of the TF status (same code), the message cut after 1024 bytes
  with ``...TRUNCATED`` appended (``grpc_status_util.cc``).
* ``Classify`` and ``Regress`` (``classification_service.cc``, ``regression_service.cc``,
  ``classifier.cc``, ``regressor.cc``): ``Missing ModelSpec``, the servable as for Predict, then
  the REST face's signature checks and model (``run_examples``); ``Input is empty.`` for an
  input without examples; a context's features join every example, the example's own winning.
  The result is one ``Classifications`` per example (labels ``""``, as the REST face writes
  them) or one ``Regression`` value per example, with ``model_spec`` name, signature name and
  version, as ``MakeModelSpec`` fills it.
* ``MultiInference`` is not modelled: UNIMPLEMENTED ``MultiInference is not modelled by the TF
  Serving double``; ``HandleReloadConfigRequest`` is not declared (UNIMPLEMENTED, grpc's
  ``Method not found!``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, cast

import grpc
import numpy as np

from gateway.protos.tensorflow.core.example import example_pb2
from gateway.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from gateway.protos.tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tests.doubles.tfserving import (
    _PARSE_NODE,
    DEFAULT_SIGNATURE,
    Array,
    Feature,
    Features,
    ModelInfo,
    RestApiHandler,
    Servable,
    Tensors,
    TFError,
    TFServingDouble,
    invalid,
    run_examples,
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

MAX_MESSAGE_LENGTH: Final = 2**31 - 1  # model_servers/server.cc: INT32_MAX both ways
_MESSAGE_LIMIT: Final = 1024  # grpc_status_util.cc kErrorMessageLimit
_MAX_DIMS: Final = 254  # TensorShape::MaxDimensions()
_MAX_BYTES: Final = 1 << 30  # a larger tensor fails to allocate here: "tensor parsing error"
_INT64_MAX: Final = 2**63 - 1

DataType = types_pb2.DataType


def dt(name: str) -> DataType:
    """The DataType named ``name`` ("DT_FLOAT")."""
    return cast(DataType, types_pb2.DataType.Value(name))


# dtype -> (numpy dtype of the elements, the TensorProto field of its typed values)
_NUMERIC: Final[Mapping[DataType, tuple[Any, str]]] = {
    dt("DT_FLOAT"): (np.float32, "float_val"),
    dt("DT_DOUBLE"): (np.float64, "double_val"),
    dt("DT_INT32"): (np.int32, "int_val"),
    dt("DT_UINT8"): (np.uint8, "int_val"),
    dt("DT_INT16"): (np.int16, "int_val"),
    dt("DT_INT8"): (np.int8, "int_val"),
    dt("DT_UINT16"): (np.uint16, "int_val"),
    dt("DT_QINT8"): (np.int8, "int_val"),
    dt("DT_QUINT8"): (np.uint8, "int_val"),
    dt("DT_QINT16"): (np.int16, "int_val"),
    dt("DT_QUINT16"): (np.uint16, "int_val"),
    dt("DT_QINT32"): (np.int32, "int_val"),
    dt("DT_INT64"): (np.int64, "int64_val"),
    dt("DT_BOOL"): (np.bool_, "bool_val"),
    dt("DT_UINT32"): (np.uint32, "uint32_val"),
    dt("DT_UINT64"): (np.uint64, "uint64_val"),
    dt("DT_HALF"): (np.float16, "half_val"),
    dt("DT_BFLOAT16"): (np.uint16, "half_val"),  # kept as its bit patterns
    dt("DT_COMPLEX64"): (np.complex64, "scomplex_val"),
    dt("DT_COMPLEX128"): (np.complex128, "dcomplex_val"),
}
DT_STRING: Final = dt("DT_STRING")
# Types Tensor::FromProto accepts but the double cannot hold: no model takes them, so they only
# reach the type check of the feeds.
_OPAQUE: Final = frozenset(
    dt(name)
    for name in (
        "DT_RESOURCE",
        "DT_VARIANT",
        "DT_FLOAT8_E5M2",
        "DT_FLOAT8_E4M3FN",
        "DT_FLOAT8_E4M3FNUZ",
        "DT_FLOAT8_E4M3B11FNUZ",
        "DT_FLOAT8_E5M2FNUZ",
        "DT_INT4",
        "DT_UINT4",
    )
)
_OUTPUT_DTYPE: Final[Mapping[Any, DataType]] = {
    np.dtype(np.float32): dt("DT_FLOAT"),
    np.dtype(np.float64): dt("DT_DOUBLE"),
    np.dtype(np.int32): dt("DT_INT32"),
    np.dtype(np.int64): dt("DT_INT64"),
    np.dtype(np.bool_): dt("DT_BOOL"),
    np.dtype(object): DT_STRING,
}


def type_string(dtype: DataType) -> str:
    """DataTypeString: DT_FLOAT -> "float"."""
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


class _Opaque:
    """A tensor of a type the double does not decode; only its dtype is used."""

    def __init__(self, dtype: DataType) -> None:
        self.dtype = dtype


Fed = Array | _Opaque


# --------------------------------------------------------------------------------------------
# TensorProto <-> numpy (tensor.cc)
# --------------------------------------------------------------------------------------------


def _shape_of(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    """TensorShape::IsValid (a full shape: unknown_rank is ignored, no dim below 0)."""
    if len(proto.dim) > _MAX_DIMS:
        return None
    count = 1
    for dim in proto.dim:
        if dim.size < 0:
            return None
        count *= dim.size
        if count > _INT64_MAX:
            return None
    return tuple(dim.size for dim in proto.dim)


def _varint32(data: bytes, pos: int) -> tuple[int, int] | None:
    value = 0
    for shift in range(0, 35, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value, pos) if value < 2**32 else None
    return None


def _decode_strings(content: bytes, count: int) -> list[bytes] | None:
    """port::DecodeStringList: ``count`` varint32 sizes, then exactly that many bytes."""
    sizes: list[int] = []
    pos = 0
    for _ in range(count):
        read = _varint32(content, pos)
        if read is None:
            return None
        size, pos = read
        sizes.append(size)
    if len(content) - pos != sum(sizes):
        return None
    out: list[bytes] = []
    for size in sizes:
        out.append(content[pos : pos + size])
        pos += size
    return out


def _fill(values: list[Any], count: int, default: Any) -> list[Any]:
    """FromProtoField: no values give defaults; fewer repeat the last one; more are cut."""
    if not values:
        return [default] * count
    if len(values) >= count:
        return values[:count]
    return values + [values[-1]] * (count - len(values))


def tensor_from_proto(proto: tensor_pb2.TensorProto) -> Fed | None:
    """Tensor::FromProto; None where it returns false (``tensor parsing error``)."""
    shape = _shape_of(proto.tensor_shape)
    dtype = proto.dtype
    if shape is None or dtype == dt("DT_INVALID"):
        return None
    if dtype not in _NUMERIC and dtype != DT_STRING and dtype not in _OPAQUE:
        return None  # CASES_WITH_DEFAULT: an unknown or reference type
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if dtype in _OPAQUE:
        return _Opaque(dtype)
    if dtype == DT_STRING:
        strings: list[bytes] | None
        if count * 8 > _MAX_BYTES:
            return None
        if count == 0:
            strings = []
        elif proto.tensor_content:
            strings = _decode_strings(proto.tensor_content, count)
        else:
            strings = _fill(list(proto.string_val), count, b"")
        if strings is None:
            return None
        array = np.empty(count, dtype=object)
        array[:] = strings
        return array.reshape(shape)
    np_type, field_name = _NUMERIC[dtype]
    item = np.dtype(np_type)
    if count * item.itemsize > _MAX_BYTES:
        return None
    if count == 0:
        return np.zeros(shape, dtype=item)
    if proto.tensor_content:
        if len(proto.tensor_content) != count * item.itemsize:
            return None
        return np.frombuffer(proto.tensor_content, dtype=item.newbyteorder("<")).reshape(shape)
    values: list[Any] = list(getattr(proto, field_name))
    if item.kind == "c":  # (real, imaginary) pairs
        values = [complex(r, i) for r, i in zip(values[0::2], values[1::2], strict=False)]
    filled = _fill(values, count, 0)
    with np.errstate(all="ignore"):
        if field_name == "half_val" and item == np.float16:
            bits = np.asarray(filled, dtype=np.int64).astype(np.uint16)
            return bits.view(np.float16).reshape(shape)
        return np.asarray(filled).astype(item).reshape(shape)


def tensor_to_proto(array: Array, *, as_content: bool) -> tensor_pb2.TensorProto:
    """Tensor::AsProtoField (every element, no compression) or AsProtoTensorContent."""
    dtype = _OUTPUT_DTYPE[array.dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    flat = array.reshape(-1)
    if dtype == DT_STRING:
        items = [bytes(v) for v in flat]
        if as_content:
            proto.tensor_content = b"".join([*(_varint_bytes(len(v)) for v in items), *items])
        else:
            proto.string_val.extend(items)
    elif as_content:
        proto.tensor_content = flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    else:
        getattr(proto, _NUMERIC[dtype][1]).extend(flat.tolist())
    return proto


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# --------------------------------------------------------------------------------------------
# The RPCs, over the REST double's RestApiHandler
# --------------------------------------------------------------------------------------------


def servable_for(handler: RestApiHandler, spec: model_pb2.ModelSpec) -> Servable:
    """ServerCore::GetServableHandle(ModelSpec)."""
    if not spec.name:
        raise invalid("ModelSpec has no name specified.")
    choice = spec.WhichOneof("version_choice")
    info = ModelInfo(
        parsed=True,
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
    )
    return handler.servable(info)


def _keys(names: Any) -> str:
    return ",".join(sorted(names))


def predict(
    handler: RestApiHandler, request: predict_pb2.PredictRequest, *, as_content: bool = False
) -> predict_pb2.PredictResponse:
    """TensorflowPredictor::Predict -> internal::RunPredict."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    servable = servable_for(handler, request.model_spec)
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    sig = servable.signatures.get(signature_name)
    if sig is None:
        raise TFError("FAILED_PRECONDITION", f'Serving signature key "{signature_name}" not found.')
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = signature_name
    response.model_spec.version.value = servable.version

    # PreProcessPrediction: VerifyRequestInputsSize (the double's signatures have no defaults)
    sent, wanted = set(request.inputs), set(sig.inputs)
    if len(sent) != len(wanted):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{_keys(sent)}}}) != len({{{_keys(wanted)}}}). "
            f"Sent extra: {{{_keys(sent - wanted)}}}. "
            f"Missing but required: {{{_keys(wanted - sent)}}}."
        )
    # saved_model::GetInputValues
    aliases = sorted(sig.inputs)
    fed: dict[str, Fed] = {}
    for alias in aliases:
        if alias not in request.inputs:
            raise invalid(
                f"Signature input alias: {alias}(feed name: {sig.inputs[alias].name}) not found "
                f"in request and no default value provided. Inputs expected to be in the request "
                f"{{{_keys(sent)}}}, or default input alias set: "
            )
        tensor = tensor_from_proto(request.inputs[alias])
        if tensor is None:
            raise invalid(f"tensor parsing error: {alias}")
        fed[alias] = tensor
    # the output filter
    names: list[str] = []
    for alias in request.output_filter:
        if alias not in sig.outputs:
            raise invalid(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{_keys(sig.outputs)}}}."
            )
        if alias in names:
            raise invalid(f"duplicate output tensor alias: {alias}")
        names.append(alias)
    names = names or sorted(sig.outputs)
    # Session::Run: the call frame checks the feeds' types, then the graph runs
    for index, alias in enumerate(aliases):
        expected = dt(sig.inputs[alias].dtype)
        got = request.inputs[alias].dtype
        if got != expected:
            raise invalid(
                f"Expects arg[{index}] to be {type_string(expected)} but "
                f"{type_string(got)} is provided"
            )
    tensors: Tensors = {alias: t for alias, t in fed.items() if not isinstance(t, _Opaque)}
    if sig.predict is None:
        # As on the REST face: serialized tf.Example input is not decoded.
        first = next(iter(tensors.values())).reshape(-1)
        shown = first[0].decode("utf-8", "replace") if first.size else ""
        raise invalid(f"Could not parse example input, value: '{shown}'{_PARSE_NODE}")
    outputs = sig.predict(tensors)
    for alias in names:
        response.outputs[alias].CopyFrom(tensor_to_proto(outputs[alias], as_content=as_content))
    return response


METADATA_SIGNATURE_DEF: Final = "signature_def"


def get_model_metadata(
    handler: RestApiHandler, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataImpl::GetModelMetadata (SavedModel bundles)."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for name in request.metadata_field:
        if name != METADATA_SIGNATURE_DEF:
            raise invalid(f"Metadata field {name} is not supported")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    for _ in request.metadata_field:
        servable = servable_for(handler, request.model_spec)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signatures.items():
            out = signature_defs.signature_def[key]
            out.method_name = sig.method_name
            for target, infos in ((out.inputs, sig.inputs), (out.outputs, sig.outputs)):
                for alias, info in infos.items():
                    entry: meta_graph_pb2.TensorInfo = target[alias]
                    entry.name = info.name
                    entry.dtype = dt(info.dtype)
                    if info.shape is None:
                        entry.tensor_shape.unknown_rank = True
                    else:
                        for size in info.shape:
                            entry.tensor_shape.dim.add(size=size)
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[METADATA_SIGNATURE_DEF].Pack(signature_defs)
    return response


def _features(example: example_pb2.Example) -> Features:
    out: Features = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is None:
            out[name] = Feature()
        else:
            out[name] = Feature(kind.removesuffix("_list"), list(getattr(feature, kind).value))
    return out


def examples_from_input(source: input_pb2.Input) -> list[Features]:
    """InputToSerializedExampleTensor, parsed: each example, after the context's features."""
    kind = source.WhichOneof("kind")
    if kind == "example_list":
        examples = [_features(e) for e in source.example_list.examples]
    elif kind == "example_list_with_context":
        listed = source.example_list_with_context
        context = _features(listed.context)
        examples = [{**context, **_features(e)} for e in listed.examples]
    else:
        examples = []
    if not examples:
        raise invalid("Input is empty.")
    return examples


def classify(
    handler: RestApiHandler, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    """TensorflowClassificationServiceImpl::Classify -> RunClassify."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    servable = servable_for(handler, request.model_spec)
    name, scores = run_examples(
        servable,
        request.model_spec.signature_name,
        lambda: examples_from_input(request.input),
        classify=True,
    )
    response = classification_pb2.ClassificationResponse()
    _model_spec(response.model_spec, request.model_spec.name, name, servable.version)
    for row in scores:
        classes = response.result.classifications.add()
        for score in row:
            classes.classes.add(label="", score=float(score))
    return response


def regress(
    handler: RestApiHandler, request: regression_pb2.RegressionRequest
) -> regression_pb2.RegressionResponse:
    """TensorflowRegressionServiceImpl::Regress -> RunRegress."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    servable = servable_for(handler, request.model_spec)
    name, values = run_examples(
        servable,
        request.model_spec.signature_name,
        lambda: examples_from_input(request.input),
        classify=False,
    )
    response = regression_pb2.RegressionResponse()
    _model_spec(response.model_spec, request.model_spec.name, name, servable.version)
    for value in values.reshape(-1):
        response.result.regressions.add(value=float(value))
    return response


def _model_spec(spec: model_pb2.ModelSpec, model: str, signature: str, version: int) -> None:
    """MakeModelSpec."""
    spec.name = model
    spec.signature_name = signature
    spec.version.value = version


def get_model_status(
    handler: RestApiHandler, request: get_model_status_pb2.GetModelStatusRequest
) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusImpl::GetModelStatus: only ``version`` narrows (a label does not)."""
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    spec = request.model_spec
    model = handler.models.get(spec.name)
    if spec.HasField("version"):
        version = spec.version.value
        if model is None or version not in model.versions:
            raise TFError("NOT_FOUND", f"Could not find version {version} of model {spec.name}")
        versions = [version]
    else:
        if model is None:
            raise TFError("NOT_FOUND", f"Could not find any versions of model {spec.name}")
        versions = sorted(model.versions, reverse=True)
    response = get_model_status_pb2.GetModelStatusResponse()
    for version in versions:
        state = handler.state_of(spec.name, version)
        entry = response.model_version_status.add(version=version)
        entry.state = cast(
            get_model_status_pb2.ModelVersionStatus.State,
            get_model_status_pb2.ModelVersionStatus.State.Value(state.state),
        )
        entry.status.error_code = cast(
            error_codes_pb2.Code, error_codes_pb2.Code.Value(state.error_code)
        )
        entry.status.error_message = state.error_message
    return response


def grpc_message(message: str) -> str:
    """ToGRPCStatus: the first 1024 bytes, then ``...TRUNCATED``."""
    raw = message.encode("utf-8", "surrogateescape")
    if len(raw) <= _MESSAGE_LIMIT:
        return message
    return raw[:_MESSAGE_LIMIT].decode("utf-8", "ignore") + "...TRUNCATED"


# --------------------------------------------------------------------------------------------
# The servicers and the server, with the double's knobs
# --------------------------------------------------------------------------------------------


class GrpcFace:
    """The gRPC port of one TFServingDouble: its handler, knobs and stats."""

    def __init__(self, double: TFServingDouble, *, tensor_content: bool = False) -> None:
        self.double = double
        self.tensor_content = tensor_content
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def call(
        self,
        route: str,
        model: str,
        context: grpc.aio.ServicerContext[Req, Resp],
        run: Callable[[], Resp],
    ) -> Resp:
        double = self.double
        stats = double.stats
        stats.requests_total += 1
        stats.by_route[route] = stats.by_route.get(route, 0) + 1
        stats.by_face["grpc"] = stats.by_face.get("grpc", 0) + 1
        if model:
            stats.by_model[model] = stats.by_model.get(model, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        code, message = "OK", ""
        try:
            fault = double.take_fault(route, "grpc")
            if fault is not None:
                raise TFError(fault.code, fault.message)
            delay = double.take_delay(route, "grpc")
            if delay is not None:
                await asyncio.sleep(delay)
            return run()
        except TFError as exc:
            code, message = exc.code, exc.message
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            code = "CANCELLED"
            raise
        finally:
            stats.in_flight -= 1
            stats.by_status[code] = stats.by_status.get(code, 0) + 1
        await context.abort(grpc.StatusCode[code], grpc_message(message))

    async def start(self, host: str, port: int) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH),
                ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
            ]
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), server)
        try:
            self.port = server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise OSError(f"gRPC port {host}:{port}: address already in use ({exc})") from exc
        if not self.port:
            raise OSError(f"gRPC port {host}:{port}: address already in use")
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=0.5)
            self.server = None


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, face: GrpcFace) -> None:
        self.face = face

    async def Predict(  # noqa: N802 (the RPC's name)
        self,
        request: predict_pb2.PredictRequest,
        context: grpc.aio.ServicerContext[predict_pb2.PredictRequest, predict_pb2.PredictResponse],
    ) -> predict_pb2.PredictResponse:
        face = self.face
        return await face.call(
            "predict",
            request.model_spec.name,
            context,
            lambda: predict(face.double.handler, request, as_content=face.tensor_content),
        )

    async def GetModelMetadata(  # noqa: N802
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext[
            get_model_metadata_pb2.GetModelMetadataRequest,
            get_model_metadata_pb2.GetModelMetadataResponse,
        ],
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        handler = self.face.double.handler
        return await self.face.call(
            "metadata",
            request.model_spec.name,
            context,
            lambda: get_model_metadata(handler, request),
        )

    async def _not_modelled(self, context: grpc.aio.ServicerContext[Any, Any], rpc: str) -> Any:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f"{rpc} is not modelled by the TF Serving double"
        )

    async def Classify(  # noqa: N802
        self,
        request: classification_pb2.ClassificationRequest,
        context: grpc.aio.ServicerContext[
            classification_pb2.ClassificationRequest, classification_pb2.ClassificationResponse
        ],
    ) -> classification_pb2.ClassificationResponse:
        handler = self.face.double.handler
        return await self.face.call(
            "classify", request.model_spec.name, context, lambda: classify(handler, request)
        )

    async def Regress(  # noqa: N802
        self,
        request: regression_pb2.RegressionRequest,
        context: grpc.aio.ServicerContext[
            regression_pb2.RegressionRequest, regression_pb2.RegressionResponse
        ],
    ) -> regression_pb2.RegressionResponse:
        handler = self.face.double.handler
        return await self.face.call(
            "regress", request.model_spec.name, context, lambda: regress(handler, request)
        )

    async def MultiInference(  # noqa: N802
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        return await self._not_modelled(context, "MultiInference")


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, face: GrpcFace) -> None:
        self.face = face

    async def GetModelStatus(  # noqa: N802
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext[
            get_model_status_pb2.GetModelStatusRequest,
            get_model_status_pb2.GetModelStatusResponse,
        ],
    ) -> get_model_status_pb2.GetModelStatusResponse:
        handler = self.face.double.handler
        return await self.face.call(
            "status", request.model_spec.name, context, lambda: get_model_status(handler, request)
        )


def attach(
    double: TFServingDouble, host: str, port: int, *, tensor_content: bool = False
) -> GrpcFace:
    """Serve ``double``'s gRPC face on ``host:port`` from its ASGI lifespan."""
    face = GrpcFace(double, tensor_content=tensor_content)
    double.on_startup.append(lambda: face.start(host, port))
    double.on_shutdown.append(face.stop)
    return face
