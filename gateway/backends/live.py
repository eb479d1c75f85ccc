"""A backend made live (its replica pool, adapter and targets, model metadata cached), and the
version a call resolved to."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.backends.adapter import Adapter
from gateway.backends.replica import TargetKey
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target
from gateway.codecs.tensors import Signature
from gateway.config.model import RouteTable
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    NoHealthyReplica,
    Overloaded,
    UpstreamTimeout,
    VersionNotFound,
)

logger = logging.getLogger("gateway.backends")
_METADATA_TTL = 60.0
_METADATA_FAILURE_TTL = 2.0


@dataclass(slots=True)
class LiveBackend:
    """A backend of one route table. A reload that changes only which model versions it
    serves makes another with :meth:`serving_targets`: the same pool (connections, health),
    adapter and metadata cache."""

    name: str
    spec: BackendSpec
    pool: ReplicaSet  # a ReplicaPool (http) or a GRPCPool (grpc), as spec.protocol says
    adapter: Adapter
    targets: list[Target]
    _metadata: dict[TargetKey, tuple[float, Signature | None]] = field(default_factory=dict)
    _pending: dict[TargetKey, asyncio.Future[Signature | None]] = field(default_factory=dict)
    _by_model: dict[str, Target | dict[str, Target]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A call finds its target in O(1), whatever the number of models (issue 16).
        self._by_model = _index(self.targets)

    def target(self, model: str, version: str) -> Target:
        """The target of public ``model`` ``version``; KeyError when this backend does not
        serve it."""
        found = self._by_model[model]
        if isinstance(found, dict):
            return found[version]
        if found.version != version:
            raise KeyError((model, version))
        return found

    def serving_targets(self, targets: list[Target]) -> LiveBackend:
        """This backend serving ``targets`` instead: its pool and adapter, and the cached
        metadata of the server models it still serves (the server's, by server model name and
        version; what it no longer serves is dropped, so the cache does not grow reload after
        reload). Fetches in flight are shared."""
        keys = {t.key for t in targets}
        metadata = {key: known for key, known in self._metadata.items() if key in keys}
        return LiveBackend(
            self.name, self.spec, self.pool, self.adapter, targets, metadata, self._pending
        )

    def known_signature(self, target: Target) -> tuple[Signature | None] | None:
        """The target's cached inputs/outputs, in a 1-tuple, while the cache holds them;
        ``None`` when :meth:`signature` must be awaited (the inference path: no coroutine
        for what the cache answers)."""
        cached = self._metadata.get(target.key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1:]
        return None

    async def signature(self, target: Target) -> Signature | None:
        """The target's inputs/outputs, cached; ``None`` when the server cannot tell."""
        cached = self._metadata.get(target.key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(target.key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Signature | None] = asyncio.get_running_loop().create_future()
        self._pending[target.key] = future
        try:
            signature = await self.adapter.metadata(target)
            ttl = _METADATA_TTL
        except GatewayError as exc:
            if isinstance(exc, NoHealthyReplica | Overloaded | UpstreamTimeout):
                # No replica can answer: inference would not either, so do not try twice.
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, nobody else must
                raise
            logger.info("metadata unavailable", extra={"model": target.name, "error": exc.message})
            signature, ttl = None, _METADATA_FAILURE_TTL
        finally:
            del self._pending[target.key]
        self._metadata[target.key] = (time.monotonic() + ttl, signature)
        future.set_result(signature)
        return signature

    def serving(self, key: TargetKey, now: float | None = None) -> bool:
        """Whether a replica can take requests for ``key`` (not ejected, ready for it)."""
        now = time.monotonic() if now is None else now
        return any(r.available(key, now) for r in self.pool.replicas)


def _index(targets: list[Target]) -> dict[str, Target | dict[str, Target]]:
    """Targets by public model name: the one target of a model whose only version on the
    backend it is (most models: no key tuple nor dict per model, issue 16), else a dict of the
    model's targets by version."""
    index: dict[str, Target | dict[str, Target]] = {}
    for target in targets:
        found = index.setdefault(target.model, target)
        if found is target:
            continue
        if isinstance(found, Target):
            index[target.model] = found = {found.version: found}
        found[target.version] = target
    return index


@dataclass(frozen=True, slots=True)
class Resolved:
    """The model version that serves a call: public names, the backend's target, the backend."""

    model: str
    version: str
    target: Target
    backend: LiveBackend


def resolve(
    table: RouteTable, backends: Mapping[str, LiveBackend], model: str, version: str | None
) -> Resolved:
    """``version`` of ``model`` (the default version for None) on its live backend; 404 for a
    model or version the table does not serve. The split is the traffic policy's choice."""
    spec = table.models.get(model)
    if spec is None:
        raise ModelNotFound(f"model {model!r} is not served here")
    if version is None:
        version = spec.default_version
    elif version not in spec.versions:
        raise VersionNotFound(f"model {model!r} has no version {version!r}")
    live = backends[spec.versions[version].backend]
    return Resolved(model, version, live.target(model, version), live)
