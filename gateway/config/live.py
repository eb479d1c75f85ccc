"""The live route table: a validated routes.yaml made live, with a chain per call kind.

The running gateway holds one :class:`Runtime` and replaces it whole on reload; a call runs on
the runtime it started with. What did not change is carried over: a backend whose definition
did not change keeps its pool (connections, health state, ejections, breaker) and metadata
cache, even when the models it serves changed; a model the file did not change (the same
:class:`Model` object, ``config/fast_path.py``) keeps its targets; the authenticator keeps its
key and token caches when the ``auth:`` section did not change. A call finds its target in
O(1), whatever the number of models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import httpx
from prometheus_client import CollectorRegistry

from gateway.auth.authenticator import Authenticator, build_authenticator
from gateway.auth.keys import KeyVerifier
from gateway.backends.grpc_wires import grpc_pool
from gateway.backends.h1.client import Client
from gateway.backends.live import LiveBackend, Resolved, resolve
from gateway.backends.pool import ReplicaPool
from gateway.backends.registry import ADAPTERS
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target
from gateway.batching.metrics import BatchMetrics
from gateway.caching.cache import ResponseCache
from gateway.caching.flight import SingleFlight
from gateway.call import CallKind, Next
from gateway.codecs.tensors import Signature, TensorMeta
from gateway.config.file import LoadedConfig
from gateway.config.model import TensorSpec
from gateway.limits.limiter import Limiter, LimiterMetrics
from gateway.store import MemoryStore, Store
from gateway.telemetry.metrics import BackendMetrics, PoolMetrics
from gateway.traffic.choose import Chooser, TrafficControl
from gateway.traffic.shadow import ShadowWorker
from gateway.webhooks.service import Webhooks


@dataclass(frozen=True, slots=True)
class Services:
    """What outlives route tables: the worker's clients, the store, key cache, token signer,
    and the per-process state of traffic (the split's round-robin, rollouts, shadow)."""

    session: aiohttp.ClientSession  # streamed upstream requests (passthrough) and probes
    http: httpx.AsyncClient
    store: Store
    keys: KeyVerifier
    secret: bytes = field(repr=False)
    fallback: MemoryStore = field(default_factory=MemoryStore)  # limits while the store is out
    flights: SingleFlight = field(default_factory=SingleFlight)  # collapsed cache misses
    chooser: Chooser = field(default_factory=Chooser)  # the split's round-robin state
    limiter_metrics: LimiterMetrics | None = None
    pool_metrics: PoolMetrics | None = None  # backend health, ejections, retries, breaker
    batch_metrics: BatchMetrics | None = None  # batch sizes, queue waits, refusals
    traffic: TrafficControl | None = None  # progressive rollouts, when a model declares one
    shadow: ShadowWorker | None = None  # mirrors a share of a model's calls to another version
    webhooks: Webhooks | None = None  # signed job callbacks (None only in tests)
    # buffered upstream requests (the adapters' hot path); the default opens no socket unless
    # used, and whoever uses it closes it (open_state passes the worker's)
    upstream: Client = field(default_factory=Client)


Chains = Mapping[CallKind, Next]
ChainFactory = Callable[["Runtime"], Chains]
"""Builds the chain of every call kind for a runtime (``policies.build_chains``)."""


class Runtime:
    """One route table, live. Read-only once built: a reload builds another."""

    def __init__(
        self,
        loaded: LoadedConfig,
        services: Services,
        backends: dict[str, LiveBackend],
        auth: Authenticator | None,
    ) -> None:
        self.loaded = loaded
        self.table = loaded.table
        self.services = services
        self.backends = backends
        self.auth = auth
        metrics = services.limiter_metrics or LimiterMetrics(CollectorRegistry())
        self.limiter = Limiter(self.table, services.store, services.fallback, metrics)
        specs = {name: m.cache for name, m in self.table.models.items() if m.cache is not None}
        self.cache = ResponseCache(specs, services.store, services.flights)
        self.chains: Chains = {}
        # each version resolved, kept: its answer is the same for this table's whole life (and
        # bounded by it: a name the table does not serve is a 404, never kept)
        self._resolved: dict[tuple[str, str | None], Resolved] = {}

    def resolve(self, model: str, version: str | None) -> Resolved:
        """``version`` of ``model`` (None: the default version); 404 when not served. Worked
        out once per model and version (the traffic step asks on every call)."""
        known = self._resolved.get((model, version))
        if known is None:
            known = self._resolved[model, version] = resolve(
                self.table, self.backends, model, version
            )
        return known

    def serving(self, model: str, version: str, now: float | None = None) -> bool:
        """Whether ``version`` of ``model`` has a replica that can take requests (not ejected,
        ready for that model version); False for a name the table does not have."""
        spec = self.table.models.get(model)
        entry = spec.versions.get(version) if spec is not None else None
        if entry is None:
            return False
        live = self.backends[entry.backend]
        target = live.target(model, version)
        return live.serving(target.key, time.monotonic() if now is None else now)


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


def targets_by_backend(
    loaded: LoadedConfig, previous: Runtime | None = None
) -> dict[str, list[Target]]:
    """Each backend's targets, in the table's order; a model the previous table had (the same
    :class:`Model` object: its entry did not change) keeps its targets."""
    result: dict[str, list[Target]] = {name: [] for name in loaded.table.backends}
    before = previous.table.models if previous is not None else {}
    for model_name, model in loaded.table.models.items():
        kept = previous is not None and before.get(model_name) is model
        for version_name, version in model.versions.items():
            if kept and previous is not None:
                target = previous.backends[version.backend].target(model_name, version_name)
            else:
                target = Target(
                    model=model_name,
                    version=version_name,
                    name=version.name or model_name,
                    native_version=version.version,
                    declared=_signature(version.inputs, version.outputs),
                )
            result[version.backend].append(target)
    return result


def build_runtime(
    loaded: LoadedConfig, services: Services, previous: Runtime | None, chains: ChainFactory
) -> tuple[Runtime, list[LiveBackend]]:
    """Make ``loaded`` live, reusing ``previous``'s unchanged backends and authenticator, and
    build its chains. Returns the runtime and the previous backends it no longer uses (for the
    caller to close). Raises AuthSetupError when the auth section names a secret or key file
    that is missing.

    A backend whose definition did not change keeps its pool (connections, health, ejections,
    breaker), adapter and metadata cache even when the models it serves changed; it is the
    same :class:`LiveBackend` when they did not. Unchanged models keep their targets.
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
    targets = targets_by_backend(loaded, previous)
    backends: dict[str, LiveBackend] = {}
    for name, spec in loaded.table.backends.items():
        old = previous.backends.get(name) if previous else None
        if old is not None and old.spec == spec:
            backends[name] = _carried(old, targets[name])
            continue
        pool = _pool(name, spec, services)
        adapter = ADAPTERS[spec.kind](pool)
        backends[name] = LiveBackend(name, spec, pool, adapter, targets[name])
        pool.start_health_checks(adapter, targets[name])
    kept = {id(b.pool) for b in backends.values()}
    before = previous.backends.values() if previous else []
    retired = [b for b in before if id(b.pool) not in kept]
    runtime = Runtime(loaded, services, backends, auth)
    runtime.chains = chains(runtime)
    return runtime, retired


def _carried(old: LiveBackend, targets: list[Target]) -> LiveBackend:
    """``old`` (its definition unchanged) serving ``targets``: itself when they are the same;
    else the same pool, whose health loop follows the new server models if they changed."""
    if old.targets == targets:  # the same Target objects, mostly: compared by identity first
        return old
    carried = old.serving_targets(targets)
    if {t.key for t in old.targets} != {t.key for t in targets}:
        carried.pool.start_health_checks(carried.adapter, targets)  # the same loop, retargeted
    return carried


def _pool(name: str, spec: BackendSpec, services: Services) -> ReplicaSet:
    """The backend's replicas over the wire its ``protocol`` names."""
    metrics = _bind(services.pool_metrics, name)
    if spec.protocol == "grpc":
        return grpc_pool(name, spec, metrics)  # its own channels, one per replica
    return ReplicaPool(name, spec, services.session, services.upstream, metrics)


def _bind(metrics: PoolMetrics | None, backend: str) -> BackendMetrics | None:
    return metrics.bind(backend) if metrics is not None else None
