"""A backend's replicas and the parts that watch them, whatever the wire: the common base of
the HTTP pool (``pool.ReplicaPool``) and the gRPC pool (``grpc_pool.GRPCPool``).

What the rest of the gateway uses of a backend's pool is here and only here: the replica
choice (power of two random choices on outstanding requests among the replicas that are
neither ejected nor unready for the model version), readiness (``LiveBackend.serving``, the
terminal's live ``ready``), the admin view (``state``), and starting and stopping the active
health checks. Each transport's pool adds the sending: the circuit breaker, retries within
the budget and the deadline, over its own connections.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from gateway.backends.breaker import CircuitBreaker
from gateway.backends.health import HealthChecker, Probe
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
        self._stopping: set[asyncio.Future[None]] = set()  # health loops a reload replaced

    def choose(self, key: TargetKey | None, tried: set[int]) -> Replica:
        now = time.monotonic()
        candidates = [
            r for i, r in enumerate(self.replicas) if i not in tried and r.available(key, now)
        ]
        if not candidates:
            raise NoHealthyReplica(f"no healthy replica for backend {self.name!r}")
        if len(candidates) == 1:
            return candidates[0]
        a, b = random.sample(candidates, 2)
        return a if a.outstanding <= b.outstanding else b

    @property
    def in_flight(self) -> int:
        return self.breaker.in_flight

    def start_health_checks(self, probe: Probe, targets: list[Target]) -> None:
        self.health.start(probe, targets)

    def follow_targets(self, probe: Probe, targets: list[Target]) -> None:
        """Check ``targets`` from now on (a reload changed which server models this backend
        serves): a new health loop over them, the replicas keeping what they learnt; the old
        loop stops in the background (and :meth:`close` waits for it)."""
        old = self.health
        self.health = HealthChecker(self.name, self.spec.health, self.replicas, self.metrics)
        self.health.start(probe, targets)
        stopping = asyncio.ensure_future(old.close())
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)

    async def check_once(self, probe: Probe, targets: list[Target]) -> None:
        await self.health.check_once(probe, targets)

    async def close(self) -> None:
        """Stop watching (a transport's pool closes its connections too)."""
        await self.health.close()
        for stopping in list(self._stopping):
            await stopping

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "kind": self.spec.kind,
            "protocol": self.spec.protocol,
            "in_flight": self.in_flight,
            "replicas": [r.state(now) for r in self.replicas],
        }
