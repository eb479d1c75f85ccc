"""The gRPC frontends' server and their one lane (grpcio's asyncio server).

Off unless ``GATEWAY_GRPC_PORT`` (``--grpc-port``) is set; ``gateway demo`` turns it on. One
server per worker process on the same port (grpcio sets ``SO_REUSEPORT``: the kernel spreads
connections over the workers), carrying the KServe v2 service (``edge.grpc_v2``), TF
Serving's (``edge.grpc_tfs``), the standard health service (``grpc.health.v1``) and server
reflection.

Every RPC goes through :func:`rpc` once, as every HTTP request goes through ``edge.http``: its
request id (``x-request-id`` metadata, else a new one), timing and server span (continuing a
``traceparent``), the gRPC deadline as the call's, the one mapping of errors to gRPC status
codes (the reply's headers as trailing metadata: ``x-model-version``, ``ratelimit``,
``retry-after`` with ``grpc-retry-pushback-ms``...), and the observer (metrics and the access
line, protocol ``grpc``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2

from gateway.auth.client_certs import ClientCert, client_cert_from_pem
from gateway.call import Call, CallKind, Reply
from gateway.edge.grpc_decode import DecodeGuard
from gateway.edge.request_id import request_id_of
from gateway.errors import GatewayError, InternalError, SettingsError, UpstreamTimeout
from gateway.headers import Headers
from gateway.settings import Settings
from gateway.state import State
from gateway.telemetry import tracing
from gateway.telemetry.timing import CURRENT_TIMING, Timing

logger = logging.getLogger("gateway")
T = TypeVar("T")
MAX_MESSAGE: Final = 2**31 - 1

# A GatewayError's HTTP status → its gRPC code (PROTOCOLS.md §5.2: Triton's and MLServer's own).
CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_PEER = re.compile(r"^(?:ipv4:|ipv6:\[?|unix:)?(?P<host>[^\]]*?)\]?(?::\d+)?$")
_METADATA_KEY = re.compile(r"^[0-9a-z_.\-]+$")


def code_of(status: int) -> grpc.StatusCode:
    if status in CODES:
        return CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if status < 500 else grpc.StatusCode.INTERNAL


def peer_host(peer: str | None) -> str | None:
    """``ipv4:127.0.0.1:5555`` → ``127.0.0.1`` (the client's address, for per-IP limits)."""
    if not peer:
        return None
    match = _PEER.match(peer)
    return match.group("host") if match else None


def trailing(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """A reply's headers as gRPC trailing metadata (lower-case keys, text values)."""
    out = []
    for name, value in headers:
        key = name.lower()
        if _METADATA_KEY.match(key) and not key.startswith("grpc-"):
            out.append((key, value))
    return out


@dataclass(slots=True)
class Scope:
    """One RPC in the gateway: what the lane needs to build its call and observe it."""

    request_id: str
    headers: Headers
    peer: str | None
    method: str
    timing: Timing
    call: Call | None = None
    models: Any = ()
    status: int = 200
    trailers: list[tuple[str, str]] = field(default_factory=list)
    client_cert: ClientCert | None = None  # the TLS client certificate grpc verified
    deadline: float | None = None  # the RPC's deadline, in time.monotonic() seconds

    def new_call(self, kind: CallKind, model: str | None, pin: str | None) -> Call:
        action = "predict" if kind in ("infer", "classify", "regress") else "metadata"
        required: tuple[str, ...] = ()
        if model is not None:
            required = (f"{action}:{model}", f"pin:{model}") if pin else (f"{action}:{model}",)
        call = Call(
            kind,
            self.request_id,
            self.headers,
            method="POST",
            path=self.method,
            scheme="grpc",
            peer=self.peer,
            client_cert=self.client_cert,
            model=model,
            pin=pin,
            required=required,
            deadline=self.deadline,
        )
        self.call = call
        return call


class Lane:
    """Runs each RPC of the gRPC frontends: scope, deadline, errors, observation."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def rpc(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        method: str,
        work: Callable[[Scope], Awaitable[T]],
        *,
        abort: bool = True,
        request: Message | None = None,
    ) -> T:
        """``work`` in the RPC's scope. An error aborts the RPC with its gRPC status, or, with
        ``abort=False`` (one message of a stream), is raised to the caller as it is.
        ``request`` (the RPC's message) and the answer are counted in bytes, as serialized."""
        metadata = [(k, v) for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)]
        headers = Headers.of(metadata)
        request_id = request_id_of(headers.raw)
        timing = Timing()
        token = CURRENT_TIMING.set(timing)
        span = trace_token = None
        tracer = tracing.TRACER
        if tracer is not None:
            span, trace_token = tracing.grpc_span(tracer, metadata, method, context.peer())
        scope = Scope(request_id, headers, peer_host(context.peer()), method, timing)
        scope.client_cert = _client_cert(context)
        sent = 0
        remaining = context.time_remaining()
        if remaining is not None:
            scope.deadline = time.monotonic() + remaining
        try:
            try:
                async with asyncio.timeout(remaining):
                    result = await work(scope)
            except TimeoutError as exc:
                raise UpstreamTimeout("the call's gRPC deadline passed") from exc
            if abort:
                context.set_trailing_metadata(self._trailers(scope))
            if isinstance(result, Message):
                sent = result.ByteSize()
            return result
        except GatewayError as exc:
            scope.status = exc.status
            if not abort:
                raise
            await self._abort(context, scope, exc)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            scope.status = 500
            if not abort:
                raise InternalError("internal error") from None
            await self._abort(context, scope, InternalError("internal error"))
        finally:
            CURRENT_TIMING.reset(token)
            self.state.observer.done(
                "POST",
                method,
                scope.status,
                sent,
                request_id,
                timing,
                span,
                scope.call,
                scope.models,
                protocol="grpc",
                received=request.ByteSize() if request is not None else None,
            )
            if span is not None:
                tracing.finish(span, trace_token, scope.status)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises

    def _trailers(self, scope: Scope, extra: Sequence[tuple[str, str]] = ()) -> list[Any]:
        return [("x-request-id", scope.request_id), *trailing(scope.trailers), *trailing(extra)]

    async def _abort(
        self, context: grpc.aio.ServicerContext[Any, Any], scope: Scope, exc: GatewayError
    ) -> None:
        trailers = self._trailers(scope, list(exc.headers.items()))
        retry = exc.headers.get("Retry-After")
        if retry is not None and retry.isdigit():
            trailers.append(("grpc-retry-pushback-ms", str(int(retry) * 1000)))
        context.set_trailing_metadata(trailers)
        await context.abort(code_of(exc.status), exc.message)

    def answered(self, scope: Scope, reply: Reply) -> None:
        """The reply's headers, for the trailing metadata."""
        scope.trailers.extend(reply.headers)


Servicers = Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]]


async def start_server(
    state: State,
    servicers: Servicers,
    described: Sequence[Any],
    host: str,
    port: int,
    max_receive: int,
) -> grpc.aio.Server:
    """The server with ``servicers`` (adder, servicer, full service name), health (every
    service SERVING) and reflection over the files that ``described`` names (with what they
    import), listening on ``host:port``."""
    server = grpc.aio.server(
        interceptors=[DecodeGuard(Lane(state))],  # undecodable bytes: INVALID_ARGUMENT
        options=[
            ("grpc.max_receive_message_length", max_receive),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 1),
        ],
    )
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for add, servicer, name in servicers:
        add(servicer, server)
        names.append(name)
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    pool = reflection_pool([*described, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR])
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server, pool)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    settings = state.settings
    if settings.tls_cert is not None:
        server.add_secure_port(address, _credentials(settings))
    else:
        server.add_insecure_port(address)
    await server.start()
    return server


def _client_cert(context: grpc.aio.ServicerContext[Any, Any]) -> ClientCert | None:
    """The client certificate grpc verified on this RPC's connection (mTLS), if any."""
    pems = list(context.auth_context().get("x509_pem_cert") or ())
    return client_cert_from_pem(pems[0].decode("ascii")) if pems else None


def _credentials(settings: Settings) -> grpc.ServerCredentials:
    """TLS with the HTTP edge's certificate and key (and client CA: mTLS), re-read for new
    handshakes when the files change (grpc asks the fetcher at each handshake)."""
    if settings.tls_cert is None:
        raise SettingsError("gRPC TLS without a certificate")
    cert: Path = settings.tls_cert
    key: Path = settings.tls_key or cert
    ca = settings.tls_client_ca
    files = [f for f in (cert, key, ca) if f is not None]
    seen: list[tuple[float, ...]] = []

    def configuration() -> Any:
        seen[:] = [_stamp(files)]
        pair = (key.read_bytes(), cert.read_bytes())
        roots = ca.read_bytes() if ca is not None else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)

    def fetch() -> Any:
        """A new configuration when the files changed (None: keep the current one). grpc
        calls it at each handshake: it costs a stat of each file; files are read only when
        their stamp changed."""
        if seen and _stamp(files) == seen[0]:
            return None
        try:
            return configuration()
        except (OSError, ValueError) as exc:
            logger.warning("gRPC TLS files changed but do not load: %s", exc)
            return None

    return grpc.dynamic_ssl_server_credentials(
        configuration(),
        fetch,
        require_client_authentication=ca is not None and settings.tls_client_cert == "required",
    )


def _stamp(files: Sequence[Path]) -> tuple[float, ...]:
    stamps: list[float] = []
    for file in files:
        try:
            info = file.stat()
            stamps += [info.st_mtime, float(info.st_ino), float(info.st_size)]
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


def reflection_pool(files: Sequence[Any]) -> descriptor_pool.DescriptorPool:
    """One pool holding every file the frontends serve, with their imports, for reflection
    (the gateway's KServe v2 file lives in a private pool, the others in the default one).
    ``files``: FileDescriptorProto messages, or generated modules' FileDescriptors."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if not isinstance(file, descriptor_pb2.FileDescriptorProto):
            for dependency in file.dependencies:
                add(dependency)
            file = descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)
        if file.name not in added:
            added.add(file.name)
            pool.AddSerializedFile(file.SerializeToString())

    for file in files:
        add(file)
    return pool
