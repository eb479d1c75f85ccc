"""TorchServe: ``POST /predictions/{name}/{version}``, readiness from the management API.

TorchServe carries no tensor metadata, so inputs and outputs come from routes.yaml when
declared. The handler is sent TF-Serving row format (``{"instances": [...]}``) and answers
``{"predictions": [...]}``, the convention of TorchServe's own examples.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self
from urllib.parse import quote

from pydantic import Field, model_validator

from gateway.backends.adapter import ExampleMethod, unsupported
from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target, raise_for_status
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature
from gateway.codecs.v1 import decode_response, encode_request
from gateway.config.types import URL, problems_error

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


class TorchServeSpec(BackendSpec):
    kind: Literal["torchserve"]
    management_urls: list[URL] | None = Field(
        default=None,
        description="The management API, one per replica (required): readiness comes from "
        "there, since /ping says Healthy while workers crash.",
    )

    @model_validator(mode="after")
    def _one_management_url_per_replica(self) -> Self:
        problem = None
        if self.management_urls is None:
            problem = (
                "kind torchserve needs management_urls: readiness comes from the management "
                "API, since /ping says Healthy while workers crash"
            )
        elif len(self.management_urls) != len(self.urls):
            problem = "management_urls needs one entry per url"
        if problem is not None:
            raise problems_error(type(self).__name__, [(("management_urls",), problem)])
        return self

    def replica_urls(self) -> list[tuple[str, str | None]]:
        return list(zip(self.urls, self.management_urls or [], strict=True))


class TorchServeBackend:
    kind: ClassVar[str] = "torchserve"
    spec: ClassVar[type[BackendSpec]] = TorchServeSpec
    serves_models: ClassVar[bool] = True

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool

    @staticmethod
    def _path(prefix: str, target: Target) -> str:
        path = f"{prefix}/{quote(target.name, safe='')}"
        if target.native_version is not None:
            path += f"/{quote(target.native_version, safe='')}"
        return path

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        body = encode_request(request, columnar=False, named=False)
        reply = await self.pool.request(
            "POST", self._path("/predictions", target), key=target.key, body=body, headers=_JSON
        )
        raise_for_status(reply)
        names = [o["name"] for o in request.outputs or [] if isinstance(o.get("name"), str)]
        return decode_response(reply.body, signature, names or None)

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        raise unsupported(method, self.kind, target.model)

    async def metadata(self, target: Target) -> Signature | None:
        return target.declared

    async def probe(self, replica: Replica, target: Target) -> bool:
        # Not /ping: it says Healthy while the only worker crash-loops (PROTOCOLS.md §1).
        if replica.management_url is None:
            return True
        url = replica.management_url + self._path("/models", target)
        async with self.pool.get(url) as response:
            if response.status != 200:
                return False
            described = await response.json(content_type=None)
        return isinstance(described, list) and any(
            worker.get("status") == "READY"
            for version in described
            if isinstance(version, dict)
            for worker in version.get("workers", [])
            if isinstance(worker, dict)
        )
