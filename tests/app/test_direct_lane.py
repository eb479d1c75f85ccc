"""The direct lane (``gateway.edge.direct``) against a real uvicorn gateway: which requests take
it, the same answers and access lines as the ASGI lane for the same requests, pipelined
keep-alive, the body limit, ``100 Continue``, a client that leaves, and a graceful shutdown
with a request in flight."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from uvicorn.middleware.message_logger import MessageLoggerMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.app import create_app
from gateway.edge.direct import lane_of
from gateway.edge.http import HTTPEdge
from gateway.settings import Settings
from tests.app.test_access_log import Lines
from tests.app.test_v2_http import echo_routes
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import REPLY, EchoServer, FakeReplica
from tests.support import backend, demo_routes, free_port, model, routes_yaml, versions

pytestmark = pytest.mark.anyio

ROW = {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
INFER = orjson.dumps({"inputs": [ROW]})
PREDICT = orjson.dumps({"instances": [[1, 2, 3, 4]]})
VARYING = ("date", "server-timing")  # differ from one answer to the next, whatever the lane
TIMES = ("time", "total_ms", "gateway_ms", "upstream_ms")


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


@pytest.fixture
def access() -> Iterator[Lines]:
    handler = Lines()
    yield handler
    logger = logging.getLogger("gateway.access")
    logger.setLevel(logging.NOTSET)
    logger.removeHandler(handler)


def edge_of(gateway: RunningGateway) -> HTTPEdge:
    app: Any = gateway.server.config.loaded_app
    while not isinstance(app, HTTPEdge):
        app = app.app
    return app


async def exchange(gateway: RunningGateway, raw: bytes) -> tuple[bytes, bool]:
    """``raw`` sent on a new connection; everything read until the server closes it or 10 s
    pass, and whether it closed."""
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        received = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True
    finally:
        writer.close()


def answers(received: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 answers in ``received``, by Content-Length."""
    found = []
    while received:
        head, _, received = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body, received = received[:length], received[length:]
        found.append((int(status_line.split()[1]), headers, body))
    return found


def comparable(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    kept = [(k, v) for k, v in response.headers.raw if k.decode().lower() not in VARYING]
    return response.status_code, kept, response.content


def line_of(lines: Lines) -> dict[str, Any]:
    (line,) = lines.lines
    lines.lines.clear()
    shown: dict[str, Any] = json.loads(line)
    return {k: v for k, v in shown.items() if k not in TIMES}


async def test_the_lane_serves_inference_and_nothing_else(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    edge, client = edge_of(gateway), gateway.client
    cases = [
        ("POST", "/v2/models/linear/infer", INFER, True),
        ("POST", "/v2/models/linear/versions/2/infer", INFER, True),
        ("POST", "/v2/models/nope/infer", INFER, True),  # the route is the lane's: a 404 in it
        ("POST", "/v1/models/linear:predict", PREDICT, True),
        ("POST", "/v1/models/linear/versions/1:predict", PREDICT, True),
        ("GET", "/v2/models/linear", None, False),
        ("GET", "/v2/models/linear/infer", None, False),  # 405
        ("POST", "/v2/models/linear/ready", INFER, False),  # 405
        ("GET", "/healthz", None, False),
        ("POST", "/v1/models/linear:classify", PREDICT, False),
    ]
    taken = []
    for method, path, body, _ in cases:
        before = edge.direct_served
        await client.request(method, path, content=body)
        taken.append(edge.direct_served - before)
    assert taken == [1 if direct else 0 for *_, direct in cases]


async def test_the_lane_is_off_when_the_edge_says_so(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    edge = edge_of(gateway)
    edge.direct = False
    response = await gateway.client.post("/v2/models/linear/infer", content=INFER)
    assert response.status_code == 200
    assert edge.direct_served == 0


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        pytest.param("/v2/models/echo/infer", INFER, {}, id="json"),
        pytest.param("/v2/models/echo/versions/1/infer", INFER, {}, id="pinned"),
        pytest.param(
            "/v2/models/echo/infer",
            orjson.dumps({"id": "c1", "inputs": [ROW], "parameters": {"binary_data_output": True}}),
            {},
            id="binary-output",
        ),
        pytest.param(
            "/v2/models/echo/infer",
            orjson.dumps({"inputs": [{**ROW, "shape": [1, 400], "data": list(range(400))}]}),
            {"Accept-Encoding": "gzip"},
            id="compressed",
        ),
        pytest.param(
            "/v2/models/echo/infer",
            gzip.compress(INFER),
            {"Content-Encoding": "gzip"},
            id="gzip-body",
        ),
        pytest.param("/v2/models/nope/infer", INFER, {}, id="unknown-model"),
        pytest.param("/v2/models/echo/versions/9/infer", INFER, {}, id="unknown-version"),
        pytest.param("/v2/models/echo/infer", b'{"inputs": [', {}, id="malformed"),
        pytest.param("/v2/models/echo/infer", INFER, {"Content-Encoding": "br"}, id="415"),
        pytest.param("/v1/models/echo:predict", PREDICT, {}, id="v1-predict"),
    ],
)
async def test_both_lanes_answer_and_log_the_same(
    start_gateway: StartGateway,
    echo: EchoServer,
    access: Lines,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    gateway = await start_gateway(echo_routes(echo.url))
    access.attach()
    edge = edge_of(gateway)
    sent = {"X-Request-ID": "parity-1", "Content-Type": "application/json", **headers}
    await gateway.client.post(path, content=body, headers=sent)  # the backend's connection made
    line_of(access)
    direct = await gateway.client.post(path, content=body, headers=sent)
    direct_line = line_of(access)
    assert edge.direct_served == 2
    edge.direct = False
    asgi = await gateway.client.post(path, content=body, headers=sent)
    asgi_line = line_of(access)
    assert edge.direct_served == 2
    assert comparable(direct) == comparable(asgi)
    assert direct_line == asgi_line
    assert direct.headers["x-request-id"] == "parity-1"
    assert "server-timing" in direct.headers


async def test_pipelined_requests_are_answered_in_order(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    edge = edge_of(gateway)
    length = str(len(INFER)).encode()

    def infer(
        request_id: bytes, path: bytes = b"/v2/models/linear/infer", extra: bytes = b""
    ) -> bytes:
        head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + request_id
        return head + b"\r\nContent-Length: " + length + b"\r\n" + extra + b"\r\n" + INFER

    raw = (
        infer(b"a")
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: b\r\n\r\n"
        + infer(b"c", b"/v2/models/linear/versions/2/infer")
        + infer(b"d", b"/v2/models/nope/infer")
        + infer(b"e", extra=b"Connection: close\r\n")
    )
    received, closed = await exchange(gateway, raw)
    got = answers(received)
    assert [(s, h["x-request-id"]) for s, h, _ in got] == [
        (200, "a"),
        (200, "b"),
        (200, "c"),
        (404, "d"),
        (200, "e"),
    ]
    assert [h.get("connection") for _, h, _ in got] == [None, None, None, None, "close"]
    assert orjson.loads(got[2][2])["model_version"] == "2"
    assert closed
    assert edge.direct_served == 4


@pytest.mark.parametrize("request_head", [b"HTTP/1.0\r\n", b"HTTP/1.1\r\nConnection: close\r\n"])
async def test_an_answer_not_kept_alive_closes_the_connection(
    start_gateway: StartGateway, demo_backend: str, request_head: bytes
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    raw = b"POST /v2/models/linear/infer " + request_head
    raw += b"Content-Length: " + str(len(INFER)).encode() + b"\r\n\r\n" + INFER
    received, closed = await exchange(gateway, raw)
    ((status, headers, body),) = answers(received)
    assert (status, headers["connection"]) == (200, "close")
    assert orjson.loads(body)["outputs"][0]["data"] == [1.0, 9.0]
    assert closed
    assert edge_of(gateway).direct_served == 1


@pytest.mark.parametrize("lane", [True, False])
async def test_a_body_over_the_limit_is_a_413_in_the_protocol_shape(
    start_gateway: StartGateway, demo_backend: str, lane: bool
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), max_body_bytes=64)
    edge = edge_of(gateway)
    edge.direct = lane
    big = orjson.dumps({"inputs": [{**ROW, "shape": [1, 40], "data": list(range(40))}]})
    declared = await gateway.client.post("/v2/models/linear/infer", content=big)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 32):
            yield big[start : start + 32]

    chunked = await gateway.client.post("/v2/models/linear/infer", content=chunks())
    after = await gateway.client.post("/v2/models/linear/infer", content=b"{}")
    for response in (declared, chunked):
        assert response.status_code == 413
        shown = response.json()
        assert shown["code"] == "payload_too_large"
        assert isinstance(shown["error"], str)
    assert after.status_code == 400  # the connection serves on
    assert edge.direct_served == (3 if lane else 0)


async def test_expect_100_continue_in_the_lane(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(INFER)).encode() + b"\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(INFER)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert head.startswith(b"HTTP/1.1 200 ")
    assert edge_of(gateway).direct_served == 1


@pytest.mark.parametrize("lane", [True, False])
async def test_a_client_that_leaves_mid_body_is_a_499(
    start_gateway: StartGateway, demo_backend: str, access: Lines, lane: bool
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    access.attach()
    edge_of(gateway).direct = lane
    raw = b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    host, port = gateway.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw + INFER[:10])
    await writer.drain()
    writer.close()
    for _ in range(500):  # the server learns it when the connection is lost
        if access.lines:
            break
        await asyncio.sleep(0.01)
    shown = line_of(access)
    assert (shown["status"], shown["path"]) == (499, "/v2/models/linear/infer")
    assert edge_of(gateway).direct_served == (1 if lane else 0)


async def test_a_graceful_shutdown_answers_the_request_in_flight(
    start_gateway: StartGateway,
) -> None:
    slow = await FakeReplica(body=REPLY, delay=0.5).start()
    try:
        routes = routes_yaml(
            {"slow": backend("kserve", slow.url, timeout="10s")},
            {"m": model(versions("slow", "1"))},
        )
        gateway = await start_gateway(routes)
        pending = asyncio.create_task(gateway.client.post("/v2/models/m/infer", content=INFER))
        while slow.calls == 0:
            assert not pending.done(), pending.result()
            await asyncio.sleep(0.01)
        gateway.server.should_exit = True
        response = await pending
        await asyncio.wait_for(gateway.task, 30)
    finally:
        await slow.stop()
    assert response.status_code == 200
    assert response.headers["connection"] == "close"
    assert response.json()["outputs"][0]["data"] == [7]
    assert edge_of(gateway).direct_served == 1


async def noop(scope: Any, receive: Any, send: Any) -> None:
    pass


def test_the_lane_is_there_only_for_the_gateways_app() -> None:
    edge = HTTPEdge(lambda: None)  # type: ignore[arg-type,return-value]
    assert lane_of(edge) is not None
    proxied = lane_of(ProxyHeadersMiddleware(edge, "127.0.0.1"))  # type: ignore[arg-type]
    assert proxied is not None
    assert proxied.proxy is not None
    assert lane_of(MessageLoggerMiddleware(edge)) is None  # type: ignore[arg-type]
    assert lane_of(noop) is None


async def test_a_client_that_leaves_before_the_answer_is_logged_as_in_the_asgi_lane(
    start_gateway: StartGateway, access: Lines
) -> None:
    slow = await FakeReplica(body=REPLY, delay=0.2).start()
    try:
        routes = routes_yaml(
            {"slow": backend("kserve", slow.url, timeout="10s")},
            {"m": model(versions("slow", "1"))},
        )
        gateway = await start_gateway(routes)
        await gateway.client.post("/v2/models/m/infer", content=INFER)  # the backend's connection
        access.attach()
        edge = edge_of(gateway)
        host, port = gateway.url.removeprefix("http://").split(":")
        raw = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone\r\n"
        raw += b"Content-Length: " + str(len(INFER)).encode() + b"\r\n\r\n" + INFER
        shown = []
        for lane in (True, False):
            edge.direct = lane
            calls = slow.calls
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(raw)
            await writer.drain()
            for _ in range(1000):  # the call at the backend: leave now
                if slow.calls > calls:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            for _ in range(500):
                if access.lines:
                    break
                await asyncio.sleep(0.01)
            shown.append(line_of(access))
        after = await gateway.client.post("/v2/models/m/infer", content=INFER)
    finally:
        await slow.stop()
    assert shown[0] == shown[1]
    assert shown[0]["request_id"] == "gone"
    assert after.status_code == 200
    assert edge.direct_served == 2  # the first call and the lane's leaver


async def test_the_lane_traces_and_reads_proxy_headers_as_the_asgi_lane(
    tmp_path: Path, demo_backend: str
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(demo_routes(demo_backend), encoding="utf-8")
    port = free_port()
    config = Settings(
        config=path, port=port, log_level="warning", watch=False, forwarded_allow_ips="127.0.0.1"
    )
    exporter = InMemorySpanExporter()
    edge = create_app(config, span_exporter=exporter)
    server = uvicorn.Server(uvicorn.Config(edge, **config.uvicorn_options()))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    seen: list[dict[str, Any]] = []
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        headers["X-Request-ID"] = "traced-1"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.post("/v2/models/linear/infer", content=INFER)  # the backend's connection
            for lane in (True, False):
                edge.direct = lane
                exporter.clear()
                response = await client.post(
                    "/v2/models/linear/infer", content=INFER, headers=headers
                )
                assert response.status_code == 200
                spans = {span.name: span for span in exporter.get_finished_spans()}
                attributes = dict(spans["POST /v2/models/{model}/infer"].attributes or {})
                assert {"POST /v2/models/{model}/infer", "policy traffic", "POST"} <= set(spans)
                seen.append(attributes)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
    assert seen[0] == seen[1]
    attributes = seen[0]
    assert (attributes["client.address"], attributes["url.scheme"]) == ("203.0.113.9", "https")
    assert attributes["http.response.status_code"] == 200
    assert edge.direct_served == 2  # the first call and the lane's


async def test_the_server_over_its_concurrency_limit_answers_503_outside_the_lane(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    gateway.server.config.limit_concurrency = 1  # read by each new connection's protocol
    raw = b"POST /v2/models/linear/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raw += b"Content-Length: " + str(len(INFER)).encode() + b"\r\n\r\n" + INFER
    received, closed = await exchange(gateway, raw)
    ((status, _, body),) = answers(received)
    assert (status, body, closed) == (503, b"Service Unavailable", True)
    assert edge_of(gateway).direct_served == 0


async def test_a_percent_encoded_path_and_a_root_path_reach_the_lane(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    edge = edge_of(gateway)
    response = await gateway.client.post("/v2/models/%6Cinear/infer", content=INFER)
    assert response.status_code == 200, response.text
    assert response.json()["model_name"] == "linear"
    assert edge.direct_served == 1
    gateway.server.config.root_path = "/v2"  # read by each new connection's protocol
    raw = b"POST /models/linear/infer?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raw += b"Content-Length: " + str(len(INFER)).encode() + b"\r\n\r\n" + INFER
    received, _ = await exchange(gateway, raw)
    ((status, _, body),) = answers(received)
    assert status == 200, body
    assert edge.direct_served == 2


async def test_an_upgrade_request_is_answered_as_a_plain_request(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n"
    received, closed = await exchange(gateway, raw)
    ((status, _, _),) = answers(received)
    assert (status, closed) == (200, True)
