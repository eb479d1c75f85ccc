"""TorchServe: ``POST /predictions/{name}/{version}``, readiness from the management API.

TorchServe carries no tensor metadata, so inputs and outputs come from routes.yaml when
declared. The handler is sent TF-Serving row format (``{"instances": [...]}``) and answers
``{"predictions": [...]}``, the convention of TorchServe's own examples.

Health (``health``): the server is up when ``/ping`` answers at all (its verdict is no help:
Healthy while the only worker crash-loops, 500 "Partial Healthy" when one model of many lacks
workers; ``ApiUtils.getWorkerStatus``); the models registered come from the management API's
list (``GET /models``, 100 a page, ``nextPageToken``); whether a registered model version has a
READY worker only its description says (``GET /models/{name}/{version}``), probed lazily.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from gateway.backends.adapter import ExampleMethod, unsupported
from gateway.backends.pool import ReplicaPool
from gateway.backends.readiness import IndexUnavailable, RegisteredModels
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.specs import TorchServeSpec
from gateway.backends.upstream import Target, raise_for_status
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature
from gateway.codecs.v1 import decode_response, encode_request

_JSON = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
_PAGE = 100  # TorchServe's largest page (ApiUtils.getModelList)
_MAX_PAGES = 10_000  # a million models: past that, a server that keeps paging is confused


class TorchServeBackend:
    kind: ClassVar[str] = "torchserve"
    spec: ClassVar[type[BackendSpec]] = TorchServeSpec

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

    async def server_ready(self, replica: Replica) -> bool:
        """``/ping`` answered, whatever it says (see the module's docstring)."""
        async with self.pool.get(replica.url + "/ping") as response:
            await response.read()
            return True

    async def model_index(self, replica: Replica) -> RegisteredModels | None:
        """The names registered on the replica, from the management API's paged list."""
        if replica.management_url is None:
            return None
        names: set[str] = set()
        token: str | None = "0"
        for _ in range(_MAX_PAGES):
            url = f"{replica.management_url}/models?limit={_PAGE}&next_page_token={token}"
            async with self.pool.get(url) as response:
                if response.status != 200:
                    raise IndexUnavailable(f"GET /models answered {response.status}")
                page = await response.json(content_type=None)
            models = page.get("models") if isinstance(page, dict) else None
            if not isinstance(models, list):
                raise IndexUnavailable("GET /models answered without a list of models")
            names.update(
                m["modelName"]
                for m in models
                if isinstance(m, dict) and isinstance(m.get("modelName"), str)
            )
            token = page.get("nextPageToken")
            if not models or not isinstance(token, str) or not token:
                return RegisteredModels(frozenset(names))
        raise IndexUnavailable(f"GET /models still paging after {_MAX_PAGES} pages")
