"""TF Serving's gRPC API (``tensorflow.serving``) as a frontend, so TF Serving's own clients
(``PredictionServiceStub``, ``ModelServiceStub``, tensorflow_model_server's ``--port``) can
point at the gateway, whatever server kind serves the model.

``PredictionService``: Predict, GetModelMetadata, Classify and Regress (``tf.Example`` inputs,
to TF Serving backends as their REST JSON, like the HTTP ``:classify``/``:regress``);
MultiInference is UNIMPLEMENTED. ``ModelService``: GetModelStatus (the reload RPC is not
declared: grpc's own UNIMPLEMENTED). Every RPC is a Call through the lane and the same chains as
HTTP: credentials from ``authorization`` / ``x-api-key`` metadata, the version pinned by
``model_spec.version`` or ``model_spec.version_label`` (the ``pin:<model>`` scope), limits,
the cache shared with HTTP, traffic splits when nothing is pinned.

Versions (``codecs.tf_grpc``): ``"7"`` is 7 both ways; any gateway version can be named by
``version_label``, and one that is not a number is reported that way. A label narrows
GetModelStatus to its version, as TF Serving's REST status does (its gRPC one ignores labels).

Errors the gateway decides itself carry TF Serving's words where TF has some: ``Missing
ModelSpec``, ``ModelSpec has no name specified.``, ``Servable not found for request:
Latest(m)`` / ``Specific(m, v)`` (NOT_FOUND), ``Could not find any versions of model m`` /
``Could not find version v of model m`` (status), ``Unrecognized servable version label: l``
(INVALID_ARGUMENT), the metadata_field checks, ``Input is empty.``. The rest is the lane's
mapping of the gateway's errors (PROTOCOLS.md §5.2), the backend's own text kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar

import grpc

from gateway.call import Call, Reply
from gateway.codecs import tf_examples, tf_grpc
from gateway.codecs.tensors import ModelInfo
from gateway.edge.grpc import Lane, Scope
from gateway.errors import (
    BadGateway,
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    ModelNotFound,
    VersionNotFound,
)
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from gateway.state import State

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
FILES = (prediction_service_pb2.DESCRIPTOR, model_service_pb2.DESCRIPTOR)  # for reflection
Context = grpc.aio.ServicerContext[Any, Any]
Lookup = Literal["servable", "status"]
Answer = TypeVar(
    "Answer", classification_pb2.ClassificationResponse, regression_pb2.RegressionResponse
)


class _Body:
    """A call's body, made from the RPC's message when a step reads it (a call refused earlier
    never builds it)."""

    def __init__(self, make: Callable[[], bytes]) -> None:
        self._make = make
        self._body: bytes | None = None

    async def read(self) -> bytes:
        if self._body is None:
            self._body = self._make()
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        yield await self.read()

    @property
    def length(self) -> int | None:
        return None


class _Frontend:
    def __init__(self, state: State, lane: Lane) -> None:
        self.state = state
        self.lane = lane
        self.limit = state.settings.max_body_bytes

    async def run(self, scope: Scope, call: Call, spec: tf_grpc.Spec, lookup: Lookup) -> Reply:
        runtime = self.state.reloader.current
        scope.models = runtime.table.models
        try:
            reply = await runtime.chains[call.kind](call)
        except (ModelNotFound, VersionNotFound) as exc:
            raise _not_found(exc, spec, lookup) from None
        self.lane.answered(scope, reply)
        return reply


def _not_found(exc: GatewayError, spec: tf_grpc.Spec, lookup: Lookup) -> GatewayError:
    """The gateway's 404 for a model or version it does not serve, in TF Serving's words
    (``ServerCore::GetServableHandle``, ``GetModelStatusImpl``)."""
    model, pin = spec.model, spec.pin
    if spec.label:
        return BadRequest(f"Unrecognized servable version label: {pin}", headers=exc.headers)
    if lookup == "status":
        text = (
            f"Could not find any versions of model {model}"
            if pin is None
            else f"Could not find version {pin} of model {model}"
        )
    else:
        request = f"Latest({model})" if pin is None else f"Specific({model}, {pin})"
        text = f"Servable not found for request: {request}"
    return type(exc)(text, headers=exc.headers)


def _info(reply: Reply) -> ModelInfo:
    if reply.info is None:
        raise BadGateway("the call produced no model description")
    return reply.info


class PredictionGRPC(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, state: State, lane: Lane) -> None:
        self.front = _Frontend(state, lane)

    async def Predict(  # noqa: N802 (the RPC's name)
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        front = self.front

        async def work(scope: Scope) -> predict_pb2.PredictResponse:
            spec = tf_grpc.read_spec(request.HasField("model_spec"), request.model_spec)
            call = scope.new_call("infer", spec.model, spec.pin)
            call.source = lambda: tf_grpc.decode_predict(request, front.limit)
            reply = await front.run(scope, call, spec, "servable")
            response, resolved = reply.tensors(), call.resolved
            if response is None or resolved is None:
                raise BadGateway("the call produced no tensors")
            return tf_grpc.encode_predict(
                response, resolved.model, resolved.version, spec.signature_name,
                request.output_filter,
            )  # fmt: skip

        return await front.lane.rpc(
            context, f"/{PREDICTION_SERVICE}/Predict", work, request=request
        )

    async def GetModelMetadata(  # noqa: N802
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        front = self.front

        async def work(scope: Scope) -> get_model_metadata_pb2.GetModelMetadataResponse:
            # GetModelMetadataImpl's order: the spec, the fields asked for, then the servable
            if not request.HasField("model_spec"):
                raise BadRequest("Missing ModelSpec")
            tf_grpc.check_metadata_fields(request.metadata_field)
            spec = tf_grpc.read_spec(True, request.model_spec)
            call = scope.new_call("metadata", spec.model, spec.pin)
            return tf_grpc.encode_metadata(_info(await front.run(scope, call, spec, "servable")))

        return await front.lane.rpc(
            context, f"/{PREDICTION_SERVICE}/GetModelMetadata", work, request=request
        )

    async def Classify(  # noqa: N802
        self, request: classification_pb2.ClassificationRequest, context: Context
    ) -> classification_pb2.ClassificationResponse:
        message = classification_pb2.ClassificationResponse()

        def fill(body: bytes) -> None:
            tf_examples.fill_classification(message.result, body)

        return await self._examples(request, context, "classify", message, fill)

    async def Regress(  # noqa: N802
        self, request: regression_pb2.RegressionRequest, context: Context
    ) -> regression_pb2.RegressionResponse:
        message = regression_pb2.RegressionResponse()

        def fill(body: bytes) -> None:
            tf_examples.fill_regression(message.result, body)

        return await self._examples(request, context, "regress", message, fill)

    async def _examples(
        self,
        request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
        context: Context,
        kind: Literal["classify", "regress"],
        message: Answer,
        fill: Callable[[bytes], None],
    ) -> Answer:
        """The examples as TF Serving REST JSON through the call's chain; its answer back."""
        front = self.front

        async def work(scope: Scope) -> Answer:
            spec = tf_grpc.read_spec(request.HasField("model_spec"), request.model_spec)
            call = scope.new_call(kind, spec.model, spec.pin)
            source = request.input
            call.payload = _Body(lambda: tf_examples.examples_body(source, spec.signature_name))
            reply = await front.run(scope, call, spec, "servable")
            resolved = call.resolved
            if reply.body is None or resolved is None:
                raise BadGateway("the call produced no answer")
            fill(reply.body)
            tf_grpc.fill_spec(
                message.model_spec, resolved.model, resolved.version, spec.signature_name
            )
            return message

        rpc = "Classify" if kind == "classify" else "Regress"
        return await front.lane.rpc(context, f"/{PREDICTION_SERVICE}/{rpc}", work, request=request)

    async def MultiInference(self, request: Any, context: Context) -> Any:  # noqa: N802
        async def work(scope: Scope) -> Any:
            raise MethodNotAllowed(  # 405: UNIMPLEMENTED, observed like every other RPC
                "MultiInference is not served by the gateway: send one Classify or Regress per task"
            )

        return await self.front.lane.rpc(
            context, f"/{PREDICTION_SERVICE}/MultiInference", work, request=request
        )


class ModelGRPC(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: model status."""

    def __init__(self, state: State, lane: Lane) -> None:
        self.front = _Frontend(state, lane)

    async def GetModelStatus(  # noqa: N802
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        front = self.front

        async def work(scope: Scope) -> get_model_status_pb2.GetModelStatusResponse:
            # GetModelStatusImpl looks an unnamed model up like any other: not found
            spec = tf_grpc.read_spec(
                request.HasField("model_spec"), request.model_spec, named=False
            )
            call = scope.new_call("status", spec.model, spec.pin)
            return tf_grpc.encode_status(_info(await front.run(scope, call, spec, "status")))

        return await front.lane.rpc(
            context, f"/{MODEL_SERVICE}/GetModelStatus", work, request=request
        )


def servicers(state: State, lane: Lane) -> list[tuple[Any, Any, str]]:
    return [
        (
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
            PredictionGRPC(state, lane),
            PREDICTION_SERVICE,
        ),
        (
            model_service_pb2_grpc.add_ModelServiceServicer_to_server,
            ModelGRPC(state, lane),
            MODEL_SERVICE,
        ),
    ]
