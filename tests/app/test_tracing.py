"""Traces: span structure (in-memory exporter) and OTLP/HTTP export to a receiver in the test."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tritonclient.grpc import service_pb2, service_pb2_grpc

from gateway.app import create_app
from gateway.settings import Settings
from gateway.telemetry import tracing
from tests.conftest import StartGateway
from tests.fakes import PARENT_ID, REPLY, TRACE_ID, TRACEPARENT, FakeReplica, Receiver
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


def routes(url: str, auth: bool = True) -> str:
    """Model ``linear`` on a fake at ``url``, cached, behind ``auth: {}`` if ``auth``."""
    linear = model(
        versions("fake", "1", inputs=[INPUT0]),
        deterministic=True,
        cache={"ttl": "60s"},
        default="1",
    )
    return routes_yaml(
        {"fake": backend("kserve", url)}, {"linear": linear}, auth={} if auth else None
    )


def undeclared(*urls: str, models: int = 1) -> str:
    """Models ``m0``, ``m1``... on a KServe backend at ``urls``, their inputs not declared:
    each one's first call fetches its metadata from the backend, then sends the infer."""
    served = versions("fake", "1")
    return routes_yaml(
        {"fake": backend("kserve", *urls)},
        {f"m{i}": model(served, default="1") for i in range(models)},
    )


Start = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Start]:
    """A gateway whose spans go to ``exporter`` (the SDK's in-memory one)."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(
        text: str, exporter: InMemorySpanExporter, **settings: Any
    ) -> httpx.AsyncClient:
        path = tmp_path / f"routes-{len(servers)}.yaml"
        path.write_text(text, encoding="utf-8")
        port = free_port()
        config = Settings(config=path, port=port, log_level="warning", watch=False, **settings)
        app = create_app(config, span_exporter=exporter)
        server = uvicorn.Server(uvicorn.Config(app, **config.uvicorn_options()))  # type: ignore[arg-type]
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        servers.append((server, task, client))
        return client

    yield start
    for server, task, client in servers:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 30)
    assert tracing.TRACER is None  # the lifespan turned tracing off again


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_spans_continue_the_callers_trace_and_reach_the_backend(
    traced: Start, backend: FakeReplica
) -> None:
    exporter = InMemorySpanExporter()
    client = await traced(
        routes(backend.url), exporter, admin_token=ADMIN_TOKEN, secret="s-" + uuid.uuid4().hex
    )
    await client.post("/admin/tenants", json={"name": "acme"}, headers=ADMIN)
    key = (
        await client.post("/admin/tenants/acme/keys", json={"scopes": ["*"]}, headers=ADMIN)
    ).json()["key"]
    await client.get("/healthz")
    await client.get("/metrics")
    exporter.clear()
    backend.seen.clear()
    headers = {"X-API-Key": key, "traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    response = await client.post("/v2/models/linear/infer", json=V2, headers=headers)
    assert response.status_code == 200
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "POST /v2/models/{model}/infer",
        "policy auth",
        "policy traffic",
        "policy ratelimit",
        "policy cache",
        "POST",
    }
    server = spans["POST /v2/models/{model}/infer"]
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.parent.is_remote
    attributes = dict(server.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/v2/models/{model}/infer"
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.tenant"] == "acme"
    assert (attributes["gateway.model"], attributes["gateway.version"]) == ("linear", "1")
    assert (attributes["gateway.cache"], attributes["gateway.retries"]) == ("miss", 0)
    assert attributes["gateway.backend"] == "fake"
    for name in ("policy auth", "policy traffic", "policy ratelimit", "policy cache", "POST"):
        parent = spans[name].parent
        assert parent is not None
        assert parent.span_id == server.context.span_id, name
    upstream = spans["POST"]
    assert upstream.kind is SpanKind.CLIENT
    assert dict(upstream.attributes or {})["gateway.replica"] == backend.url
    assert dict(upstream.attributes or {})["http.response.status_code"] == 200
    sent = [r for r in backend.seen if r.path.endswith("/infer")]
    assert len(sent) == 1
    client_id = format(upstream.context.span_id, "016x")
    assert sent[0].headers["traceparent"] == f"00-{TRACE_ID}-{client_id}-01"
    assert sent[0].headers["tracestate"] == "vendor=1"
    everything = repr([dict(s.attributes or {}) for s in spans.values()])
    assert key not in everything
    assert ADMIN_TOKEN not in everything

    exporter.clear()  # a hit: no client span, cache status on the server span
    again = await client.post("/v2/models/linear/infer", json=V2, headers={"X-API-Key": key})
    assert again.status_code == 200
    spans = by_name(exporter.get_finished_spans())
    assert "POST" not in spans
    server = spans["POST /v2/models/{model}/infer"]
    assert server.parent is None
    assert dict(server.attributes or {})["gateway.cache"] == "hit"


async def test_a_first_call_that_fetches_the_metadata_has_no_resent_request(
    traced: Start, backend: FakeReplica
) -> None:
    exporter = InMemorySpanExporter()
    client = await traced(undeclared(backend.url), exporter)
    assert (await client.post("/v2/models/m0/infer", json=V2)).status_code == 200
    spans = by_name(exporter.get_finished_spans())
    fetched, sent = dict(spans["GET"].attributes or {}), dict(spans["POST"].attributes or {})
    assert (fetched["url.full"], sent["url.full"]) == (
        backend.url + "/v2/models/m0",
        backend.url + "/v2/models/m0/infer",
    )
    assert "http.request.resend_count" not in fetched
    assert "http.request.resend_count" not in sent  # each request's first try
    assert dict(spans["POST /v2/models/{model}/infer"].attributes or {})["gateway.retries"] == 0


async def test_health_and_metrics_are_not_traced_and_ratio_zero_follows_the_parent(
    traced: Start, backend: FakeReplica
) -> None:
    exporter = InMemorySpanExporter()
    text = routes(backend.url, auth=False)
    client = await traced(text, exporter, tracing_ratio=0.0)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200
    assert (await client.post("/v2/models/linear/infer", json=V2)).status_code == 200
    assert exporter.get_finished_spans() == ()  # not sampled: a new trace at ratio 0
    sampled = {"traceparent": TRACEPARENT}
    response = await client.post("/v2/models/linear/infer", json=V2, headers=sampled)
    assert response.status_code == 200
    names = {s.name for s in exporter.get_finished_spans()}
    assert "POST /v2/models/{model}/infer" in names  # the caller sampled it: so do we


async def test_spans_arrive_over_otlp_http(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await Receiver().start()
    replica = await FakeReplica(body=REPLY).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export from the SDK's thread soon
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
    try:
        gateway = await start_gateway(routes(replica.url, auth=False))
        headers = {"traceparent": TRACEPARENT}
        response = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=headers)
        assert response.status_code == 200
        for _ in range(200):
            if len(receiver.spans) >= 4:
                break
            await asyncio.sleep(0.05)
        spans = {s.name: s for s in receiver.spans}
        server = spans["POST /v2/models/{model}/infer"]
        assert server.trace_id.hex() == TRACE_ID
        assert server.parent_span_id.hex() == PARENT_ID
        upstream = spans["POST"]
        assert upstream.parent_span_id == server.span_id
        assert spans["policy cache"].parent_span_id == server.span_id
        forwarded = [r for r in replica.seen if r.path.endswith("/infer")]
        traceparent = f"00-{TRACE_ID}-{upstream.span_id.hex()}-01"
        assert forwarded[0].headers["traceparent"] == traceparent
        assert receiver.services == {"gateway-under-test"}
    finally:
        await replica.stop()
        await receiver.stop()


async def test_a_grpc_call_continues_the_traceparent_in_its_metadata(
    traced: Start, backend: FakeReplica
) -> None:
    exporter = InMemorySpanExporter()
    port = free_port()
    await traced(routes(backend.url, auth=False), exporter, grpc_port=port)
    exporter.clear()
    backend.seen.clear()
    request = service_pb2.ModelInferRequest(model_name="linear")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32")
    tensor.shape.extend([1, 4])
    request.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        await stub.ModelInfer(request, metadata=(("traceparent", TRACEPARENT),))
    spans = by_name(exporter.get_finished_spans())
    server = spans["inference.GRPCInferenceService/ModelInfer"]
    assert server.kind is SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    attributes = dict(server.attributes or {})
    assert (attributes["rpc.system"], attributes["rpc.method"]) == ("grpc", "ModelInfer")
    assert attributes["gateway.model"] == "linear"
    upstream = spans["POST"]
    assert upstream.parent is not None
    assert upstream.parent.span_id == server.context.span_id
    sent = [r for r in backend.seen if r.path.endswith("/infer")]
    assert sent[0].headers["traceparent"].split("-")[1] == TRACE_ID
