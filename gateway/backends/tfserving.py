"""TensorFlow Serving REST: ``:predict``, model status and signature metadata."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target, raise_for_status, require_json_object
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature, TensorMeta
from gateway.codecs.v1 import DTYPES, decode_response, encode_request
from gateway.errors import BadGateway

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class TFServingSpec(BackendSpec):
    kind: Literal["tfserving"]


class TFServingBackend:
    kind: ClassVar[str] = "tfserving"
    spec: ClassVar[type[BackendSpec]] = TFServingSpec
    serves_models: ClassVar[bool] = True

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
        return decode_response(reply.body, signature)

    async def metadata(self, target: Target) -> Signature | None:
        if target.declared is not None:
            return target.declared
        reply = await self.pool.request(
            "GET", self._path(target) + "/metadata", key=target.key, headers=_JSON
        )
        raise_for_status(reply)
        return parse_signature(require_json_object(reply, "metadata"))

    async def probe(self, replica: Replica, target: Target) -> bool:
        async with self.pool.session.get(replica.url + self._path(target)) as response:
            if response.status != 200:
                return False
            status = await response.json(content_type=None)
        versions = status.get("model_version_status") if isinstance(status, dict) else None
        return isinstance(versions, list) and any(
            isinstance(v, dict) and v.get("state") == "AVAILABLE" for v in versions
        )


def parse_signature(metadata: dict[str, Any], name: str = "serving_default") -> Signature:
    """``metadata.signature_def.signature_def[name]`` (nested twice; dim sizes are strings)."""
    try:
        signature = metadata["metadata"]["signature_def"]["signature_def"][name]
        return Signature(
            inputs=tuple(_meta(k, v) for k, v in signature.get("inputs", {}).items()),
            outputs=tuple(_meta(k, v) for k, v in signature.get("outputs", {}).items()),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadGateway(f"TF Serving metadata without signature {name!r}") from exc


def _meta(name: str, info: dict[str, Any]) -> TensorMeta:
    shape_info = info.get("tensor_shape", {})
    shape = None
    if not shape_info.get("unknown_rank", False):
        shape = tuple(int(d["size"]) for d in shape_info.get("dim", []))
    return TensorMeta(name=name, datatype=DTYPES.get(info.get("dtype", ""), "BYTES"), shape=shape)
