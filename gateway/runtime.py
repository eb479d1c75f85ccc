"""A route table made live: each backend's replica pool and adapter, and model metadata.

The running gateway holds one :class:`Runtime` and replaces it whole on reload; a request keeps
the runtime it started with. Backends whose definition did not change are carried over, so
their connections, health state and metadata survive a reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import httpx
from prometheus_client import CollectorRegistry

from gateway.auth.authenticator import Authenticator, build_authenticator
from gateway.auth.keys import KeyVerifier
from gateway.backends import ADAPTERS, Adapter
from gateway.backends.base import Target
from gateway.backends.pool import ReplicaPool
from gateway.caching import SingleFlight
from gateway.config import Backend, TensorSpec
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    NoHealthyReplica,
    Overloaded,
    UpstreamTimeout,
    VersionNotFound,
)
from gateway.inference import Signature, TensorMeta
from gateway.limits import Limiter, LimiterMetrics
from gateway.metrics import BackendMetrics, PoolMetrics
from gateway.routes_file import LoadedConfig
from gateway.store import MemoryStore, Store

logger = logging.getLogger("gateway.runtime")
_METADATA_TTL = 60.0
_METADATA_FAILURE_TTL = 2.0


@dataclass(slots=True)
class LiveBackend:
    name: str
    spec: Backend
    pool: ReplicaPool
    adapter: Adapter
    targets: list[Target]
    _metadata: dict[tuple[str, str | None], tuple[float, Signature | None]] = field(
        default_factory=dict
    )
    _pending: dict[tuple[str, str | None], asyncio.Future[Signature | None]] = field(
        default_factory=dict
    )

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


@dataclass(frozen=True, slots=True)
class Resolved:
    model: str
    version: str
    target: Target
    backend: LiveBackend


class TrafficControl(Protocol):
    """What the traffic policy asks of the rollout controller (``gateway.rollout``)."""

    def weights(self, model: str) -> Mapping[str, float] | None:
        """The model's split right now (percent per version), or None: routes.yaml's holds."""

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        """One answered request of ``model`` served by ``version``, for the rollout gates."""


@dataclass(frozen=True, slots=True)
class Services:
    """What outlives route tables: the worker's clients, the store, key cache, token signer."""

    session: aiohttp.ClientSession
    http: httpx.AsyncClient
    store: Store
    keys: KeyVerifier
    secret: bytes = field(repr=False)
    fallback: MemoryStore = field(default_factory=MemoryStore)  # limits while the store is out
    flights: SingleFlight = field(default_factory=SingleFlight)  # collapsed cache misses
    limiter_metrics: LimiterMetrics | None = None
    pool_metrics: PoolMetrics | None = None  # backend health, ejections, retries, breaker
    traffic: TrafficControl | None = None  # progressive rollouts, when a model declares one


class Runtime:
    def __init__(
        self,
        loaded: LoadedConfig,
        backends: dict[str, LiveBackend],
        auth: Authenticator | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.loaded = loaded
        self.table = loaded.table
        self.backends = backends
        self.auth = auth
        self.limiter = limiter

    def resolve(self, model: str, version: str | None) -> Resolved:
        spec = self.table.models.get(model)
        if spec is None:
            raise ModelNotFound(f"model {model!r} is not served here")
        if version is None:
            version = spec.default_version  # the split is the traffic policy's (gateway.traffic)
        elif version not in spec.versions:
            raise VersionNotFound(f"model {model!r} has no version {version!r}")
        entry = spec.versions[version]
        live = self.backends[entry.backend]
        target = next(t for t in live.targets if t.model == model and t.version == version)
        return Resolved(model, version, target, live)


def _signature(
    inputs: list[TensorSpec] | None, outputs: list[TensorSpec] | None
) -> Signature | None:
    if inputs is None and outputs is None:
        return None
    meta = [
        tuple(TensorMeta(t.name, t.datatype, tuple(t.shape)) for t in ts or [])
        for ts in (inputs, outputs)
    ]
    return Signature(inputs=meta[0], outputs=meta[1])


def targets_by_backend(loaded: LoadedConfig) -> dict[str, list[Target]]:
    result: dict[str, list[Target]] = {name: [] for name in loaded.table.backends}
    for model_name, model in loaded.table.models.items():
        for version_name, version in model.versions.items():
            result[version.backend].append(
                Target(
                    model=model_name,
                    version=version_name,
                    name=version.name or model_name,
                    native_version=version.version,
                    declared=_signature(version.inputs, version.outputs),
                )
            )
    return result


def build_runtime(
    loaded: LoadedConfig, services: Services, previous: Runtime | None
) -> tuple[Runtime, list[LiveBackend]]:
    """Make ``loaded`` live, reusing ``previous``'s unchanged backends and authenticator.

    Returns the runtime and the previous backends it no longer uses (for the caller to close).
    Raises AuthSetupError when the auth section names a secret or key file that is missing.
    """
    auth = None
    if loaded.table.auth is not None:
        old_auth = previous.auth if previous else None
        if old_auth is not None and old_auth.config == loaded.table.auth:
            auth = old_auth  # keeps its JWKS and verified-token caches
        else:
            auth = build_authenticator(
                loaded.table.auth, services.keys, services.http, services.secret
            )
    session = services.session
    targets = targets_by_backend(loaded)
    backends: dict[str, LiveBackend] = {}
    for name, spec in loaded.table.backends.items():
        old = previous.backends.get(name) if previous else None
        if old is not None and old.spec == spec and old.targets == targets[name]:
            backends[name] = old
            continue
        pool = ReplicaPool(name, spec, session, _bind(services.pool_metrics, name))
        adapter = ADAPTERS[spec.kind](pool)
        backends[name] = LiveBackend(name, spec, pool, adapter, targets[name])
        pool.start_health_checks(adapter.probe, targets[name])
    kept = {id(b) for b in backends.values()}
    retired = [b for b in (previous.backends.values() if previous else []) if id(b) not in kept]
    metrics = services.limiter_metrics or LimiterMetrics(CollectorRegistry())
    limiter = Limiter(loaded.table, services.store, services.fallback, metrics)
    return Runtime(loaded, backends, auth, limiter), retired


def _bind(metrics: PoolMetrics | None, backend: str) -> BackendMetrics | None:
    return metrics.bind(backend) if metrics is not None else None
