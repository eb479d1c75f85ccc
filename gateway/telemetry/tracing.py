"""Traces (OpenTelemetry): a server span per request, a span per policy step, a client span per
upstream attempt, exported over OTLP.

Off unless ``GATEWAY_TRACING=true`` or an OTLP endpoint is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). When off,
:data:`TRACER` is None and the hot path checks that once: no span object is ever made.
When on, the SDK reads the standard ``OTEL_*`` variables: ``OTEL_TRACES_SAMPLER`` and
``OTEL_TRACES_SAMPLER_ARG`` (else parent-based ratio sampling at ``GATEWAY_TRACING_RATIO``),
``OTEL_EXPORTER_OTLP_*`` (endpoint, headers, timeout; protocol ``http/protobuf`` by default,
``grpc`` with the ``otlp-grpc`` extra), ``OTEL_SERVICE_NAME`` (default ``model-gateway``),
``OTEL_RESOURCE_ATTRIBUTES``. Incoming W3C ``traceparent``/``tracestate`` are continued and
injected into every backend request. Attributes never hold a credential.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.errors import SettingsError

logger = logging.getLogger("gateway.tracing")

TRACER: Tracer | None = None
"""The gateway's tracer while tracing is on, else None (checked once per request)."""

PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def enabled(setting: bool | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``GATEWAY_TRACING`` when set; otherwise on when an OTLP endpoint is configured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if setting is not None:
        return setting
    return any(environ.get(name) for name in _ENDPOINTS)


def _exporter() -> SpanExporter:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise SettingsError(
                "OTLP over gRPC needs the otlp-grpc extra: pip install 'model-gateway[otlp-grpc]'"
            ) from exc
        grpc_exporter: SpanExporter = GrpcExporter()
        return grpc_exporter
    if protocol != "http/protobuf":
        raise SettingsError(f"unsupported OTLP protocol {protocol!r}: use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def start(ratio: float, exporter: SpanExporter | None = None) -> TracerProvider:
    """Make the provider and set :data:`TRACER`. ``exporter`` (tests) is exported to at once;
    the default OTLP exporter goes through a batch processor, off the request path."""
    global TRACER
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "model-gateway"}
    )
    sampler = (
        None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(TraceIdRatioBased(ratio))
    )
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    TRACER = provider.get_tracer("gateway")
    return provider


def stop(provider: TracerProvider) -> None:
    """Flush what is buffered and turn tracing off."""
    global TRACER
    TRACER = None
    provider.shutdown()


class _Headers:
    """Getter over ASGI headers (lower-case bytes pairs) for the propagator."""

    @staticmethod
    def get(carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        found = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return found or None

    @staticmethod
    def keys(carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER = _Headers()


def server_span(tracer: Tracer, scope: Mapping[str, Any], name: str) -> tuple[Span, object]:
    """Start the request's server span (continuing an incoming ``traceparent``) and make it
    current; returns the span and the token for :func:`finish`."""
    parent = PROPAGATOR.extract(scope["headers"], getter=_GETTER)  # type: ignore[arg-type]
    client = scope.get("client")
    server = scope.get("server")
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if client:
        attributes["client.address"] = client[0]
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token


def grpc_span(
    tracer: Tracer, metadata: Iterable[tuple[str, str]], method: str, peer: str | None
) -> tuple[Span, object]:
    """A gRPC call's server span (``rpc.*`` conventions), continuing the ``traceparent`` in its
    metadata, made current; returns the span and the token for :func:`finish`."""
    carrier = {k: v for k, v in metadata}
    parent = PROPAGATOR.extract(carrier)
    service, _, rpc = method.strip("/").partition("/")
    attributes: dict[str, Any] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": rpc,
    }
    if peer:
        attributes["network.peer.address"] = peer
    span = tracer.start_span(
        method.strip("/"), context=parent, kind=SpanKind.SERVER, attributes=attributes
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token


def finish(span: Span, token: object, status: int, error: str | None = None) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", error or str(status))
        span.set_status(Status(StatusCode.ERROR))
    otel_context.detach(token)  # type: ignore[arg-type]
    span.end()


def inject(headers: Mapping[str, str] | list[tuple[str, str]] | None, span: Span) -> Any:
    """``headers`` plus ``traceparent`` (and ``tracestate``) naming ``span``, as a new object."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    if headers is None:
        return carrier
    if isinstance(headers, list):
        return [(k, v) for k, v in headers if k.lower() not in carrier] + list(carrier.items())
    kept = {k: v for k, v in headers.items() if k.lower() not in carrier}
    return {**kept, **carrier}


def client_span(
    tracer: Tracer, method: str, url: str, backend: str, replica: str, number: int
) -> Span:
    """One upstream attempt's client span (HTTP semantic conventions; never a header)."""
    host, _, port = replica.partition("://")[2].split("/", 1)[0].rpartition(":")
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": url.split("?", 1)[0],
        "server.address": host or port,
        "gateway.backend": backend,
        "gateway.replica": replica,
    }
    if host and port.isdigit():
        attributes["server.port"] = int(port)
    if number > 1:
        attributes["http.request.resend_count"] = number - 1
    return tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)


def end_client_span(span: Span, status: int | None, exc: BaseException | None) -> None:
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if exc is not None or (status is not None and status >= 500):
        span.set_attribute("error.type", type(exc).__name__ if exc is not None else str(status))
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def rpc_client_span(tracer: Tracer, path: str, backend: str, replica: str, number: int) -> Span:
    """One upstream gRPC attempt's client span (RPC semantic conventions; never metadata).
    ``path`` is ``/package.Service/Method``, ``replica`` ``grpc://host:port``."""
    service, _, rpc = path.strip("/").partition("/")
    host, _, port = replica.partition("://")[2].rpartition(":")
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": rpc,
        "server.address": host.strip("[]") or port,
        "gateway.backend": backend,
        "gateway.replica": replica,
    }
    if host and port.isdigit():
        attributes["server.port"] = int(port)
    if number > 1:
        attributes["gateway.resend_count"] = number - 1
    return tracer.start_span(path.strip("/"), kind=SpanKind.CLIENT, attributes=attributes)


def end_rpc_client_span(
    span: Span, code: int | None, name: str | None, exc: BaseException | None
) -> None:
    """``code`` is the gRPC status's number (0 OK), None when there was none (cancelled); every
    status but OK marks a client span as an error (the RPC conventions for clients)."""
    if code is not None:
        span.set_attribute("rpc.grpc.status_code", code)
    if exc is not None or code:
        span.set_attribute("error.type", name or (type(exc).__name__ if exc else str(code)))
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def trace_metadata(span: Span) -> tuple[tuple[str, str], ...]:
    """``traceparent`` (and ``tracestate``) naming ``span``, as gRPC metadata (lower-case keys)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return tuple(carrier.items())
