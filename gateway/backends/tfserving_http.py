"""TensorFlow Serving over HTTP (its REST API, PROTOCOLS.md §4): ``:predict`` (rows or
columns, as the call came), ``:classify``/``:regress`` (the caller's JSON as it came), model
status for readiness and the ``/metadata`` document for signatures. Outputs and signature
entries come in alias order, as over gRPC (``tfserving_grpc``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.backends.adapter import ExampleMethod
from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.upstream import Target, raise_for_status, require_json_object
from gateway.codecs.tensors import (
    InferenceRequest,
    InferenceResponse,
    Signature,
    Tensor,
    TensorMeta,
)
from gateway.codecs.v1 import DTYPES, decode_response, encode_request
from gateway.errors import BadGateway

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class TFServingREST:
    """The REST API of one backend's replicas."""

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    @staticmethod
    def _path(target: Target) -> str:
        path = f"/v1/models/{quote(target.name, safe='')}"
        if target.native_version is not None:
            path += f"/versions/{quote(target.native_version, safe='')}"
        return path

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        named = signature is not None or request.typed
        body = encode_request(request, columnar=request.columnar, named=named)
        reply = await self.pool.request(
            "POST", self._path(target) + ":predict", key=target.key, body=body, headers=_JSON
        )
        raise_for_status(reply)
        response = decode_response(reply.body, signature)
        response.outputs.sort(key=_name)  # in alias order, as over gRPC (JSON keeps TF's map order)
        return response

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        """The caller's JSON as it came: TF Serving reads and checks it (PROTOCOLS.md §4.4)."""
        reply = await self.pool.request(
            "POST", f"{self._path(target)}:{method}", key=target.key, body=body, headers=_JSON
        )
        raise_for_status(reply)
        return reply.body

    async def metadata(self, target: Target) -> Signature:
        reply = await self.pool.request(
            "GET", self._path(target) + "/metadata", key=target.key, headers=_JSON
        )
        raise_for_status(reply)
        return parse_signature(require_json_object(reply, "metadata"))

    async def probe(self, replica: Replica, target: Target) -> bool:
        async with self.pool.get(replica.url + self._path(target)) as response:
            if response.status != 200:
                return False
            status = await response.json(content_type=None)
        versions = status.get("model_version_status") if isinstance(status, dict) else None
        return isinstance(versions, list) and any(
            isinstance(v, dict) and v.get("state") == "AVAILABLE" for v in versions
        )

    async def server_ready(self, replica: Replica) -> bool:
        """The REST handler answers: ``GET /v1/models`` is its 400 "Missing model name in
        request." (``http_rest_api_handler.cc``), at once and without touching a model; a 5xx
        (a proxy in front saying it has no server) is not."""
        async with self.pool.get(replica.url + "/v1/models") as response:
            await response.read()
            return response.status < 500


def parse_signature(metadata: dict[str, Any], name: str = "serving_default") -> Signature:
    """``metadata.signature_def.signature_def[name]`` (nested twice; dim sizes are strings),
    inputs and outputs in alias order: TF writes its maps in no defined order, and the gRPC
    wire reads them in alias order too."""
    try:
        signature = metadata["metadata"]["signature_def"]["signature_def"][name]
        inputs, outputs = signature.get("inputs", {}), signature.get("outputs", {})
        return Signature(
            inputs=tuple(_meta(k, inputs[k]) for k in sorted(inputs)),
            outputs=tuple(_meta(k, outputs[k]) for k in sorted(outputs)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadGateway(f"TF Serving metadata without signature {name!r}") from exc


def _name(tensor: Tensor) -> str:
    return tensor.name


def _meta(name: str, info: dict[str, Any]) -> TensorMeta:
    shape_info = info.get("tensor_shape", {})
    shape = None
    if not shape_info.get("unknown_rank", False):
        shape = tuple(int(d["size"]) for d in shape_info.get("dim", []))
    return TensorMeta(name=name, datatype=DTYPES.get(info.get("dtype", ""), "BYTES"), shape=shape)
