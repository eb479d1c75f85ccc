"""Fake servers in the test's event loop (aiohttp.web): a controllable model server replica, for
pool and proxy edge cases, an OTLP/HTTP trace receiver, and a counting proxy in front of a real
server."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.codecs import binary, v2
from gateway.codecs.tensors import InferenceResponse
from gateway.errors import BadRequest
from tests.support import free_port

# A KServe v2 reply with one output, for tests whose backend is a fake.
REPLY = b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [7]}]}'


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def listen(handle: Handler, client_max_size: int = 1024**2) -> tuple[web.AppRunner, int]:
    """An aiohttp server on a free loopback port answering every path with ``handle``."""
    app = web.Application(client_max_size=client_max_size)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def health_check(request: web.Request) -> web.Response | None:
    """A v2 server's answer to the gateway's server and bulk readiness checks: live, and no
    repository index (404, as a v2 server without Triton's model repository extension), so
    the gateway probes each model version's ``…/ready``, which the fake answers as it likes.
    None for any other request."""
    if request.path == "/v2/health/live":
        return web.Response(status=200)
    if request.path == "/v2/repository/index":
        return web.json_response({"error": "Not Found"}, status=404)
    return None


@dataclass
class FakeReplica:
    """Answers every request with ``status``/``body`` after ``delay`` seconds; records requests
    (the server and bulk readiness checks aside: ``health_check``)."""

    status: int = 200
    body: bytes = b'{"outputs": []}'
    delay: float = 0.0
    calls: int = 0
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        checked = health_check(request)
        if checked is not None:
            return checked
        self.calls += 1
        self.seen.append(request)
        self.bodies.append(await request.read())
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")

    async def start(self) -> FakeReplica:
        self._runner, self.port = await listen(self._handle, 64 * 1024 * 1024)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class EchoServer:
    """A KServe v2 server whose model ``echo`` answers every input as an output of the same
    name, in JSON or binary tensor data (both ways, as Triton does, read and written with the
    gateway's own codec); records each inference request's headers and body."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _infer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        length = binary.header_length(request.headers.get(binary.HEADER), BadRequest)
        call = v2.decode_request(body, length)
        reply = InferenceResponse(outputs=call.inputs, id=call.id, parameters=call.parameters)
        wanted = binary.wanted_outputs(call)
        if wanted is None:
            answer = v2.encode_response(reply, "echo", "1")
            return web.Response(body=answer, content_type="application/json")
        answer, size = v2.encode_response_binary(reply, "echo", "1", None, wanted)
        headers = {binary.HEADER: str(size), "Content-Type": binary.CONTENT_TYPE}
        return web.Response(body=answer, headers=headers)

    async def _metadata(self, request: web.Request) -> web.Response:
        meta = {"name": "echo", "versions": ["1"], "platform": "echo", "inputs": [], "outputs": []}
        return web.json_response(meta)

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def start(self) -> EchoServer:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v2/models/echo/infer", self._infer)
        app.router.add_get("/v2/models/echo", self._metadata)
        app.router.add_get("/v2/models/echo/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def forwarded(backend: FakeReplica) -> list[str]:
    """The paths of the requests that reached ``backend``, health probes aside."""
    return [r.path for r in backend.seen if not r.path.endswith("/ready")]


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


# A caller's W3C trace context (the example of the Trace Context specification).
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf, decoded with opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for attribute in resource.resource.attributes:
                if attribute.key == "service.name":
                    self.services.add(attribute.value.string_value)
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class WebhookReceiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next status of ``answers``
    (200 once they run out), records each request's path, headers and body."""

    answers: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            (request.path_qs, {k.lower(): v for k, v in request.headers.items()}, body)
        )
        self._arrived.set()
        status = self.answers.pop(0) if self.answers else 200
        headers = {"Location": f"{self.url}/redirected"} if 300 <= status < 400 else {}
        return web.Response(status=status, headers=headers)

    async def wait_for(self, count: int, seconds: float = 10.0) -> None:
        """Until ``count`` requests have arrived (bounded)."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def start(self) -> WebhookReceiver:
        self._runner, self.port = await listen(self._handle)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class CountingProxy:
    """A reverse proxy in front of a real server that counts every request by method and path
    (with its query), exactly; a path in ``refuse`` is answered with that status instead of
    being forwarded (a bulk call that fails, say)."""

    upstream: str
    counts: Counter[str] = field(default_factory=Counter)
    refuse: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self, *, excluding: tuple[str, ...] = ()) -> Counter[str]:
        """The counts, without the requests that start with one of ``excluding``."""
        return Counter({k: n for k, n in self.counts.items() if not k.startswith(excluding)})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.counts[f"{request.method} {request.path_qs}"] += 1
        status = self.refuse.get(request.path)
        if status is not None:
            return web.json_response({"error": "refused by the test"}, status=status)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as reply:
            body = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP}
            return web.Response(status=reply.status, body=body, headers=kept)

    async def start(self) -> CountingProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner, self.port = await listen(self._handle, 64 * 1024 * 1024)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})
