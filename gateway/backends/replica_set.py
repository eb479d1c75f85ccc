"""A backend's replicas and the parts that watch them, whatever the wire: the common base of
the HTTP pool (``pool.ReplicaPool``) and the gRPC pool (``grpc_pool.GRPCPool``).

What the rest of the gateway uses of a backend's pool is here and only here: the replica
choice (power of two random choices on outstanding requests among the replicas that are
neither ejected, down nor unready for the model version), readiness (``LiveBackend.serving``,
the terminal's live ``ready``), the admin view (``state``), and starting and stopping the
active health checks. Each transport's pool adds the sending: the circuit breaker, retries
within the budget and the deadline, over its own connections, and tells the health checks of
a call that failed (``health.failed``: a lazily checked model version is probed again).
"""

from __future__ import annotations

import random
import time
from collections.abc import Set as AbstractSet
from typing import Any

from gateway.backends.breaker import CircuitBreaker
from gateway.backends.health import HealthChecker
from gateway.backends.readiness import Readiness
from gateway.backends.replica import OutlierDetector, Replica, TargetKey
from gateway.backends.retries import RetryBudget
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target
from gateway.errors import NoHealthyReplica
from gateway.telemetry.metrics import BackendMetrics


class ReplicaSet:
    """The replicas of one backend: choosing one, watching them, closing."""

    def __init__(self, name: str, spec: BackendSpec, metrics: BackendMetrics | None) -> None:
        self.name = name
        self.metrics = metrics
        self.spec = spec
        self.replicas = [Replica(url, management) for url, management in spec.replica_urls()]
        self.breaker = CircuitBreaker(name, spec.max_in_flight, metrics)
        self.outliers = OutlierDetector(name, spec.outlier, self.replicas, metrics)
        self.health = HealthChecker(name, spec.health, self.replicas, metrics)
        self.budget = RetryBudget(spec.retries.budget, spec.retries.min_per_second)

    def choose(self, key: TargetKey | None, tried: AbstractSet[int]) -> Replica:
        if key is not None and key not in self.health.used:
            self.health.first_use(key)  # a lazily checked version is probed when first used
        now = time.monotonic()
        replicas = self.replicas
        if not tried and len(replicas) == 1 and replicas[0].available(key, now):
            return replicas[0]  # (what the lines below choose, without their list)
        if tried:
            candidates = [
                r for i, r in enumerate(self.replicas) if i not in tried and r.available(key, now)
            ]
        else:  # a request's first try: nothing to leave out
            candidates = [r for r in self.replicas if r.available(key, now)]
        if not candidates and key is not None and not tried:
            # No replica has this version ready, and the servers' own indexes do not list it
            # at all: a server answers for itself (a version it lacks is its 404, with its
            # message), as it did before any check ran, not a 503 that depends on timing. A
            # version listed but not ready (unloaded, loading) stays a 503 from here.
            candidates = [r for r in self.replicas if key in r.absent and r.available(None, now)]
        if not candidates:
            raise NoHealthyReplica(f"no healthy replica for backend {self.name!r}")
        if len(candidates) == 1:
            return candidates[0]
        a, b = random.sample(candidates, 2)
        return a if a.outstanding <= b.outstanding else b

    @property
    def in_flight(self) -> int:
        return self.breaker.in_flight

    def start_health_checks(self, readiness: Readiness, targets: list[Target]) -> None:
        """Watch ``targets`` with the kind's checks; called again, only the targets change
        (the replicas keep what was learnt of them)."""
        self.health.start(readiness, targets)

    async def check_once(self, readiness: Readiness, targets: list[Target]) -> None:
        """One round of checks now, and the per-model probes it makes due (tests, tools)."""
        self.health.readiness = readiness
        self.health.retarget(targets)
        await self.health.check_once()

    async def close(self) -> None:
        """Stop watching (a transport's pool closes its connections too)."""
        await self.health.close()

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "kind": self.spec.kind,
            "protocol": self.spec.protocol,
            "in_flight": self.in_flight,
            "replicas": [
                r.state(now, self.health.targets) | {"model_readiness": self.health.source(r)}
                for r in self.replicas
            ],
        }
