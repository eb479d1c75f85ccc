"""A backend's replicas over HTTP: balancing, retries and the deadline, over the parts that
watch them.

- **Balancing** (``replica_set``): power of two random choices on outstanding requests, among
  the replicas that are neither ejected (``replica``: outlier ejection) nor unready for the
  model version (``health``: active checks).
- **Circuit breaker** (``breaker``): at most ``max_in_flight`` requests per backend.
- **TLS** (``tls``): https:// replicas are verified with the system's CAs, or with the
  backend's ``tls:`` block (its CA bundle, client certificate and verified name), whose context
  was built when routes.yaml was loaded.
- **Retries** (tenacity): only where safe — the connection was never made, or an idle replica
  answered 503 — on another replica, within a retry budget (``retries``), inside the overall
  deadline.
- **Clients**: buffered requests (:meth:`ReplicaPool.request`, the adapters' hot path) go
  through the worker's lean HTTP/1.1 client (``h1``), which reads the whole reply; streamed
  ones (:meth:`ReplicaPool.stream`, passthrough) and readiness probes through its
  ``aiohttp.ClientSession``. Both share the TLS settings and the error mapping below. As the
  h1 client reads the whole reply within the try, a read timeout or a reply cut off mid-body
  counts against the replica (outlier detection, the attempt metrics) wherever it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry.trace import Span
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from gateway.backends.breaker import adder
from gateway.backends.h1 import errors as h1
from gateway.backends.h1.client import Client
from gateway.backends.h1.connection import Reply
from gateway.backends.h1.origin import OriginPool
from gateway.backends.replica import Replica, TargetKey
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.tls import tls_reason
from gateway.backends.upstream import UpstreamReply
from gateway.deadline import Deadline, Deadlines
from gateway.errors import BadGateway, NoHealthyReplica, UpstreamTimeout
from gateway.telemetry import loop, tracing
from gateway.telemetry.metrics import BackendMetrics
from gateway.telemetry.timing import CURRENT_TIMING, record_upstream

logger = logging.getLogger("gateway.pool")
_NO_TRIES: frozenset[int] = frozenset()  # a request's first choice leaves no replica out
# what one request sends, from _open to each _try: method, path, body, headers, management,
# buffered
_Sent = tuple[str, str, Any, Mapping[str, str] | list[tuple[str, str]] | None, bool, bool]


@dataclass(slots=True)
class _Attempt:
    """One try's answer: an aiohttp response still to be read (``stream``) or a reply read
    whole by the h1 client (``request``)."""

    replica: Replica
    status: int
    started: float
    span: Span | None = None
    response: aiohttp.ClientResponse | None = None
    reply: Reply | None = None

    def release(self) -> None:
        if self.response is not None:
            self.response.release()

    def discard(self) -> None:
        self.release()
        self.replica.outstanding -= 1
        self.end_span()

    def end_span(self) -> None:
        if self.span is not None:
            tracing.end_client_span(self.span, self.status, None)
            self.span = None


class _Retryable(Exception):
    """A try that may be repeated elsewhere (or, ``again``, on the same replica: its connect
    timer fired while the gateway's loop stalled); ``attempt`` holds a reply kept as a last
    resort."""

    def __init__(self, reason: str, attempt: _Attempt | None = None, again: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempt = attempt
        self.again = again


class ReplicaPool(ReplicaSet):
    """The replicas of one HTTP backend, sharing the worker's h1 ``Client`` (buffered
    requests) and ``aiohttp.ClientSession`` (streams and probes)."""

    def __init__(
        self,
        name: str,
        spec: BackendSpec,
        session: aiohttp.ClientSession,
        client: Client,
        metrics: BackendMetrics | None = None,
    ) -> None:
        super().__init__(name, spec, metrics)
        self.session = session
        self.client = client
        # an attempt answered: its counter's inc, bound once (breaker.adder)
        self._answered = adder(metrics.attempt["ok"]) if metrics is not None else None
        self._origins: dict[str, tuple[OriginPool, str]] = {}  # replica base URL -> its origin
        self._deadlines = Deadlines(spec.overall_deadline)  # every request's, on one timer
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=spec.connect_timeout, sock_read=spec.timeout
        )
        # aiohttp's own default (True: the system's CAs) without a tls block
        self._ssl: ssl.SSLContext | bool = True
        self._server_hostname: str | None = None
        if spec.tls is not None:
            self._ssl = spec.tls.material.context
            self._server_hostname = spec.tls.server_name
            if spec.tls.insecure_skip_verify:
                logger.warning(
                    "TLS certificates of the backend's replicas are not verified "
                    "(insecure_skip_verify)",
                    extra={"backend": name},
                )

    def get(self, url: str) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """A bare GET on the worker's session with this backend's TLS settings (readiness
        probes: no breaker, no retries)."""
        return self.session.get(url, ssl=self._ssl, server_hostname=self._server_hostname)

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """A bare POST, as :meth:`get` (the bulk readiness index)."""
        return self.session.post(
            url, data=body, headers=headers, ssl=self._ssl, server_hostname=self._server_hostname
        )

    # -- sending ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: TargetKey | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        management: bool = False,
    ) -> UpstreamReply:
        """Send a buffered request and read the whole reply, with the h1 client (:meth:`stream`
        without the generator-based context manager, which costs more than it gives on the hot
        path)."""
        deadline = self._enter()
        attempt: _Attempt | None = None
        try:
            # _open's steps, one coroutine less on the hot path
            self.budget.record_request()
            replica = self.choose(key, _NO_TRIES)
            sent = (method, path, body, headers, management, True)
            try:
                attempt = await self._try(replica, key, 1, *sent)
            except _Retryable as first:
                attempt = await self._retry(first, replica, key, sent)
        except asyncio.CancelledError:
            if deadline.passed():
                raise self._deadline_passed(attempt) from TimeoutError()
            raise
        except TimeoutError as exc:
            raise self._deadline_passed(attempt) from exc
        finally:
            deadline.end()
            self._leave(attempt)
        reply = attempt.reply
        assert reply is not None
        elapsed = time.perf_counter() - attempt.started
        record_upstream(elapsed)
        return UpstreamReply(reply, elapsed)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        key: TargetKey | None = None,
        body: Any = None,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
        management: bool = False,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, float]]:
        """Open a request on a chosen replica; the response is read by the caller."""
        deadline = self._enter()
        attempt: _Attempt | None = None
        try:
            attempt = await self._open(method, path, key, body, headers, management, False)
            assert attempt.response is not None
            yield attempt.response, attempt.started
        except asyncio.CancelledError:
            if deadline.passed():
                raise self._deadline_passed(attempt) from TimeoutError()
            raise
        except TimeoutError as exc:
            raise self._deadline_passed(attempt) from exc
        finally:
            deadline.end()
            self._leave(attempt)

    def _enter(self) -> Deadline:
        """The breaker entered, and the request's deadline started (ended at once if the
        breaker trips)."""
        deadline = self._deadlines.start()
        try:
            self.breaker.enter()
        except BaseException:
            deadline.end()
            raise
        return deadline

    def _leave(self, attempt: _Attempt | None) -> None:
        self.breaker.leave()
        if attempt is not None:  # (_Attempt.release and end_span, inlined: the hot path)
            if attempt.response is not None:
                attempt.response.release()
            attempt.replica.outstanding -= 1
            if attempt.span is not None:
                attempt.end_span()

    def _deadline_passed(self, attempt: _Attempt | None) -> UpstreamTimeout:
        if attempt is not None:
            since = _since(attempt.started)
            self.outliers.timed_out(attempt.replica, since, self.spec.overall_deadline)
        return UpstreamTimeout(
            f"backend {self.name!r} did not answer within {self.spec.overall_deadline:g}s"
        )

    async def _open(
        self,
        method: str,
        path: str,
        key: TargetKey | None,
        body: Any,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        management: bool,
        buffered: bool,
    ) -> _Attempt:
        """The first try goes straight out; only a retryable failure builds the tenacity loop
        (building it for every request cost more than the rest of this method). ``buffered``:
        the h1 client reads the whole reply; else aiohttp's response is left to the caller."""
        self.budget.record_request()
        replica = self.choose(key, _NO_TRIES)
        sent = (method, path, body, headers, management, buffered)
        try:
            return await self._try(replica, key, 1, *sent)
        except _Retryable as first:
            return await self._retry(first, replica, key, sent)

    async def _retry(
        self, first: _Retryable, replica: Replica, key: TargetKey | None, sent: _Sent
    ) -> _Attempt:
        """The tries after ``first``, the one made on ``replica``."""
        tried = set() if first.again else {self.replicas.index(replica)}
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
                    number = retry.retry_state.attempt_number
                    try:
                        return await self._try(replica, key, number, *sent)
                    except _Retryable as exc:
                        if exc.again:
                            tried.discard(self.replicas.index(replica))
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
        key: TargetKey | None,
        number: int,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        management: bool,
        buffered: bool,
    ) -> _Attempt:
        """Try ``number`` of one pool request (1: ``_open``'s; more: ``_retry``'s)."""
        base = replica.management_url if management and replica.management_url else replica.url
        idle = replica.outstanding == 0
        timeout = self._timeout
        timing = CURRENT_TIMING.get()
        if timing is not None:
            timing.backend, timing.replica = self.name, replica.url
        metrics = self.metrics
        if number > 1:  # a retry, on another replica
            if timing is not None:
                timing.retries += 1
            if metrics is not None:
                metrics.retries.inc()
        span: Span | None = None
        tracer = tracing.TRACER
        if tracer is not None:
            span = tracing.client_span(tracer, method, base + path, self.name, replica.url, number)
            headers = tracing.inject(headers, span)
        replica.outstanding += 1
        started = time.perf_counter()
        try:
            if buffered:
                origin, prefix = self._origins.get(base) or self._origin(base)
                spec = self.spec
                reply = await origin.request(
                    method,
                    prefix + path,
                    headers,
                    body,
                    connect_timeout=spec.connect_timeout,
                    read_timeout=spec.timeout,
                )
                attempt = _Attempt(replica, reply.status, started, span, None, reply)
            else:
                response = await self.session.request(
                    method,
                    base + path,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
                attempt = _Attempt(replica, response.status, started, span, response=response)
        except (aiohttp.ConnectionTimeoutError, h1.ConnectTimeout) as exc:
            since = _since(started)
            self._attempt_failed(
                replica, key, "retryable", span, exc, (since, timeout.sock_connect)
            )
            again = loop.stalled(since, timeout.sock_connect or 0.0)
            raise _Retryable(f"{replica.url}: {_name(exc)}", again=again) from exc
        except (aiohttp.ClientSSLError, h1.TLSHandshakeFailed) as exc:  # never connected
            self._attempt_failed(replica, key, "retryable", span, exc)
            reason = tls_reason((exc.__cause__ or exc) if isinstance(exc, h1.H1Error) else exc)
            raise _Retryable(f"{replica.url}: TLS handshake failed: {reason}") from exc
        except (aiohttp.ClientConnectorError, h1.ConnectFailed) as exc:
            self._attempt_failed(replica, key, "retryable", span, exc)
            raise _Retryable(f"{replica.url}: {_name(exc)}") from exc
        except (aiohttp.SocketTimeoutError, h1.ReadTimeout) as exc:
            timer = (_since(started), timeout.sock_read)
            self._attempt_failed(replica, key, "timeout", span, exc, timer)
            raise UpstreamTimeout(
                f"backend {self.name!r} did not answer within {self.spec.timeout:g}s"
            ) from exc
        except h1.ReplyCutOff as exc:
            self._attempt_failed(replica, key, "error", span, exc)
            raise BadGateway(f"the model server's reply was cut off: {exc}") from exc
        except (aiohttp.ClientError, OSError, h1.H1Error) as exc:
            self._attempt_failed(replica, key, "error", span, exc)
            raise BadGateway(f"the connection to the model server failed: {exc}") from exc
        except BaseException as exc:
            replica.outstanding -= 1
            if span is not None:
                tracing.end_client_span(span, None, exc)
            raise
        if key is not None and (attempt.status >= 500 or attempt.status == 404):
            self.health.failed(replica, key)  # is the model version still there and ready?
        if attempt.status == 503 and idle:
            # An idle replica that says 503 is not overloaded: it cannot serve. Try another.
            if metrics is not None:
                metrics.attempt["retryable"].inc()
            raise _Retryable(f"{replica.url}: 503 while idle", attempt)
        answered = self._answered
        if answered is not None:
            answered(1)
        if replica.failures or replica.ejected_until:  # else nothing for the detector to clear
            self.outliers.succeeded(replica)
        return attempt

    def _origin(self, base: str) -> tuple[OriginPool, str]:
        found = self._origins[base] = self.client.origin(base, self._ssl, self._server_hostname)
        return found

    def _attempt_failed(
        self,
        replica: Replica,
        key: TargetKey | None,
        outcome: str,
        span: Span | None,
        exc: BaseException,
        timer: tuple[float, float | None] | None = None,
    ) -> None:
        """``timer``: (when it started, its seconds), for a failure that is a timeout."""
        replica.outstanding -= 1
        if key is not None:
            self.health.failed(replica, key)
        if timer is not None and timer[1] is not None:
            self.outliers.timed_out(replica, timer[0], timer[1])
        else:
            self.outliers.failed(replica)
        if self.metrics is not None:
            self.metrics.attempt[outcome].inc()
        if span is not None:
            tracing.end_client_span(span, None, exc)


def _since(started: float) -> float:
    """When a try that began at ``started`` (``time.perf_counter()``) began, in
    ``time.monotonic()`` (the stall detector's clock): one clock read per try, not two."""
    return time.monotonic() - (time.perf_counter() - started)


def _name(exc: BaseException) -> str:
    """How a connect failure is named in a 503's message: aiohttp's class name (as before the
    h1 client), or for the h1 client what happened."""
    return str(exc) if isinstance(exc, h1.H1Error) else exc.__class__.__name__
