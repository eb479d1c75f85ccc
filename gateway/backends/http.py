"""A plain HTTP backend, for passthrough routes only (no inference translation)."""

from __future__ import annotations

from typing import ClassVar

from gateway.backends.base import Target
from gateway.backends.pool import Replica, ReplicaPool
from gateway.errors import NotFound
from gateway.inference import InferenceRequest, InferenceResponse, Signature


class HTTPBackend:
    kind: ClassVar[str] = "http"

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        raise NotFound("this backend serves passthrough routes only")

    async def metadata(self, target: Target) -> Signature | None:
        return None

    async def probe(self, replica: Replica, target: Target) -> bool:
        return True
