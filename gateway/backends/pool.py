"""A backend's replicas: balancing, health, outlier ejection, circuit breaking, retries, deadline.

- **Balancing**: power of two random choices on outstanding requests.
- **Active health**: each replica × model version is probed with the server kind's real readiness
  check every ``health.interval``; ``unhealthy_after`` failures take it out, ``healthy_after``
  successes bring it back.
- **Outlier ejection**: ``consecutive_failures`` local-origin failures (connect error, reset,
  timeout) eject a replica for ``ejection × times ejected`` (at most 5 min), never more than
  ``max_ejected`` of the replicas. HTTP error statuses do not count: TorchServe answers 503 for a
  handler error caused by bad input, which says nothing about the replica.
- **Circuit breaker**: at most ``max_in_flight`` requests per backend; beyond it, 503 at once.
- **Retries** (tenacity): only where safe — the connection was never made, or an idle replica
  answered 503 — on another replica, within a retry budget, inside the overall deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry.trace import Span
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from gateway import tracing
from gateway.backends.base import Target, UpstreamReply
from gateway.config import Backend
from gateway.errors import BadGateway, NoHealthyReplica, Overloaded, UpstreamTimeout
from gateway.metrics import BackendMetrics
from gateway.timing import CURRENT_TIMING, record_upstream

logger = logging.getLogger("gateway.pool")

Probe = Callable[["Replica", Target], Awaitable[bool]]
_MAX_EJECTION = 300.0


class Replica:
    """One server address and what the pool has learnt about it."""

    __slots__ = (
        "ejected_until",
        "ejections",
        "failures",
        "management_url",
        "outstanding",
        "probe_streaks",
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
        self.unready: set[tuple[str, str | None]] = set()
        self.probe_streaks: dict[tuple[str, str | None], int] = {}

    def available(self, key: tuple[str, str | None] | None, now: float) -> bool:
        return now >= self.ejected_until and (key is None or key not in self.unready)

    def state(self, now: float) -> dict[str, Any]:
        return {
            "url": self.url,
            "outstanding": self.outstanding,
            "ejected_for": round(max(0.0, self.ejected_until - now), 3),
            "unready": sorted(f"{n}/{v or ''}" for n, v in self.unready),
        }


class RetryBudget:
    """Retries may be at most ``ratio`` of requests over a 10 s window, plus a floor per second."""

    _WINDOW = 10

    def __init__(self, ratio: float, min_per_second: float) -> None:
        self._ratio = ratio
        self._floor = min_per_second * self._WINDOW
        self._buckets: dict[int, list[int]] = {}

    def _bucket(self) -> list[int]:
        now = int(time.monotonic())
        bucket = self._buckets.get(now)
        if bucket is None:
            for old in [t for t in self._buckets if t <= now - self._WINDOW]:
                del self._buckets[old]
            bucket = self._buckets[now] = [0, 0]
        return bucket

    def record_request(self) -> None:
        self._bucket()[0] += 1

    def try_spend(self) -> bool:
        bucket = self._bucket()
        requests = sum(b[0] for b in self._buckets.values())
        retries = sum(b[1] for b in self._buckets.values())
        if retries >= max(self._floor, self._ratio * requests):
            return False
        bucket[1] += 1
        return True


@dataclass(slots=True)
class _Attempt:
    replica: Replica
    response: aiohttp.ClientResponse
    started: float
    span: Span | None = None

    def discard(self) -> None:
        self.response.release()
        self.replica.outstanding -= 1
        self.end_span()

    def end_span(self) -> None:
        if self.span is not None:
            tracing.end_client_span(self.span, self.response.status, None)
            self.span = None


class _Retryable(Exception):
    """A try that may be repeated elsewhere; ``attempt`` holds a reply kept as a last resort."""

    def __init__(self, reason: str, attempt: _Attempt | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempt = attempt


class ReplicaPool:
    """The replicas of one backend, sharing the worker's ``aiohttp.ClientSession``."""

    def __init__(
        self,
        name: str,
        spec: Backend,
        session: aiohttp.ClientSession,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = metrics
        self.spec = spec
        self.session = session
        management: list[str | None] = [None] * len(spec.urls)
        if spec.management_urls is not None:
            management = list(spec.management_urls)
        self.replicas = [Replica(u, m) for u, m in zip(spec.urls, management, strict=True)]
        self.in_flight = 0
        self.budget = RetryBudget(spec.retries.budget, spec.retries.min_per_second)
        self._health_task: asyncio.Task[None] | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout, sock_read=spec.timeout
        )

    # -- choosing ---------------------------------------------------------------------------

    def choose(self, key: tuple[str, str | None] | None, tried: set[int]) -> Replica:
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

    # -- sending ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: tuple[str, str | None] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        management: bool = False,
    ) -> UpstreamReply:
        """Send a buffered request and read the whole reply (:meth:`stream` without the
        generator-based context manager, which costs more than it gives on the hot path)."""
        self._enter()
        attempt: _Attempt | None = None
        try:
            async with asyncio.timeout(self.spec.overall_deadline):
                attempt = await self._open(method, path, key, body, headers, management)
                try:
                    data = await attempt.response.read()
                except TimeoutError as exc:
                    raise UpstreamTimeout(f"backend {self.name!r} timed out") from exc
                except aiohttp.ClientError as exc:
                    raise BadGateway(f"the model server's reply was cut off: {exc}") from exc
        except TimeoutError as exc:
            raise self._deadline_passed(attempt) from exc
        finally:
            self._leave(attempt)
        elapsed = time.perf_counter() - attempt.started
        record_upstream(elapsed)
        return UpstreamReply(attempt.response.status, attempt.response.headers, data, elapsed)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        key: tuple[str, str | None] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        management: bool = False,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, float]]:
        """Open a request on a chosen replica; the response is read by the caller."""
        self._enter()
        attempt: _Attempt | None = None
        try:
            async with asyncio.timeout(self.spec.overall_deadline):
                attempt = await self._open(method, path, key, body, headers, management)
                yield attempt.response, attempt.started
        except TimeoutError as exc:
            raise self._deadline_passed(attempt) from exc
        finally:
            self._leave(attempt)

    def _enter(self) -> None:
        """The circuit breaker: at most ``max_in_flight`` requests to this backend."""
        metrics = self.metrics
        if self.in_flight >= self.spec.max_in_flight:
            if metrics is not None:
                metrics.breaker_open.inc()
            raise Overloaded(
                f"backend {self.name!r} has {self.in_flight} requests in flight",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        if metrics is not None:
            metrics.in_flight.inc()

    def _leave(self, attempt: _Attempt | None) -> None:
        self.in_flight -= 1
        if self.metrics is not None:
            self.metrics.in_flight.dec()
        if attempt is not None:
            attempt.response.release()
            attempt.replica.outstanding -= 1
            attempt.end_span()

    def _deadline_passed(self, attempt: _Attempt | None) -> UpstreamTimeout:
        if attempt is not None:
            self._failed(attempt.replica)
        return UpstreamTimeout(
            f"backend {self.name!r} did not answer within {self.spec.overall_deadline:g}s"
        )

    async def _open(
        self,
        method: str,
        path: str,
        key: tuple[str, str | None] | None,
        body: Any,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        management: bool,
    ) -> _Attempt:
        """The first try goes straight out; only a retryable failure builds the tenacity loop
        (building it for every request cost more than the rest of this method)."""
        self.budget.record_request()
        replica = self.choose(key, set())
        try:
            return await self._try(replica, method, path, body, headers, management)
        except _Retryable as first:
            tried = {self.replicas.index(replica)}
            return await self._retry(first, tried, method, path, key, body, headers, management)

    async def _retry(
        self,
        first: _Retryable,
        tried: set[int],
        method: str,
        path: str,
        key: tuple[str, str | None] | None,
        body: Any,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        management: bool,
    ) -> _Attempt:
        last = first
        spend: Callable[[BaseException], bool] = lambda e: (  # noqa: E731
            isinstance(e, _Retryable) and self.budget.try_spend()
        )
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.spec.retries.attempts),
            retry=retry_if_exception(spend),
            reraise=True,
        )
        try:
            async for retry in retrying:
                with retry:
                    if retry.retry_state.attempt_number == 1:
                        raise first  # the try _open made: tenacity decides whether to go on
                    try:
                        replica = self.choose(key, tried)
                    except NoHealthyReplica:
                        raise last from None
                    tried.add(self.replicas.index(replica))
                    try:
                        return await self._try(replica, method, path, body, headers, management)
                    except _Retryable as exc:
                        if last.attempt is not None:
                            last.attempt.discard()
                        last = exc
                        raise
        except _Retryable as exc:
            if exc.attempt is not None:
                return exc.attempt  # retries spent: the idle replica's 503 is the answer
            raise NoHealthyReplica(
                f"could not connect to backend {self.name!r}: {exc.reason}"
            ) from exc
        except BaseException:
            if last.attempt is not None:
                last.attempt.discard()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _try(
        self,
        replica: Replica,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        management: bool,
    ) -> _Attempt:
        base = replica.management_url if management and replica.management_url else replica.url
        idle = replica.outstanding == 0
        timeout = self._timeout
        timing = CURRENT_TIMING.get()
        number = 1
        if timing is not None:
            timing.attempts += 1
            number = timing.attempts
            timing.backend, timing.replica = self.name, replica.url
        metrics = self.metrics
        if metrics is not None and number > 1:
            metrics.retries.inc()
        span: Span | None = None
        tracer = tracing.TRACER
        if tracer is not None:
            span = tracing.client_span(tracer, method, base + path, self.name, replica.url, number)
            headers = tracing.inject(headers, span)
        replica.outstanding += 1
        started = time.perf_counter()
        try:
            response = await self.session.request(
                method, base + path, data=body, headers=headers, timeout=timeout
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            self._attempt_failed(replica, "retryable", span, exc)
            raise _Retryable(f"{replica.url}: {exc.__class__.__name__}") from exc
        except aiohttp.SocketTimeoutError as exc:
            self._attempt_failed(replica, "timeout", span, exc)
            raise UpstreamTimeout(
                f"backend {self.name!r} did not answer within {self.spec.timeout:g}s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            self._attempt_failed(replica, "error", span, exc)
            raise BadGateway(f"the connection to the model server failed: {exc}") from exc
        except BaseException as exc:
            replica.outstanding -= 1
            if span is not None:
                tracing.end_client_span(span, None, exc)
            raise
        attempt = _Attempt(replica, response, started, span)
        if response.status == 503 and idle:
            # An idle replica that says 503 is not overloaded: it cannot serve. Try another.
            if metrics is not None:
                metrics.attempt["retryable"].inc()
            raise _Retryable(f"{replica.url}: 503 while idle", attempt)
        if metrics is not None:
            metrics.attempt["ok"].inc()
        self._succeeded(replica)
        return attempt

    def _attempt_failed(
        self, replica: Replica, outcome: str, span: Span | None, exc: BaseException
    ) -> None:
        replica.outstanding -= 1
        self._failed(replica)
        if self.metrics is not None:
            self.metrics.attempt[outcome].inc()
        if span is not None:
            tracing.end_client_span(span, None, exc)

    # -- outlier ejection -------------------------------------------------------------------

    def _failed(self, replica: Replica) -> None:
        replica.failures += 1
        now = time.monotonic()
        if replica.failures < self.spec.outlier.consecutive_failures or now < replica.ejected_until:
            return
        ejected = sum(1 for r in self.replicas if now < r.ejected_until)
        allowed = max(1, int(self.spec.outlier.max_ejected * len(self.replicas)))
        if ejected >= allowed:
            return
        replica.ejections += 1
        duration = min(self.spec.outlier.ejection * replica.ejections, _MAX_EJECTION)
        replica.ejected_until = now + duration
        replica.failures = 0
        if self.metrics is not None:
            self.metrics.ejected(replica.url)
        logger.warning(
            "ejected replica",
            extra={"backend": self.name, "replica": replica.url, "seconds": duration},
        )

    def _succeeded(self, replica: Replica) -> None:
        replica.failures = 0
        if replica.ejected_until and time.monotonic() >= replica.ejected_until:
            replica.ejected_until = 0.0
            replica.ejections = 0
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, True)

    # -- active health ----------------------------------------------------------------------

    def start_health_checks(self, probe: Probe, targets: list[Target]) -> None:
        # Versions that name the same server model are one target: probe it once per round.
        targets = list({t.key: t for t in targets}.values())
        if targets and self._health_task is None:
            self._health_task = asyncio.create_task(
                self._health_loop(probe, targets), name=f"health:{self.name}"
            )

    async def check_once(self, probe: Probe, targets: list[Target]) -> None:
        targets = list({t.key: t for t in targets}.values())
        await asyncio.gather(*(self._probe(probe, r, t) for r in self.replicas for t in targets))

    async def _health_loop(self, probe: Probe, targets: list[Target]) -> None:
        while True:
            await self.check_once(probe, targets)
            await asyncio.sleep(self.spec.health.interval)

    async def _probe(self, probe: Probe, replica: Replica, target: Target) -> None:
        try:
            async with asyncio.timeout(self.spec.health.timeout):
                ok = await probe(replica, target)
        except (TimeoutError, aiohttp.ClientError, OSError):
            ok = False
        key = target.key
        streak = replica.probe_streaks.get(key, 0)
        streak = max(1, streak + 1) if ok else min(-1, streak - 1)
        replica.probe_streaks[key] = streak
        if ok and key in replica.unready and streak >= self.spec.health.healthy_after:
            replica.unready.discard(key)
            replica.ejected_until = 0.0
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, True)
            logger.info("replica ready", extra={"backend": self.name, "replica": replica.url})
        elif not ok and key not in replica.unready and -streak >= self.spec.health.unhealthy_after:
            replica.unready.add(key)
            if self.metrics is not None:
                self.metrics.replica_up(replica.url, False)
            logger.warning(
                "replica not ready",
                extra={"backend": self.name, "replica": replica.url, "model": target.name},
            )

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "kind": self.spec.kind,
            "in_flight": self.in_flight,
            "replicas": [r.state(now) for r in self.replicas],
        }
