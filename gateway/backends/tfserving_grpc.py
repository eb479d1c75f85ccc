"""TensorFlow Serving over gRPC (``tensorflow.serving``, PROTOCOLS.md §5.3): Predict for
inference, GetModelMetadata for signatures, GetModelStatus for readiness, Classify and Regress
for ``tf.Example`` calls.

A caller gets the answer TF Serving's REST API would have given (``tfserving_http``):

- **Predict**: the inputs by name, numeric ones as their raw bytes in ``tensor_content`` (a
  tensor that came as bytes never becomes Python numbers), strings in ``string_val``; the
  version as its number, or as ``version_label`` when it is not one; the call's
  ``signature_name``. Every output, in alias order; a string output not named ``*_bytes`` as
  text (``codecs.tf_grpc``). A call on another signature than the default one, which the
  terminal does not fit to the default signature, is fitted here as TF's REST layer fits JSON:
  an unnamed tensor named after the signature's one input, untyped (v1 JSON) values given its
  dtypes; that signature comes from GetModelMetadata, remembered for a minute once found.
- **Classify, Regress**: the caller's REST JSON read as TF's REST layer reads it, the result
  written as it writes it (``codecs.tf_examples``); a body it would refuse is a 400.
- **Readiness**: GetModelStatus for the version (the latest, when none is pinned): ready when
  one is AVAILABLE. GetModelStatus ignores labels, so a version pinned by label is ready when
  its metadata resolves (ServerCore finds an available servable for the label).
- **Errors**: TF's codes map to the HTTP statuses its REST API answers with
  (``http_server.cc`` ``ToHTTPStatusCode``: FAILED_PRECONDITION, such as an unknown signature
  key, is a 400 as over REST, not the 422 of other servers), the server's text kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import grpc

from gateway.backends.adapter import ExampleMethod
from gateway.backends.grpc_pool import MAX_MESSAGE, GRPCPool, Method
from gateway.backends.grpc_status import STATUS
from gateway.backends.replica import Replica, TargetKey
from gateway.backends.upstream import Target
from gateway.codecs import tf_examples, tf_grpc
from gateway.codecs.tensors import UNNAMED, InferenceRequest, InferenceResponse, Signature
from gateway.errors import GatewayError, NoHealthyReplica, Overloaded, UpstreamTimeout
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

PREDICTION_SERVICE: Final = "tensorflow.serving.PredictionService"
MODEL_SERVICE: Final = "tensorflow.serving.ModelService"
_CODE = grpc.StatusCode
# TF Serving's REST API answers its codes with these statuses (PROTOCOLS.md §4.2); the 5xx
# among them are the other servers' too (a 502, or 503 for UNAVAILABLE)
TF_STATUS: Final[Mapping[grpc.StatusCode, int]] = {
    **STATUS,
    _CODE.FAILED_PRECONDITION: 400,
    _CODE.CANCELLED: 499,
    _CODE.ALREADY_EXISTS: 409,
    _CODE.ABORTED: 409,
    _CODE.PERMISSION_DENIED: 403,
    _CODE.UNAUTHENTICATED: 401,
}
_SIGNATURE_TTL: Final = 60.0  # as the live backend keeps the default signature
_NO_ANSWER: Final = frozenset({_CODE.UNAVAILABLE, _CODE.DEADLINE_EXCEEDED, _CODE.CANCELLED})


class TFServingGRPC:
    """The gRPC API of one backend's TF Serving replicas."""

    def __init__(self, pool: GRPCPool) -> None:
        self.pool = pool
        predict, service = f"/{PREDICTION_SERVICE}", f"/{MODEL_SERVICE}"
        self._predict = Method(
            f"{predict}/Predict", predict_pb2.PredictResponse.FromString, TF_STATUS
        )
        self._metadata = Method(
            f"{predict}/GetModelMetadata",
            get_model_metadata_pb2.GetModelMetadataResponse.FromString,
            TF_STATUS,
        )
        self._classify = Method(
            f"{predict}/Classify", classification_pb2.ClassificationResponse.FromString, TF_STATUS
        )
        self._regress = Method(
            f"{predict}/Regress", regression_pb2.RegressionResponse.FromString, TF_STATUS
        )
        self._status = Method(
            f"{service}/GetModelStatus",
            get_model_status_pb2.GetModelStatusResponse.FromString,
            TF_STATUS,
        )
        # other signatures than the default one, once found (a name a caller made up is not
        # kept, so this holds the servers' signatures at most)
        self._signatures: dict[tuple[TargetKey, str], tuple[float, Signature]] = {}

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        if signature is None and (
            not request.typed or any(t.name == UNNAMED for t in request.inputs)
        ):
            found = await self._signature(target, request.signature_name)
            if found is not None:
                tf_grpc.fit_inputs(request, found)
        message = tf_grpc.encode_predict_request(request, target.name, target.native_version)
        reply = await self.pool.call(self._predict, message, key=target.key)
        return tf_grpc.decode_predict_response(reply, MAX_MESSAGE)

    async def _signature(self, target: Target, name: str | None) -> Signature | None:
        """Signature ``name`` of the target, None when the server cannot tell (it then judges
        the inputs as they are)."""
        name = name or tf_grpc.DEFAULT_SIGNATURE
        key = (target.key, name)
        cached = self._signatures.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            signature = await self.metadata(target, name)
        except GatewayError as exc:
            if isinstance(exc, NoHealthyReplica | Overloaded | UpstreamTimeout):
                raise  # no replica can answer: Predict would not either
            return None
        self._signatures[key] = (time.monotonic() + _SIGNATURE_TTL, signature)
        return signature

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        if method == "classify":
            classify = classification_pb2.ClassificationRequest()
            name = tf_examples.read_examples(body, classify.input)
            tf_grpc.target_spec(classify.model_spec, target.name, target.native_version, name)
            classified = await self.pool.call(self._classify, classify, key=target.key)
            return tf_examples.classification_json(classified.result)
        regress = regression_pb2.RegressionRequest()
        name = tf_examples.read_examples(body, regress.input)
        tf_grpc.target_spec(regress.model_spec, target.name, target.native_version, name)
        regressed = await self.pool.call(self._regress, regress, key=target.key)
        return tf_examples.regression_json(regressed.result)

    async def metadata(self, target: Target, name: str = tf_grpc.DEFAULT_SIGNATURE) -> Signature:
        message = tf_grpc.metadata_request(target.name, target.native_version)
        reply = await self.pool.call(self._metadata, message, key=target.key)
        return tf_grpc.decode_signature(reply, name)

    async def probe(self, replica: Replica, target: Target) -> bool:
        version = target.native_version
        number = tf_grpc.version_number(version) if version is not None else None
        timeout = self.pool.spec.health.timeout
        try:
            if version is not None and number is None:  # a label
                message = tf_grpc.metadata_request(target.name, version)
                await self.pool.ask(replica, self._metadata, message, timeout)
                return True
            status = tf_grpc.status_request(target.name, number)
            reply = await self.pool.ask(replica, self._status, status, timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False  # unreachable, a version the server does not have, or closed
        return tf_grpc.available(reply)

    async def server_ready(self, replica: Replica) -> bool:
        """The server answers: GetModelStatus without a model spec is refused at once
        (INVALID_ARGUMENT "Missing ModelSpec", ``get_model_status_impl.cc``); no answer
        (UNAVAILABLE, DEADLINE_EXCEEDED) is "down"."""
        message = get_model_status_pb2.GetModelStatusRequest()
        try:
            await self.pool.ask(replica, self._status, message, self.pool.spec.health.timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code() not in _NO_ANSWER
        except grpc.aio.UsageError:
            return False  # closed: a reload retired this pool
        return True
