"""One trace across the gateway and a REAL Triton (``tests/servers``) in OpenTelemetry trace mode.

Both export over OTLP/HTTP to the receiver of ``tests.fakes``, run in this test. The
gateway injects its client span's context as ``traceparent`` into the request to Triton; Triton
continues that W3C trace context, so its spans carry the gateway's trace id and its root-most
span's parent is the gateway's client span.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_grpc
from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import TRACE_ID, TRACEPARENT, Receiver
from tests.servers.plugin import ServerHandle
from tests.support import V2, backend, free_port, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
GATEWAY_SERVICE = "model-gateway"
WAIT_S = 15.0
HEX_IDS = {"traceId", "spanId", "parentSpanId"}


def triton_tracing(receiver: Receiver) -> tuple[str, ...]:
    """Triton's flags: OpenTelemetry mode, every request sampled, exported to the receiver."""
    return (
        "--trace-config=mode=opentelemetry",
        "--trace-config=rate=1",
        "--trace-config=count=-1",
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=opentelemetry,url=http://127.0.0.1:{receiver.port}/v1/traces",
        "--trace-config=opentelemetry,bsp_schedule_delay=50",  # export soon (default 5 s)
    )


def ids_to_base64(value: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(value, list):
        return [ids_to_base64(v) for v in value]
    if isinstance(value, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in HEX_IDS else ids_to_base64(v)
            for k, v in value.items()
        }
    return value


class ServiceReceiver(Receiver):
    """The receiver of tests.fakes, also taking OTLP/HTTP JSON (Triton's exporter, which has no
    protobuf setting) and noting each span's ``service.name``."""

    def __init__(self) -> None:
        super().__init__()
        self.span_services: dict[bytes, str] = {}

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        if request.content_type == "application/json":
            json_format.ParseDict(ids_to_base64(await request.json()), message)
        else:
            message.ParseFromString(await request.read())  # aiohttp keeps the body for super()
        for resource in message.resource_spans:
            service = "".join(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.span_services[span.span_id] = service
        if request.content_type != "application/json":
            return await super()._traces(request)
        self.services.update(self.span_services[s.span_id] for s in _spans(message))
        self.spans.extend(_spans(message))
        return web.json_response({})


def _spans(message: ExportTraceServiceRequest) -> list[Span]:
    return [span for r in message.resource_spans for scope in r.scope_spans for span in scope.spans]


async def ask_http(gateway: RunningGateway, grpc_port: int) -> None:
    response = await gateway.client.post(
        "/v2/models/linear/infer", json=V2, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0, 9.0]


async def ask_grpc(gateway: RunningGateway, grpc_port: int) -> None:
    """tritonclient's gRPC client, the caller's trace context in the call's metadata."""
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        tensor = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.float32))
        result = await client.infer("linear", [tensor], headers={"traceparent": TRACEPARENT})
        assert result.as_numpy("OUTPUT0").tolist() == [[1.0, 9.0]]
    finally:
        await client.close()


FRONTS = {
    "http": (ask_http, "POST /v2/models/{model}/infer"),
    "grpc": (ask_grpc, "inference.GRPCInferenceService/ModelInfer"),
}


# The backend's wire: its client span's name, how its URL is written, its routes.yaml keys.
BACKS: dict[str, tuple[str, Callable[[ServerHandle], str], dict[str, str]]] = {
    "http": ("POST", lambda triton: triton.url, {}),
    "grpc": (
        "inference.GRPCInferenceService/ModelInfer",
        lambda triton: f"grpc://{triton.grpc_address}",
        {"protocol": "grpc"},
    ),
}


ATTEMPTS = 4  # see the loop in the test


def split(receiver: ServiceReceiver) -> tuple[list[Span], list[Span]]:
    """The gateway's spans, then the others (Triton's)."""
    service = receiver.span_services
    ours = [s for s in receiver.spans if service[s.span_id] == GATEWAY_SERVICE]
    theirs = [s for s in receiver.spans if service[s.span_id] != GATEWAY_SERVICE]
    return ours, theirs


def tree(receiver: ServiceReceiver) -> str:
    return "\n".join(
        f"{receiver.span_services[s.span_id]}: {s.name} {s.trace_id.hex()} "
        f"{s.span_id.hex()} <- {s.parent_span_id.hex()}"
        for s in receiver.spans
    )


async def _spans_arrive(
    receiver: ServiceReceiver, triton: ServerHandle, server_span: str, client_span: str
) -> None:
    """Until the gateway's server and client spans and Triton's three are in (bounded)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        ours, theirs = split(receiver)
        if {server_span, client_span} <= {s.name for s in ours} and {
            "InferRequest",
            "linear",
            "compute",
        } <= {s.name for s in theirs}:
            return
        assert time.monotonic() < deadline, (
            f"after {WAIT_S} s the receiver has:\n{tree(receiver)}\n{triton.log_tail()}"
        )
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("back", list(BACKS))
@pytest.mark.parametrize("front", list(FRONTS))
async def test_one_trace_spans_the_gateway_and_triton(
    start_gateway: StartGateway,
    start_triton: Callable[..., ServerHandle],
    monkeypatch: pytest.MonkeyPatch,
    front: str,
    back: str,
) -> None:
    """The caller's trace, whether it called by HTTP or by gRPC, continues through the
    gateway's server span and its client span (``traceparent`` in the request's headers, or
    in the RPC's metadata toward a gRPC backend) into Triton's spans."""
    ask, server_span = FRONTS[front]
    client_span, url_of, options = BACKS[back]
    receiver = ServiceReceiver()
    await receiver.start()
    try:
        triton = start_triton(*triton_tracing(receiver))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)  # the default: model-gateway
        linear = model(versions("triton", "1", name="linear", version="1"))
        gateway = await start_gateway(
            routes_yaml(
                {"triton": backend("triton", url_of(triton), **options)}, {"linear": linear}
            ),
            grpc_port=(grpc_port := free_port()),
        )
        await ask(gateway, grpc_port)
        for attempt in range(ATTEMPTS):
            await _spans_arrive(receiver, triton, server_span, client_span)
            their_traces = {s.trace_id.hex() for s in receiver.spans}
            if their_traces == {TRACE_ID} or attempt == ATTEMPTS - 1:
                break
            # Now and then Triton begins a trace of its own for a gRPC ModelInfer that carries
            # the gateway's traceparent (its spans with no parent, the gateway's spans right;
            # seen twice in a row once, cause not found): asked again, to tell that from a
            # gateway that drops the traceparent, which fails every attempt.
            print(f"tracing: Triton's spans were in another trace, asking again:\n{tree(receiver)}")
            receiver.spans.clear()
            receiver.span_services.clear()
            await ask(gateway, grpc_port)
        ours, theirs = split(receiver)

        # One trace: the caller's trace id on every span, the gateway's and Triton's.
        assert {s.trace_id.hex() for s in receiver.spans} == {TRACE_ID}, tree(receiver)
        # Triton's root-most span (its frontend's) is a child of the gateway's client span.
        [client] = [s for s in ours if s.name == client_span and s.kind == Span.SPAN_KIND_CLIENT]
        their_ids = {s.span_id for s in theirs}
        [root] = [s for s in theirs if s.parent_span_id not in their_ids]
        assert root.name == "InferRequest", tree(receiver)
        assert root.parent_span_id == client.span_id, tree(receiver)
        # Two services: the gateway's default name and Triton's own.
        triton_services = {receiver.span_services[s.span_id] for s in theirs}
        assert len(triton_services) == 1, triton_services
        assert GATEWAY_SERVICE not in triton_services
        assert receiver.services == {GATEWAY_SERVICE, *triton_services}
    finally:
        await receiver.stop()
