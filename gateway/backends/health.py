"""Active health checks: every replica × served model version probed with the server kind's
real readiness check every ``health.interval``; ``unhealthy_after`` failed probes take that
version's traffic off the replica, ``healthy_after`` good ones bring it back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from gateway.backends.replica import Replica
from gateway.backends.spec import HealthCheck
from gateway.backends.tls import tls_reason
from gateway.backends.upstream import Target
from gateway.telemetry.metrics import BackendMetrics

logger = logging.getLogger("gateway.pool")

Probe = Callable[[Replica, Target], Awaitable[bool]]


class HealthChecker:
    def __init__(
        self,
        backend: str,
        spec: HealthCheck,
        replicas: Sequence[Replica],
        metrics: BackendMetrics | None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.replicas = replicas
        self.metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self, probe: Probe, targets: list[Target]) -> None:
        # Versions that name the same server model are one target: probe it once per round.
        targets = list({t.key: t for t in targets}.values())
        if targets and self._task is None:
            self._task = asyncio.create_task(
                self._loop(probe, targets), name=f"health:{self.backend}"
            )

    async def check_once(self, probe: Probe, targets: list[Target]) -> None:
        targets = list({t.key: t for t in targets}.values())
        await asyncio.gather(*(self._probe(probe, r, t) for r in self.replicas for t in targets))

    async def _loop(self, probe: Probe, targets: list[Target]) -> None:
        while True:
            await self.check_once(probe, targets)
            await asyncio.sleep(self.spec.interval)

    async def _probe(self, probe: Probe, replica: Replica, target: Target) -> None:
        error = None
        try:
            async with asyncio.timeout(self.spec.timeout):
                ok = await probe(replica, target)
        except TimeoutError:
            ok, error = False, f"no answer within {self.spec.timeout:g}s"
        except aiohttp.ClientSSLError as exc:  # say why: a wrong CA or name is a config error
            ok, error = False, f"TLS handshake failed: {tls_reason(exc)}"
        except (aiohttp.ClientError, OSError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        key = target.key
        streak = replica.probe_streaks.get(key, 0)
        streak = max(1, streak + 1) if ok else min(-1, streak - 1)
        replica.probe_streaks[key] = streak
        if ok and key in replica.unready and streak >= self.spec.healthy_after:
            replica.unready.discard(key)
            replica.ejected_until = 0.0
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, True)
            logger.info("replica ready", extra={"backend": self.backend, "replica": replica.url})
        elif not ok and key not in replica.unready and -streak >= self.spec.unhealthy_after:
            replica.unready.add(key)
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, False)
            extra = {"backend": self.backend, "replica": replica.url, "model": target.name}
            logger.warning("replica not ready", extra=extra | ({"error": error} if error else {}))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
