"""A backend's replicas over gRPC, with the HTTP pool's semantics (``pool``).

- **Channels**: one ``grpc.aio`` channel per replica (``grpc://host:port``), made with the
  pool and closed with it; a secure channel for ``grpcs://host:port`` or when the backend has
  a ``tls:`` block (its CA bundle, client certificate, and ``server_name`` as
  ``grpc.ssl_target_name_override``), message limits raised to 2**31-1 both ways (grpcio's default
  receive limit is 4 MiB: PROTOCOLS.md §5.6). A connection attempt lasts at most
  ``connect_timeout``; after a failure the channel tries again within ``health.interval``
  (at most 30 s; grpcio's default backoff grows to 120 s), so a replica back up is soon seen.
- **Balancing, health, ejection** (``replica_set``): power of two choices on outstanding
  requests among the replicas neither ejected nor unready for the model version.
- **Circuit breaker**: at most ``max_in_flight`` calls per backend.
- **Retries**: only an RPC that was never sent (``grpc_status.never_sent``: the channel could
  not connect), on another replica, within the retry budget; never one that may have run.
- **Deadlines**: each try is an RPC with deadline ``timeout``; ``overall_deadline`` bounds
  all tries (the RPC in flight is cancelled).
- **Errors** are mapped here, at the boundary (``grpc_status.error_of``); upstream time,
  retries, backend and replica go to the call's ``Timing``; each try has a client span whose
  ``traceparent`` travels in the call's metadata.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from opentelemetry.trace import Span

from gateway.backends.grpc_status import STATUS, error_of, never_sent, outcome_of
from gateway.backends.replica import Replica, TargetKey
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.config.types import grpc_target
from gateway.errors import NoHealthyReplica, UpstreamTimeout
from gateway.telemetry import tracing
from gateway.telemetry.metrics import BackendMetrics
from gateway.telemetry.timing import CURRENT_TIMING, record_upstream

MAX_MESSAGE: Final = 2**31 - 1
_MAX_BACKOFF: Final = 30.0  # seconds between connection attempts to a replica that is down
_NAME_OVERRIDE: Final = "grpc.ssl_target_name_override"
Caller = grpc.aio.UnaryUnaryMultiCallable[Any, Any]
# the codes of a failed call after which a lazily checked model version is probed again
_SUSPECT: Final = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


@dataclass(frozen=True, slots=True)
class Method:
    """One unary RPC: its path (``/package.Service/Method``), how its reply is decoded, and
    the HTTP status of each failed RPC's code (``grpc_status.error_of``)."""

    path: str
    decode: Callable[[bytes], Any]
    statuses: Mapping[grpc.StatusCode, int] = field(default_factory=lambda: STATUS)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def channel_options(spec: BackendSpec) -> list[tuple[str, int | str]]:
    connect_ms = max(1, round(spec.connect_timeout * 1000))
    backoff = min(spec.health.interval, _MAX_BACKOFF)
    options: list[tuple[str, int | str]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        # grpcio's minimum connect timeout (default 20 s) and its first backoff (1 s)
        ("grpc.min_reconnect_backoff_ms", connect_ms),
        ("grpc.initial_reconnect_backoff_ms", connect_ms),
        ("grpc.max_reconnect_backoff_ms", max(connect_ms, round(backoff * 1000))),
    ]
    if spec.tls is not None and spec.tls.server_name is not None:
        options.append((_NAME_OVERRIDE, spec.tls.server_name))  # SNI and the name verified
    return options


def uses_tls(spec: BackendSpec, url: str) -> bool:
    """A replica's channel is secure for ``grpcs://`` or when its backend has a tls block."""
    return spec.tls is not None or url.startswith("grpcs://")


def _credentials(spec: BackendSpec) -> grpc.ChannelCredentials:
    """The backend's TLS credentials: the tls block's CA bundle (else grpcio's roots) and its
    client certificate."""
    if spec.tls is None:
        return grpc.ssl_channel_credentials()
    material = spec.tls.material
    return grpc.ssl_channel_credentials(material.ca, material.key, material.cert)


def _channel(
    target: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, int | str]]
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


class _Tries:
    """The replicas one call has tried, and the one its current try is on."""

    __slots__ = ("current", "tried")

    def __init__(self) -> None:
        self.tried: set[int] = set()
        self.current: Replica | None = None


class GRPCPool(ReplicaSet):
    """The replicas of one gRPC backend, each behind its own channel."""

    def __init__(self, name: str, spec: BackendSpec, metrics: BackendMetrics | None = None) -> None:
        super().__init__(name, spec, metrics)
        options = channel_options(spec)
        secure = [uses_tls(spec, r.url) for r in self.replicas]
        credentials = _credentials(spec) if any(secure) else None
        self._channels = {
            id(r): _channel(grpc_target(r.url), credentials if tls else None, options)
            for r, tls in zip(self.replicas, secure, strict=True)
        }
        self._callers: dict[tuple[int, str], Caller] = {}

    def _caller(self, replica: Replica, method: Method) -> Caller:
        key = (id(replica), method.path)
        caller = self._callers.get(key)
        if caller is None:
            channel = self._channels[id(replica)]
            caller = channel.unary_unary(
                method.path, request_serializer=_serialize, response_deserializer=method.decode
            )
            self._callers[key] = caller
        return caller

    async def ask(self, replica: Replica, method: Method, request: Any, deadline: float) -> Any:
        """One RPC to ``replica`` as it is, with ``deadline`` seconds (health probes, live
        readiness): no breaker, no retry; raises ``grpc.aio.AioRpcError``."""
        return await self._caller(replica, method)(request, timeout=deadline)

    async def call(self, method: Method, request: Any, *, key: TargetKey | None) -> Any:
        """One RPC on a chosen replica, retried elsewhere only if it was never sent; its reply,
        or a GatewayError."""
        self.breaker.enter()
        tries = _Tries()
        since = time.monotonic()
        try:
            async with asyncio.timeout(self.spec.overall_deadline):
                return await self._call(method, request, key, tries)
        except TimeoutError as exc:  # (grpcio's own deadlines run in its core, off the loop)
            if tries.current is not None:
                self.outliers.timed_out(tries.current, since, self.spec.overall_deadline)
            raise UpstreamTimeout(
                f"backend {self.name!r} did not answer within {self.spec.overall_deadline:g}s"
            ) from exc
        finally:
            self.breaker.leave()

    async def _call(
        self, method: Method, request: Any, key: TargetKey | None, tries: _Tries
    ) -> Any:
        self.budget.record_request()
        replica = self.choose(key, tries.tried)
        while True:
            tries.tried.add(self.replicas.index(replica))
            try:
                return await self._try(replica, method, request, tries)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if key is not None and code in _SUSPECT:
                    self.health.failed(replica, key)  # is the model version still ready?
                if not never_sent(code, details):
                    raise error_of(code, details, self.name, method.statuses) from exc
                failed = NoHealthyReplica(f"could not connect to backend {self.name!r}: {details}")
                if len(tries.tried) >= self.spec.retries.attempts:
                    raise failed from exc
                try:
                    replica = self.choose(key, tries.tried)
                except NoHealthyReplica:
                    raise failed from exc
                if not self.budget.try_spend():
                    raise failed from exc

    async def _try(self, replica: Replica, method: Method, request: Any, tries: _Tries) -> Any:
        timing = CURRENT_TIMING.get()
        number = len(tries.tried)  # this call's tries, this one included
        if timing is not None:
            if number > 1:
                timing.retries += 1
            timing.backend, timing.replica = self.name, replica.url
        metrics = self.metrics
        if metrics is not None and number > 1:
            metrics.retries.inc()
        span: Span | None = None
        metadata: tuple[tuple[str, str], ...] | None = None
        tracer = tracing.TRACER
        if tracer is not None:
            span = tracing.rpc_client_span(tracer, method.path, self.name, replica.url, number)
            metadata = tracing.trace_metadata(span)
        caller = self._caller(replica, method)
        replica.outstanding += 1
        tries.current = replica
        started = time.perf_counter()
        try:
            reply = await caller(request, timeout=self.spec.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            tries.current = None
            self._failed(replica, exc, started, span)
            raise
        except grpc.aio.UsageError as exc:  # closed: a reload retired this pool meanwhile
            tries.current = None
            if span is not None:
                tracing.end_rpc_client_span(span, None, None, exc)
            raise NoHealthyReplica(f"backend {self.name!r} was replaced by a reload") from exc
        except BaseException as exc:
            if span is not None:
                tracing.end_rpc_client_span(span, None, None, exc)
            raise
        finally:
            replica.outstanding -= 1
        tries.current = None
        record_upstream(time.perf_counter() - started)
        if metrics is not None:
            metrics.attempt["ok"].inc()
        self.outliers.succeeded(replica)
        if span is not None:
            tracing.end_rpc_client_span(span, 0, None, None)
        return reply

    def _failed(
        self, replica: Replica, exc: grpc.aio.AioRpcError, started: float, span: Span | None
    ) -> None:
        code = exc.code()
        outcome = outcome_of(code, exc.details() or "")
        if outcome == "ok":  # the server answered, with an error status
            record_upstream(time.perf_counter() - started)
            self.outliers.succeeded(replica)
        else:
            self.outliers.failed(replica)
        if self.metrics is not None:
            self.metrics.attempt[outcome].inc()
        if span is not None:
            tracing.end_rpc_client_span(span, code.value[0], code.name, None)

    async def close(self) -> None:
        """Stop the health checks; close the channels once their calls are done (a retired
        route table's calls finish on it), at most ``overall_deadline`` later."""
        await super().close()
        channels = list(self._channels.values())
        await asyncio.gather(*(c.close(grace=self.spec.overall_deadline) for c in channels))
