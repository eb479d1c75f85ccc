"""The last step of every chain: the call sent to the backend that serves it.

- ``infer``: the tensors fitted to the model's declared inputs, sent through the backend's
  adapter, its answer's tensors returned;
- ``classify``, ``regress``: TF Serving's ``tf.Example`` JSON, to a backend that has them;
- ``metadata``, ``ready``, ``status``: the model version described (signature, and live
  readiness asked of a replica with the server kind's own check);
- ``passthrough``: the bytes relayed as they are (``relay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from gateway.backends.adapter import ExampleMethod
from gateway.backends.live import LiveBackend, Resolved, resolve
from gateway.backends.pool import ReplicaPool
from gateway.backends.relay import relay
from gateway.call import Call, Reply
from gateway.codecs.tensors import ModelInfo, check_inputs
from gateway.config.model import PassthroughRoute, RouteTable, version_sort_key
from gateway.errors import GatewayError, NoHealthyReplica, NotFound

DEFAULT_SIGNATURE = "serving_default"


class Terminal:
    """The terminal steps of one route table's chains."""

    def __init__(
        self, table: RouteTable, backends: Mapping[str, LiveBackend], max_body_bytes: int
    ) -> None:
        self.table = table
        self.backends = backends
        self.max_body_bytes = max_body_bytes

    async def infer(self, call: Call) -> Reply:
        resolved = call.resolved or self._resolved(call)
        live = resolved.backend
        request = call.request  # decoded by an earlier step (a cache key): no coroutine
        if request is None:
            request = await call.inference()
        signature = None
        if request.signature_name in (None, "", DEFAULT_SIGNATURE):
            # Another signature's inputs are the server's to check (TF Serving knows them).
            known = live.known_signature(resolved.target)
            signature = known[0] if known is not None else await live.signature(resolved.target)
            check_inputs(request, signature)
        response = await live.adapter.infer(request, resolved.target, signature)
        return Reply(response=response)

    async def classify(self, call: Call) -> Reply:
        return await self._examples(call, "classify")

    async def regress(self, call: Call) -> Reply:
        return await self._examples(call, "regress")

    async def _examples(self, call: Call, method: ExampleMethod) -> Reply:
        resolved = self._resolved(call)
        if call.payload is None:
            raise RuntimeError(f"a {method} call without a body")  # a frontend bug
        body = await call.payload.read()
        answer = await resolved.backend.adapter.examples(method, body, resolved.target)
        return Reply(body=answer)

    async def metadata(self, call: Call) -> Reply:
        resolved = self._resolved(call)
        signature = await resolved.backend.signature(resolved.target)
        info = ModelInfo(
            resolved.model, resolved.version, self._versions(resolved.model), signature
        )
        return Reply(info=info)

    async def ready(self, call: Call) -> Reply:
        resolved = self._resolved(call)
        ready = ((resolved.version, await _ready(resolved)),)
        info = ModelInfo(
            resolved.model, resolved.version, self._versions(resolved.model), None, ready
        )
        return Reply(info=info)

    async def status(self, call: Call) -> Reply:
        """Every version of the model (newest first), or the one pinned, and its readiness."""
        model = call.model or ""
        if model not in self.table.models or (call.pin and call.resolved is None):
            self._resolved(call)  # raises the 404
        if call.resolved is not None:
            versions = [call.resolved.version]
        else:
            versions = sorted(self._versions(model), key=version_sort_key, reverse=True)
        resolved = [resolve(self.table, self.backends, model, v) for v in versions]
        states = await asyncio.gather(*(_ready(r) for r in resolved))
        ready = tuple(zip(versions, states, strict=True))
        info = ModelInfo(model, call.version, self._versions(model), None, ready)
        return Reply(info=info)

    async def passthrough(self, call: Call) -> Reply:
        route = call.route
        if not isinstance(route, PassthroughRoute):
            raise NotFound(f"no route for {call.path}")
        pool = self.backends[route.backend].pool
        if not isinstance(pool, ReplicaPool):  # routes.yaml refuses it (config.model)
            raise RuntimeError(f"passthrough to {route.backend!r}, which is not an HTTP backend")
        return await relay(call, route, pool, self.max_body_bytes)

    def _versions(self, model: str) -> tuple[str, ...]:
        return tuple(sorted(self.table.models[model].versions, key=version_sort_key))

    def _resolved(self, call: Call) -> Resolved:
        """The version the traffic step chose; a model or version it left unresolved because
        this table does not serve it is answered here (404, after auth and limits)."""
        if call.resolved is not None:
            return call.resolved
        resolve(self.table, self.backends, call.model or "", call.pin)  # raises NotFound
        raise RuntimeError(f"a {call.kind} call reached its backend without a version")


async def _ready(resolved: Resolved) -> bool:
    """Ask one replica, live, whether this version is ready (the kind's real readiness check)."""
    pool = resolved.backend.pool
    try:
        replica = pool.choose(resolved.target.key, set())
    except NoHealthyReplica:
        return False
    try:
        async with asyncio.timeout(resolved.backend.spec.health.timeout):
            return await resolved.backend.adapter.probe(replica, resolved.target)
    except (TimeoutError, OSError, ValueError, aiohttp.ClientError, GatewayError):
        return False  # an unreachable or confused server is simply not ready
