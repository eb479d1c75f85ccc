"""KServe v2 over gRPC (``inference.GRPCInferenceService``, PROTOCOLS.md §5.1): ModelInfer
with raw contents, ModelMetadata for signatures, ModelReady for readiness per model version;
for the health checks ServerLive and RepositoryIndex (Triton's model repository extension,
which MLServer serves too: every model version's state in one call).

Requests always carry ``raw_input_contents``, so both servers answer raw (Triton always does;
MLServer answers raw to raw and typed to typed); ``v2_grpc.decode_response`` reads either.
Readiness is ModelReady for the version, never the server-wide ServerReady, for the reason the
HTTP side gives (one failed model would take every model's traffic away). MLServer answers
ModelReady for a version it does not have with UNKNOWN (Triton 2.51 with ``ready: false``):
any failed probe is "not ready".
"""

from __future__ import annotations

import grpc

from gateway.backends.grpc_pool import GRPCPool, Method
from gateway.backends.readiness import IndexUnavailable, RepositoryIndex
from gateway.backends.replica import Replica
from gateway.backends.upstream import Target
from gateway.codecs import v2_grpc
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature
from gateway.codecs.v2_proto import SERVICE, messages


class V2GRPC:
    """The v2 gRPC API of one backend's replicas (messages from the gateway's own descriptor
    pool, ``codecs.v2_proto``, so tritonclient or kserve may share the process)."""

    def __init__(self, pool: GRPCPool) -> None:
        self.pool = pool
        self.pb = pb = messages()
        self._infer = Method(f"/{SERVICE}/ModelInfer", pb.ModelInferResponse.FromString)
        self._metadata = Method(f"/{SERVICE}/ModelMetadata", pb.ModelMetadataResponse.FromString)
        self._ready = Method(f"/{SERVICE}/ModelReady", pb.ModelReadyResponse.FromString)
        self._live = Method(f"/{SERVICE}/ServerLive", pb.ServerLiveResponse.FromString)
        self._index = Method(f"/{SERVICE}/RepositoryIndex", pb.RepositoryIndexResponse.FromString)

    async def infer(self, request: InferenceRequest, target: Target) -> InferenceResponse:
        message = v2_grpc.encode_request(request, target.name, target.native_version)
        reply = await self.pool.call(self._infer, message, key=target.key)
        return v2_grpc.decode_response(reply)

    async def metadata(self, target: Target) -> Signature:
        version = target.native_version or ""
        message = self.pb.ModelMetadataRequest(name=target.name, version=version)
        reply = await self.pool.call(self._metadata, message, key=target.key)
        return v2_grpc.decode_metadata(reply)

    async def probe(self, replica: Replica, target: Target) -> bool:
        version = target.native_version or ""
        message = self.pb.ModelReadyRequest(name=target.name, version=version)
        try:
            reply = await self.pool.ask(
                replica, self._ready, message, self.pool.spec.health.timeout
            )
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False  # unreachable, a version the server does not have, or closed
        return bool(reply.ready)

    async def server_ready(self, replica: Replica) -> bool:
        """ServerLive, not ServerReady (false while any one model is not ready)."""
        message = self.pb.ServerLiveRequest()
        try:
            reply = await self.pool.ask(replica, self._live, message, self.pool.spec.health.timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False
        return bool(reply.live)

    async def model_index(self, replica: Replica) -> RepositoryIndex:
        """Every model version in the server's repository, with its state and reason."""
        health = self.pool.spec.health
        within = max(health.timeout, health.interval)
        try:
            reply = await self.pool.ask(
                replica, self._index, self.pb.RepositoryIndexRequest(), within
            )
        except grpc.aio.AioRpcError as exc:
            raise IndexUnavailable(f"RepositoryIndex: {exc.code().name} {exc.details()}") from exc
        except grpc.aio.UsageError as exc:  # closed: a reload retired this pool
            raise IndexUnavailable("RepositoryIndex: the channel is closed") from exc
        return RepositoryIndex.of(
            (m.name, m.version or None, m.state, m.reason) for m in reply.models
        )
