"""TensorFlow Serving: over HTTP (its REST API, ``tfserving_http``) or gRPC (its
``PredictionService`` and ``ModelService``, ``tfserving_grpc``), as the backend's ``protocol``
says. Both wires give a caller the same answer: the same outputs, names, signatures, readiness
and error statuses (TF Serving's own mapping of its codes to HTTP, PROTOCOLS.md §4.2).

TF Serving has no health endpoint and no call listing its models' states: the server is up when
its status API answers at all (a request without a model name, refused at once), and a model
version is probed on its own, lazily (``health``).

The wire is chosen once, from the pool the backend's protocol made
(``config.live.build_runtime``).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from gateway.backends.adapter import ExampleMethod
from gateway.backends.grpc_wires import tfserving_over_grpc
from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.specs import TFServingSpec
from gateway.backends.tfserving_http import TFServingREST
from gateway.backends.upstream import Target
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature


class TFServingWire(Protocol):
    """One wire of TF Serving's API toward a backend's replicas (``TFServingREST``,
    ``TFServingGRPC``)."""

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse: ...

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes: ...

    async def metadata(self, target: Target) -> Signature: ...

    async def probe(self, replica: Replica, target: Target) -> bool: ...

    async def server_ready(self, replica: Replica) -> bool: ...


class TFServingBackend:
    kind: ClassVar[str] = "tfserving"
    spec: ClassVar[type[BackendSpec]] = TFServingSpec

    def __init__(self, pool: ReplicaSet) -> None:
        self.pool = pool
        self.wire: TFServingWire
        if isinstance(pool, ReplicaPool):
            self.wire = TFServingREST(pool)
        elif (grpc := tfserving_over_grpc(pool)) is not None:
            self.wire = grpc
        else:
            raise TypeError(f"no TF Serving wire over {type(pool).__name__}")

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        return await self.wire.infer(request, target, signature)

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        """TF Serving's REST JSON in and out, whatever the wire (PROTOCOLS.md §4.4)."""
        return await self.wire.examples(method, body, target)

    async def metadata(self, target: Target) -> Signature | None:
        if target.declared is not None:
            return target.declared
        return await self.wire.metadata(target)

    async def probe(self, replica: Replica, target: Target) -> bool:
        return await self.wire.probe(replica, target)

    async def server_ready(self, replica: Replica) -> bool:
        return await self.wire.server_ready(replica)

    async def model_index(self, replica: Replica) -> None:
        """None: TF Serving has no call that lists its models' states, so each model version
        is probed lazily (first use, failures) at the bounded rate."""
        return None
