"""Passthrough routes: streamed bodies, header hygiene, X-Forwarded-*, Authorization policy."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.conftest import StartGateway
from tests.fakes import FakeReplica, dead_url
from tests.support import backend, error_of, routes_yaml

pytestmark = pytest.mark.anyio


@pytest.fixture
async def upstream() -> AsyncIterator[FakeReplica]:
    fake = await FakeReplica(body=os.urandom(300_000)).start()
    yield fake
    await fake.stop()


def routes(url: str, **route: object) -> str:
    """The passthrough route ``/files/`` (its other keys: ``route``) to ``url``."""
    return routes_yaml(
        {"files": backend("http", url)}, routes=[{"path": "/files/", "backend": "files", **route}]
    )


async def test_binary_bodies_stream_both_ways(
    start_gateway: StartGateway, upstream: FakeReplica
) -> None:
    gateway = await start_gateway(routes(upstream.url))
    image = os.urandom(2_000_000)
    response = await gateway.client.post(
        "/files/predictions/resnet?top=3",
        content=image,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.content == upstream.body
    assert upstream.bodies[-1] == image
    seen = upstream.seen[-1]
    assert seen.path_qs == "/files/predictions/resnet?top=3"
    assert seen.headers["Content-Type"] == "application/octet-stream"


async def test_prefix_can_be_stripped(start_gateway: StartGateway, upstream: FakeReplica) -> None:
    gateway = await start_gateway(routes(upstream.url, strip_prefix=True))
    await gateway.client.get("/files/ping")
    assert upstream.seen[-1].path == "/ping"


async def test_hop_by_hop_headers_are_dropped_and_forwarding_headers_set(
    start_gateway: StartGateway, upstream: FakeReplica
) -> None:
    gateway = await start_gateway(routes(upstream.url))
    await gateway.client.get(
        "/files/x",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "Authorization": "Bearer client-token",
            "X-Forwarded-For": "203.0.113.9",
            "X-Custom": "kept",
        },
    )
    headers = upstream.seen[-1].headers
    for dropped in ("X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "TE", "Authorization"):
        assert dropped not in headers
    assert headers["X-Custom"] == "kept"
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == gateway.url.removeprefix("http://")
    assert len(headers["X-Request-ID"]) == 32


async def test_authorization_is_forwarded_only_when_the_route_says_so(
    start_gateway: StartGateway, upstream: FakeReplica
) -> None:
    gateway = await start_gateway(routes(upstream.url, forward_authorization=True))
    await gateway.client.get("/files/x", headers={"Authorization": "Bearer client-token"})
    assert upstream.seen[-1].headers["Authorization"] == "Bearer client-token"


async def test_upstream_status_and_headers_come_back(
    start_gateway: StartGateway, upstream: FakeReplica
) -> None:
    upstream.status, upstream.body = 404, b'{"code": 404, "type": "ModelNotFoundException"}'
    gateway = await start_gateway(routes(upstream.url))
    response = await gateway.client.get("/files/predictions/nope")
    assert response.status_code == 404
    assert response.json()["type"] == "ModelNotFoundException"
    assert response.headers["Content-Type"] == "application/json"  # the upstream's own
    assert "X-Request-ID" in response.headers


async def test_limits_methods_and_dead_backends(
    start_gateway: StartGateway, upstream: FakeReplica
) -> None:
    text = routes_yaml(
        {"files": backend("http", upstream.url), "dead": backend("http", dead_url())},
        routes=[
            {"path": "/files/", "backend": "files", "methods": ["GET"]},
            {"path": "/dead/", "backend": "dead"},
        ],
    )
    gateway = await start_gateway(text, max_body_bytes=1000)
    refused = await gateway.client.post("/files/x", content=b"x")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET"
    dead = await gateway.client.get("/dead/x")
    assert dead.status_code == 503
    assert error_of(dead)[0] == "no_healthy_replica"
    big = await gateway.client.post("/dead/x", content=b"x" * 2000)
    assert big.status_code == 413
    assert upstream.calls == 0
