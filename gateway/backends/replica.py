"""One replica of a backend, and outlier ejection: what live traffic says about it.

``consecutive_failures`` local-origin failures (connect error, reset, timeout) eject a replica
for ``ejection × times ejected`` (at most 5 min), never more than ``max_ejected`` of the
replicas. HTTP error statuses do not count: TorchServe answers 503 for a handler error caused
by bad input, which says nothing about the replica. Nor does a timeout that fired while the
gateway's own event loop stalled (``telemetry.loop``): the timer measured the gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.backends.spec import OutlierDetection
from gateway.telemetry import loop
from gateway.telemetry.metrics import BackendMetrics

logger = logging.getLogger("gateway.pool")
MAX_EJECTION = 300.0
TargetKey = tuple[str, str | None]  # (backend-native model name, native version)


class Replica:
    """One server address and what the pool has learnt about it."""

    __slots__ = (
        "absent",
        "down",
        "ejected_until",
        "ejections",
        "failures",
        "management_url",
        "outstanding",
        "probe_streaks",
        "server_streak",
        "unready",
        "url",
    )

    def __init__(self, url: str, management_url: str | None) -> None:
        self.url = url
        self.management_url = management_url
        self.outstanding = 0
        self.failures = 0
        self.ejected_until = 0.0
        self.ejections = 0
        # health (``health``): the server is not up (every model's traffic off), the model
        # versions that are not ready here, and the streaks of the verdicts still counting
        # toward a change (kept only while they count: a ready version with good verdicts
        # has none, so the table does not grow with the models)
        self.down = False
        self.server_streak = 0
        self.unready: set[TargetKey] = set()
        self.probe_streaks: dict[TargetKey, int] = {}
        # the unready versions the server's own index does not list at all (it lacks them):
        # a call for one that no replica has ready still goes to a replica, whose answer (its
        # 404 and message) is the caller's, rather than a 503 from here
        self.absent: set[TargetKey] = set()

    def available(self, key: TargetKey | None, now: float) -> bool:
        return (
            now >= self.ejected_until and not self.down and (key is None or key not in self.unready)
        )

    def state(self, now: float, every: Iterable[TargetKey] = ()) -> dict[str, Any]:
        """The admin view; ``every`` model version of the backend counts as unready while the
        server is down (as when each one's probe failed)."""
        unready = {*self.unready, *every} if self.down else self.unready
        return {
            "url": self.url,
            "outstanding": self.outstanding,
            "ejected_for": round(max(0.0, self.ejected_until - now), 3),
            "server_ready": not self.down,
            "unready": sorted(f"{n}/{v or ''}" for n, v in unready),
        }


class OutlierDetector:
    """Ejects replicas that keep failing on live traffic, and readmits them when they answer."""

    def __init__(
        self,
        backend: str,
        spec: OutlierDetection,
        replicas: Sequence[Replica],
        metrics: BackendMetrics | None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.replicas = replicas
        self.metrics = metrics

    def failed(self, replica: Replica) -> None:
        replica.failures += 1
        now = time.monotonic()
        if replica.failures < self.spec.consecutive_failures or now < replica.ejected_until:
            return
        ejected = sum(1 for r in self.replicas if now < r.ejected_until)
        allowed = max(1, int(self.spec.max_ejected * len(self.replicas)))
        if ejected >= allowed:
            return
        replica.ejections += 1
        duration = min(self.spec.ejection * replica.ejections, MAX_EJECTION)
        replica.ejected_until = now + duration
        replica.failures = 0
        if self.metrics is not None:
            self.metrics.ejected(replica.url)
        logger.warning(
            "ejected replica",
            extra={"backend": self.backend, "replica": replica.url, "seconds": duration},
        )

    def timed_out(self, replica: Replica, since: float, limit: float) -> None:
        """A timer of ``limit`` seconds, started at ``since`` (``time.monotonic()``), fired:
        a failure of the replica, unless the gateway's own loop stalled meanwhile (then the
        timer measured the gateway, not the replica)."""
        if loop.stalled(since, limit):
            logger.info(
                "timeout during a stall of the gateway's event loop: not held against the replica",
                extra={"backend": self.backend, "replica": replica.url},
            )
            return
        self.failed(replica)

    def succeeded(self, replica: Replica) -> None:
        replica.failures = 0
        if replica.ejected_until and time.monotonic() >= replica.ejected_until:
            replica.ejected_until = 0.0
            replica.ejections = 0
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, True)
