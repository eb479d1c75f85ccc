"""KServe v2 over HTTP (REST): ``/v2/models/{m}[/versions/{v}]/infer``, ``…/ready`` and the
metadata document, JSON or Triton's binary tensor data extension; for the health checks
``/v2/health/live`` and the model repository index (``POST /v2/repository/index``, Triton's
model repository extension, which MLServer serves too).

Toward Triton the binary extension is used where it is cheaper (``binary_data``: when the
tensors are bytes already, so they never become Python numbers); MLServer and other v2 servers
get JSON. Their differences stay here: MLServer lists ``versions: []`` in metadata and answers
errors in FastAPI's ``{"detail": ...}`` shape; Triton answers 400 (not 404) for an unknown
model's ``/ready``. MLServer's index gives each version of a name the state of the name's
default version (``handlers/model_repository.py``: ``get_model(name)``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from gateway.backends.pool import ReplicaPool
from gateway.backends.readiness import IndexUnavailable, RepositoryIndex
from gateway.backends.replica import Replica
from gateway.backends.specs import BinaryMode
from gateway.backends.upstream import Target, raise_for_status, require_json_object
from gateway.codecs import binary
from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature, TensorMeta
from gateway.codecs.v2 import decode_response, encode_request, encode_request_binary
from gateway.errors import BadGateway

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
_BINARY = {"Content-Type": binary.CONTENT_TYPE, "Accept-Encoding": "identity"}

_INDEX = "/v2/repository/index"
_BINARY_HEADER = binary.HEADER.lower().encode()


_KEPT_PATHS = 65536  # infer paths kept per backend (more targets than that: made again)


class V2HTTP:
    """The v2 REST API of one backend's replicas."""

    def __init__(self, pool: ReplicaPool, binary_data: BinaryMode) -> None:
        self.pool = pool
        self.binary_data = binary_data
        # each target's infer path, made once (quoting costs more than the rest of a call's
        # path); as many as the targets this backend serves
        self._infer_paths: dict[tuple[str, str | None], str] = {}

    @staticmethod
    def _path(target: Target) -> str:
        path = f"/v2/models/{quote(target.name, safe='')}"
        if target.native_version is not None:
            path += f"/versions/{quote(target.native_version, safe='')}"
        return path

    async def infer(self, request: InferenceRequest, target: Target) -> InferenceResponse:
        body, length = self._body(request)
        headers = _JSON if length is None else {**_BINARY, binary.HEADER: str(length)}
        paths = self._infer_paths
        path = paths.get(target.key)
        if path is None:
            if len(paths) >= _KEPT_PATHS:  # the targets of past route tables do not pile up
                paths.clear()
            path = paths[target.key] = self._path(target) + "/infer"
        reply = await self.pool.request("POST", path, key=target.key, body=body, headers=headers)
        if reply.status >= 400:
            raise_for_status(reply)
        value = reply.header(_BINARY_HEADER)
        if value is None:
            return decode_response(reply.body)
        return decode_response(reply.body, binary.header_length(value, BadGateway))

    def _body(self, request: InferenceRequest) -> tuple[bytes, int | None]:
        """What to send: a v2 client's body as it came when this server reads that form (no
        decoding, no encoding), else the tensors encoded as the backend's ``binary_data``
        says (binary where the values are bytes already, or always), else as JSON."""
        mode = self.binary_data
        sent = request.v2_body
        if sent is not None:
            length = request.v2_header_length
            asks_binary = binary.wanted_outputs(request) is not None
            if mode != "never" or (length is None and not asks_binary):
                return sent, length
        if mode == "always" or (mode == "auto" and any(t.has_raw for t in request.inputs)):
            return encode_request_binary(request, binary_outputs=True)
        return encode_request(request), None

    async def metadata(self, target: Target) -> Signature:
        reply = await self.pool.request("GET", self._path(target), key=target.key, headers=_JSON)
        raise_for_status(reply)
        return parse_metadata(require_json_object(reply, "metadata"))

    async def probe(self, replica: Replica, target: Target) -> bool:
        async with self.pool.get(replica.url + self._path(target) + "/ready") as response:
            await response.read()
            return response.status == 200

    async def server_ready(self, replica: Replica) -> bool:
        """Live, not ready: ``/v2/health/ready`` is false while any one model is not ready
        (Triton's strict readiness, MLServer's ``all(models ready)``)."""
        async with self.pool.get(replica.url + "/v2/health/live") as response:
            await response.read()
            return response.status == 200

    async def model_index(self, replica: Replica) -> RepositoryIndex:
        """Every model version in the server's repository, with its state and reason."""
        async with self.pool.post(replica.url + _INDEX, b"{}", _JSON) as response:
            body = await response.read()
            status = response.status
        if status != 200:
            raise IndexUnavailable(f"{_INDEX} answered {status}")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IndexUnavailable(f"{_INDEX} answered with something else than JSON") from exc
        return RepositoryIndex.from_json(document)


def parse_metadata(obj: dict[str, Any]) -> Signature:
    try:
        return Signature(
            inputs=tuple(_meta(t) for t in obj.get("inputs", [])),
            outputs=tuple(_meta(t) for t in obj.get("outputs", [])),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # not the v2 shape at all
        raise BadGateway("the model server's metadata has malformed inputs/outputs") from exc


def _meta(tensor: dict[str, Any]) -> TensorMeta:
    datatype = tensor["datatype"]
    if datatype not in DATATYPES:
        raise ValueError(datatype)
    return TensorMeta(
        name=str(tensor["name"]), datatype=datatype, shape=tuple(int(d) for d in tensor["shape"])
    )
