"""A plain HTTP backend, for passthrough routes only (no inference translation)."""

from __future__ import annotations

from typing import ClassVar

from gateway.backends.adapter import ExampleMethod, unsupported
from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.specs import HTTPSpec
from gateway.backends.upstream import Target
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature
from gateway.errors import NotFound


class HTTPBackend:
    kind: ClassVar[str] = "http"
    spec: ClassVar[type[BackendSpec]] = HTTPSpec

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        raise NotFound("this backend serves passthrough routes only")

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        raise unsupported(method, self.kind, target.model)

    async def metadata(self, target: Target) -> Signature | None:
        return None

    async def probe(self, replica: Replica, target: Target) -> bool:
        return True

    async def server_ready(self, replica: Replica) -> None:
        """None: a plain HTTP server has no readiness API (outlier ejection watches it)."""
        return None

    async def model_index(self, replica: Replica) -> None:
        return None
