"""TLS toward an HTTP backend: a real HTTPS KServe v2 server (the bundled demo model server
under uvicorn with a certificate made here) that requires a client certificate, served through
the gateway with verification on; wrong trust is a clear 502/503, never a crash."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.backends.h1.client import Client
from gateway.backends.kserve import TritonBackend
from gateway.backends.pool import ReplicaPool
from gateway.backends.upstream import Target
from gateway.config.model import Backend
from gateway.demo import demo_model_app
from tests.certs import CA, Issued
from tests.conftest import StartGateway
from tests.support import V2, backend, error_of, eventually, free_port, model, routes_yaml

pytestmark = pytest.mark.anyio

INFER = "/v2/models/linear/versions/1/infer"


class _Seen:
    """ASGI wrapper: the paths the backend was asked for (probes included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


class HTTPSBackend:
    def __init__(self, url: str, seen: _Seen) -> None:
        self.url = url
        self.seen = seen


StartHTTPS = Callable[..., Awaitable[HTTPSBackend]]


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki")


@pytest.fixture
def client_cert(ca: CA) -> Issued:
    return ca.client("model-gateway")


@pytest.fixture
async def start_https(ca: CA) -> AsyncIterator[StartHTTPS]:
    """Start the demo KServe v2 server over HTTPS with a certificate of ``ca`` for ``names``;
    ``mtls``: it requires a client certificate issued by ``ca``."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(*names: str, mtls: bool = True) -> HTTPSBackend:
        issued = ca.server(*names, stem=f"server-{len(servers)}")
        port = free_port()
        seen = _Seen(demo_model_app())
        config = uvicorn.Config(
            seen,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ssl_certfile=str(issued.cert),
            ssl_keyfile=str(issued.key),
            ssl_ca_certs=str(ca.cert) if mtls else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if mtls else ssl.CERT_NONE,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:  # uvicorn offers no event to wait on
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return HTTPSBackend(f"https://127.0.0.1:{port}", seen)

    yield start
    for server, _ in servers:
        server.should_exit = True
    for _, task in servers:
        await asyncio.wait_for(task, 10)


def tls_routes(url: str, tls: dict[str, Any] | None, **health: Any) -> str:
    served = {"1": {"backend": "demo", "name": "linear", "version": "1"}}
    demo = backend("triton", url, tls=tls, health=health or None, retries={"attempts": 1})
    return routes_yaml({"demo": demo}, {"linear": model(served)})


async def test_an_mtls_backend_is_served_with_verification_on(
    start_gateway: StartGateway, start_https: StartHTTPS, ca: CA, client_cert: Issued
) -> None:
    https = await start_https()
    tls = {"ca_file": str(ca.cert), "cert_file": str(client_cert.cert)}
    tls["key_file"] = str(client_cert.key)
    # one failed probe would take the replica out: probes go over the same TLS
    gateway = await start_gateway(tls_routes(https.url, tls, interval="100ms", unhealthy_after=1))

    async def probed_thrice() -> bool:
        return sum(p == "/v2/repository/index" for p in https.seen.paths) >= 3

    await eventually(probed_thrice)
    response = await gateway.client.post(INFER, json=V2)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0, 9.0]


async def test_the_verified_name_can_differ_from_the_urls_host(
    start_gateway: StartGateway, start_https: StartHTTPS, ca: CA, client_cert: Issued
) -> None:
    https = await start_https("models.internal")  # no IP address in its certificate
    tls = {"ca_file": str(ca.cert), "cert_file": str(client_cert.cert)}
    tls["key_file"] = str(client_cert.key)
    mismatch = await start_gateway(tls_routes(https.url, tls, interval="60s"))
    response = await mismatch.client.post(INFER, json=V2)
    assert response.status_code == 503, response.text
    assert "certificate verify failed: IP address mismatch" in error_of(response)[1]
    named = await start_gateway(tls_routes(https.url, {**tls, "server_name": "models.internal"}))
    response = await named.client.post(INFER, json=V2)
    assert response.status_code == 200, response.text


async def test_a_backend_signed_by_another_ca_is_a_clear_503(
    tmp_path: Path, start_gateway: StartGateway, start_https: StartHTTPS
) -> None:
    https = await start_https(mtls=False)
    other = CA(tmp_path / "other", "other CA")
    # a long interval: the first probe's failure alone does not take the replica out yet
    gateway = await start_gateway(
        tls_routes(https.url, {"ca_file": str(other.cert)}, interval="60s")
    )
    for _ in range(2):
        response = await gateway.client.post(INFER, json=V2)
        assert response.status_code == 503, response.text
        code, message = error_of(response)
        assert code == "no_healthy_replica"
        assert f"{https.url}: TLS handshake failed: certificate verify failed" in message
    assert "linear" not in https.seen.paths  # nothing reached it
    assert (await gateway.client.get("/healthz")).status_code == 200  # the gateway stands


async def test_without_its_client_certificate_the_gateway_is_refused(
    start_gateway: StartGateway, start_https: StartHTTPS, ca: CA
) -> None:
    https = await start_https()  # requires a client certificate
    gateway = await start_gateway(tls_routes(https.url, {"ca_file": str(ca.cert)}, interval="60s"))
    response = await gateway.client.post(INFER, json=V2)
    # TLS 1.3: the client's handshake is over before the server refuses it, so the gateway
    # sees an alert or a reset while reading, by timing: a 502 either way
    assert response.status_code == 502, response.text
    assert error_of(response)[0] == "bad_gateway"
    assert not https.seen.paths  # the control for the first test: a certificate is required


async def test_insecure_skip_verify_is_served_and_warned(
    tmp_path: Path,
    start_https: StartHTTPS,
    caplog: pytest.LogCaptureFixture,
) -> None:
    https = await start_https(mtls=False)
    spec = Backend.model_validate(
        {"kind": "triton", "urls": [https.url], "tls": {"insecure_skip_verify": True}}
    )
    caplog.set_level(logging.WARNING, logger="gateway.pool")
    client = Client()
    async with aiohttp.ClientSession() as session:
        pool = ReplicaPool("demo", spec, session, client)
        reply = await pool.request("GET", "/v2/health/ready")
    await client.close()
    assert reply.status == 200
    [record] = [r for r in caplog.records if "insecure_skip_verify" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert getattr(record, "backend", None) == "demo"


async def test_a_failed_probe_says_why_in_the_log(
    tmp_path: Path, start_https: StartHTTPS, caplog: pytest.LogCaptureFixture
) -> None:
    https = await start_https(mtls=False)
    other = CA(tmp_path / "other", "other CA")
    spec = Backend.model_validate(
        {
            "kind": "triton",
            "urls": [https.url],
            "tls": {"ca_file": str(other.cert)},
            "health": {"unhealthy_after": 1},
        }
    )
    caplog.set_level(logging.WARNING, logger="gateway.pool")
    async with aiohttp.ClientSession() as session:
        pool = ReplicaPool("demo", spec, session, Client())  # probes go through the session
        triton = TritonBackend(pool)
        await pool.check_once(triton, [Target("linear", "1", "linear", "1")])
    [record] = [r for r in caplog.records if r.getMessage() == "replica not ready"]
    error = getattr(record, "error", "")
    assert error.startswith("TLS handshake failed: certificate verify failed"), error
