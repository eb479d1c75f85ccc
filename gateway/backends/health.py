"""Active health checks that cost O(replicas), not O(models × replicas).

Every ``health.interval``, for each replica (the kind's checks: ``readiness``):

1. **Server readiness**: one request. ``unhealthy_after`` failures in a row take the replica
   out for every model (``Replica.down``), ``healthy_after`` good ones bring it back. While it
   does not answer, nothing else is asked of it.
2. **Model readiness in bulk**, where the server has an API for it: one call (TorchServe: one
   per 100 registered models) gives every model version's state, used or not.
3. **Per-model probes**, lazily and at most ``probes_per_second`` per replica (``probe_queue``),
   where the bulk answer is not final: a kind without a bulk API (TF Serving), TorchServe's
   workers, and any kind whose bulk call failed (then every routed version in turn). A version
   is probed when first used, after a failed call on live traffic, and each interval while it is
   unready or its last verdict failed; never twice in one interval, its first use aside.

Verdicts count the same whatever their source: ``unhealthy_after`` failed ones take that model
version's traffic off the replica, ``healthy_after`` good ones bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Literal, TypeVar

import aiohttp

from gateway.backends.probe_queue import ProbeQueue, burst_of
from gateway.backends.readiness import IndexUnavailable, ModelIndex, Readiness, RepositoryIndex
from gateway.backends.replica import Replica, TargetKey
from gateway.backends.spec import HealthCheck
from gateway.backends.tls import tls_reason
from gateway.backends.upstream import Target
from gateway.telemetry.metrics import BackendMetrics

logger = logging.getLogger("gateway.pool")
Source = Literal["starting", "index", "index+probes", "probes", "fallback"]
"""How a replica's model readiness is known: not yet; from the bulk index alone; from the index
and per-model probes (TorchServe's workers); from probes (no bulk API); from probes because the
bulk call failed."""
_LOGGED = 10  # model versions named in one log line, at most
_T = TypeVar("_T")


class _Watch:
    """One replica as the checker follows it."""

    __slots__ = ("queue", "replica", "source")

    def __init__(self, replica: Replica, queue: ProbeQueue) -> None:
        self.replica = replica
        self.queue = queue
        self.source: Source = "starting"


class HealthChecker:
    """The health checks of one backend's replicas: a task for the rounds (every interval) and
    one for the per-model probes (as they fall due). ``clock`` is ``time.monotonic``."""

    def __init__(
        self,
        backend: str,
        spec: HealthCheck,
        replicas: Sequence[Replica],
        metrics: BackendMetrics | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.replicas = replicas
        self.metrics = metrics
        self.clock = clock
        self.readiness: Readiness | None = None
        self.targets: dict[TargetKey, Target] = {}
        self.used: set[TargetKey] = set()  # versions a call was routed to (first use seen)
        rate = spec.probes_per_second
        self._watches = {
            id(r): _Watch(r, ProbeQueue(rate, burst_of(rate), spec.interval)) for r in replicas
        }
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- what the pool tells ---------------------------------------------------------------------

    def start(self, readiness: Readiness, targets: Iterable[Target]) -> None:
        """Watch ``targets`` with ``readiness``; called again, only the targets change."""
        self.readiness = readiness
        self.retarget(targets)
        if self.targets and not self._tasks:
            name = f"health:{self.backend}"
            self._tasks = [
                asyncio.create_task(self._rounds(), name=name),
                asyncio.create_task(self._probes(), name=f"{name}:probes"),
            ]

    def retarget(self, targets: Iterable[Target]) -> None:
        """The model versions to watch (versions naming the same server model are one)."""
        self.targets = {t.key: t for t in targets}
        self.used &= self.targets.keys()
        for replica in self.replicas:  # forget what is known of versions no longer routed
            replica.unready &= self.targets.keys()
            replica.absent &= self.targets.keys()
            for key in replica.probe_streaks.keys() - self.targets.keys():
                del replica.probe_streaks[key]

    def first_use(self, key: TargetKey) -> None:
        """A call was routed to ``key`` for the first time: probe it where no bulk index
        covers it (where it is unready already, each round probes it or the index judges it)."""
        self.used.add(key)
        if key not in self.targets:
            return
        now = self.clock()
        for watch in self._watches.values():
            if watch.source != "index" and key not in watch.replica.unready:
                watch.queue.want(key, now, soon=True)
        self._wake.set()

    def failed(self, replica: Replica, key: TargetKey) -> None:
        """A call for ``key`` failed on ``replica`` (no answer, a 5xx, a 404): probe it there
        (at most once an interval) unless a bulk index covers it."""
        watch = self._watches.get(id(replica))
        if watch is None or watch.source == "index" or key not in self.targets:
            return
        if watch.queue.want(key, self.clock()):
            self._wake.set()

    def source(self, replica: Replica) -> Source:
        watch = self._watches.get(id(replica))
        return watch.source if watch is not None else "starting"

    # -- checking ----------------------------------------------------------------------------

    async def check_once(self) -> None:
        """One round for every replica, then the per-model probes due now that the rate allows
        (the background tasks do the same, spread over time)."""
        await self.check_round()
        await self.probe_due()

    async def check_round(self) -> None:
        await asyncio.gather(*(self._round(w) for w in self._watches.values()))
        self._wake.set()

    async def probe_due(self) -> bool:
        """Probe what is due and allowed now on every replica that is up; False if nothing."""
        now = self.clock()
        probes = [
            self._probe(watch, self.targets[key])
            for watch in self._watches.values()
            if not watch.replica.down
            for key in watch.queue.take(now)
            if key in self.targets
        ]
        await asyncio.gather(*probes)
        return bool(probes)

    async def _rounds(self) -> None:
        while True:
            try:
                await self.check_round()
            except Exception:  # a bug must not end the checks for good: say it, go on
                logger.exception("health check round failed", extra={"backend": self.backend})
            await asyncio.sleep(self.spec.interval)

    async def _probes(self) -> None:
        while True:
            try:
                if await self.probe_due():
                    continue
            except Exception:  # as in _rounds
                logger.exception("health probes failed", extra={"backend": self.backend})
            now = self.clock()
            due = [
                at
                for w in self._watches.values()
                if not w.replica.down and (at := w.queue.next_at(now)) is not None
            ]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(due) - now) if due else None):
                    await self._wake.wait()

    async def _round(self, watch: _Watch) -> None:
        readiness = self.readiness
        if readiness is None:
            return
        replica = watch.replica
        up, error = await self._ask(readiness.server_ready(replica), self.spec.timeout)
        if up is not None or error is not None:
            self._server(replica, bool(up), error)
            if not up:
                return
        # one call however many models (TorchServe: one a page): the interval bounds it
        bulk_timeout = max(self.spec.timeout, self.spec.interval)
        index, error = await self._ask(readiness.model_index(replica), bulk_timeout)
        now = self.clock()
        answered: set[TargetKey] = set()
        if index is not None:
            answered = self._apply(replica, index)
            source: Source = "index" if index.complete else "index+probes"
        else:
            source = "fallback" if error is not None else "probes"
        if source != watch.source and "fallback" in (source, watch.source):
            extra = {"backend": self.backend, "replica": replica.url}
            if source == "fallback":
                message = "bulk readiness failed: per-model probes at the bounded rate"
                logger.warning(message, extra=extra | {"error": error})
            else:
                logger.info("bulk readiness answers again", extra=extra)
        watch.source = source
        queue = watch.queue
        if source == "index":
            queue.discard()
        elif source == "fallback":
            for key in self.targets:
                queue.want(key, now)
        else:  # what is unready or failing, and the index did not judge this round
            for key in (replica.unready | replica.probe_streaks.keys()) - answered:
                if key in self.targets:
                    queue.want(key, now)
            queue.discard(answered)
        queue.prune(now)

    async def _ask(self, asked: Awaitable[_T], within: float) -> tuple[_T | None, str | None]:
        """What a check answered ``within`` seconds, or None and why it failed."""
        try:
            async with asyncio.timeout(within):
                return await asked, None
        except TimeoutError:
            return None, f"no answer within {within:g}s"
        except aiohttp.ClientSSLError as exc:  # say why: a wrong CA or name is a config error
            return None, f"TLS handshake failed: {tls_reason(exc)}"
        except IndexUnavailable as exc:
            return None, str(exc)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _probe(self, watch: _Watch, target: Target) -> None:
        readiness = self.readiness
        if readiness is None:
            return
        replica = watch.replica
        ok, error = await self._ask(readiness.probe(replica, target), self.spec.timeout)
        change = self._observe(replica, target.key, bool(ok), error or "")
        if change is None:
            return
        self._up(replica, change == "ready")
        extra = {
            "backend": self.backend,
            "replica": replica.url,
            "model": target.name,
            "version": target.native_version,
        }
        if change == "ready":
            logger.info("replica ready", extra=extra)
        else:
            logger.warning("replica not ready", extra=extra | ({"error": error} if error else {}))

    # -- verdicts ----------------------------------------------------------------------------

    def _server(self, replica: Replica, up: bool, error: str | None) -> None:
        """Count a server verdict; ``unhealthy_after`` bad ones in a row take the replica out
        for every model, ``healthy_after`` good ones bring it back."""
        streak = replica.server_streak
        streak = max(1, streak + 1) if up else min(-1, streak - 1)
        replica.server_streak = streak
        extra = {"backend": self.backend, "replica": replica.url}
        if up and replica.down and streak >= self.spec.healthy_after:
            replica.down = False
            replica.ejected_until = 0.0
            self._up(replica, True)
            logger.info("replica ready", extra=extra)
        elif not up and not replica.down and -streak >= self.spec.unhealthy_after:
            replica.down = True
            self._up(replica, False)
            logger.warning("replica not ready", extra=extra | ({"error": error} if error else {}))

    def _apply(self, replica: Replica, index: ModelIndex) -> set[TargetKey]:
        """Count the index's verdict on every target; the keys it judged."""
        answered: set[TargetKey] = set()
        ready: list[TargetKey] = []
        unready: list[tuple[TargetKey, str]] = []
        listing = index if isinstance(index, RepositoryIndex) else None
        for key in self.targets:
            verdict = index.verdict(key)
            if verdict is None:
                continue
            answered.add(key)
            if listing is not None and not listing.lists(key):
                replica.absent.add(key)
            else:
                replica.absent.discard(key)
            change = self._observe(replica, key, *verdict)
            if change == "ready":
                ready.append(key)
            elif change == "unready":
                unready.append((key, verdict[1]))
        if unready or ready:
            self._up(replica, not unready)
        extra = {"backend": self.backend, "replica": replica.url}
        if ready:
            logger.info("replica ready", extra=extra | _named([k for k in ready]))
        if unready:
            named = _named([k for k, _ in unready])
            logger.warning("replica not ready", extra=extra | named | {"error": unready[0][1]})
        return answered

    def _observe(
        self, replica: Replica, key: TargetKey, ok: bool, error: str
    ) -> Literal["ready", "unready"] | None:
        """Count one verdict on ``key``; the change it made, if any. A streak is kept only
        while it counts toward a change."""
        streaks = replica.probe_streaks
        unready = key in replica.unready
        if ok and not unready:
            if streaks:
                streaks.pop(key, None)
            return None
        if not ok and unready:
            streaks.pop(key, None)
            return None
        streak = streaks.get(key, 0)
        if ok:
            streak = max(1, streak + 1)
            if streak >= self.spec.healthy_after:
                replica.unready.discard(key)
                replica.ejected_until = 0.0
                streaks.pop(key, None)
                return "ready"
        else:
            streak = min(-1, streak - 1)
            if -streak >= self.spec.unhealthy_after:
                replica.unready.add(key)
                streaks.pop(key, None)
                return "unready"
        streaks[key] = streak
        return None

    def _up(self, replica: Replica, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.replica_up(replica.url, up)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def _named(keys: list[TargetKey]) -> dict[str, object]:
    """Log fields naming the model versions (the first few) and how many there are."""
    if len(keys) == 1:
        return {"model": keys[0][0], "version": keys[0][1]}
    shown = [f"{n}/{v or ''}" for n, v in keys[:_LOGGED]]
    return {"models": shown, "count": len(keys)}
