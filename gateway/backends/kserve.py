"""Open Inference Protocol (KServe v2) servers: Triton, MLServer and other v2 servers, over
HTTP (``kserve_http``) or gRPC (``kserve_grpc``), as the backend's ``protocol`` says.

The adapter reads readiness per model version, never the server-wide ready check (strict: one
failed model would take every model's traffic away): every model version at once from the
repository index, one version from its ready check. The wire is chosen once, from the pool
the backend's protocol made (``config.live.build_runtime``).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, ClassVar, Protocol

from gateway.backends.adapter import ExampleMethod, unsupported
from gateway.backends.grpc_wires import v2_over_grpc
from gateway.backends.kserve_http import V2HTTP
from gateway.backends.pool import ReplicaPool
from gateway.backends.readiness import RepositoryIndex
from gateway.backends.replica import Replica
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.specs import KServeSpec, TritonSpec, V2Spec
from gateway.backends.upstream import Target
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature


class V2Wire(Protocol):
    """One wire of the v2 protocol toward a backend's replicas (``V2HTTP``, ``V2GRPC``)."""

    async def infer(self, request: InferenceRequest, target: Target) -> InferenceResponse: ...

    async def metadata(self, target: Target) -> Signature: ...

    async def probe(self, replica: Replica, target: Target) -> bool: ...

    async def server_ready(self, replica: Replica) -> bool: ...

    async def model_index(self, replica: Replica) -> RepositoryIndex: ...


class KServeBackend:
    kind: ClassVar[str] = "kserve"
    spec: ClassVar[type[BackendSpec]] = KServeSpec

    def __init__(self, pool: ReplicaSet) -> None:
        self.pool = pool
        self.wire: V2Wire
        if isinstance(pool, ReplicaPool):
            spec = pool.spec
            binary_data = spec.binary_data if isinstance(spec, V2Spec) else "never"
            self.wire = V2HTTP(pool, binary_data)
        elif (grpc := v2_over_grpc(pool)) is not None:
            self.wire = grpc
        else:
            raise TypeError(f"no v2 wire over {type(pool).__name__}")

    def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> Coroutine[Any, Any, InferenceResponse]:
        # the wire's coroutine itself: one frame less between the terminal and the socket
        return self.wire.infer(request, target)

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        raise unsupported(method, self.kind, target.model)

    async def metadata(self, target: Target) -> Signature | None:
        if target.declared is not None:
            return target.declared
        return await self.wire.metadata(target)

    async def probe(self, replica: Replica, target: Target) -> bool:
        return await self.wire.probe(replica, target)

    async def server_ready(self, replica: Replica) -> bool:
        return await self.wire.server_ready(replica)

    async def model_index(self, replica: Replica) -> RepositoryIndex:
        return await self.wire.model_index(replica)


class TritonBackend(KServeBackend):
    kind: ClassVar[str] = "triton"
    spec: ClassVar[type[BackendSpec]] = TritonSpec
