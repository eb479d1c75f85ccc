"""Open Inference Protocol (KServe v2) servers: Triton, MLServer and other v2 servers.

Their differences stay here: MLServer lists ``versions: []`` in metadata and answers errors in
FastAPI's ``{"detail": ...}`` shape; Triton answers 400 (not 404) for an unknown model's
``/ready``. The adapter reads readiness per model version, never the server-wide
``/v2/health/ready`` (strict: one failed model would take every model's traffic away).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target, raise_for_status, require_json_object
from gateway.codecs.tensors import (
    DATATYPES,
    InferenceRequest,
    InferenceResponse,
    Signature,
    TensorMeta,
)
from gateway.codecs.v2 import decode_response, encode_request
from gateway.errors import BadGateway

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class KServeSpec(BackendSpec):
    kind: Literal["kserve"]


class TritonSpec(BackendSpec):
    kind: Literal["triton"]


class KServeBackend:
    kind: ClassVar[str] = "kserve"
    spec: ClassVar[type[BackendSpec]] = KServeSpec
    serves_models: ClassVar[bool] = True

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    @staticmethod
    def _path(target: Target) -> str:
        path = f"/v2/models/{quote(target.name, safe='')}"
        if target.native_version is not None:
            path += f"/versions/{quote(target.native_version, safe='')}"
        return path

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        # A v2 client's body is already what the server wants: forward it untouched.
        body = request.v2_json if request.v2_json is not None else encode_request(request)
        reply = await self.pool.request(
            "POST", self._path(target) + "/infer", key=target.key, body=body, headers=_JSON
        )
        raise_for_status(reply)
        return decode_response(reply.body)

    async def metadata(self, target: Target) -> Signature | None:
        if target.declared is not None:
            return target.declared
        reply = await self.pool.request("GET", self._path(target), key=target.key, headers=_JSON)
        raise_for_status(reply)
        return parse_metadata(require_json_object(reply, "metadata"))

    async def probe(self, replica: Replica, target: Target) -> bool:
        async with self.pool.session.get(replica.url + self._path(target) + "/ready") as response:
            await response.read()
            return response.status == 200


class TritonBackend(KServeBackend):
    kind: ClassVar[str] = "triton"
    spec: ClassVar[type[BackendSpec]] = TritonSpec


def parse_metadata(obj: dict[str, Any]) -> Signature:
    try:
        return Signature(
            inputs=tuple(_meta(t) for t in obj.get("inputs", [])),
            outputs=tuple(_meta(t) for t in obj.get("outputs", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadGateway("the model server's metadata has malformed inputs/outputs") from exc


def _meta(tensor: dict[str, Any]) -> TensorMeta:
    datatype = tensor["datatype"]
    if datatype not in DATATYPES:
        raise ValueError(datatype)
    return TensorMeta(
        name=str(tensor["name"]), datatype=datatype, shape=tuple(int(d) for d in tensor["shape"])
    )
