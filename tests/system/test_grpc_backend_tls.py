"""TLS toward a gRPC backend: a REAL Triton serving gRPC with mutual TLS
(``--grpc-use-ssl-mutual``, certificates made here), reached over ``grpcs://`` with the
backend's tls block; health checks and inference on the same secure channel. A wrong CA is a
clear 503, and the gateway keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.certs import CA
from tests.conftest import StartGateway
from tests.servers.plugin import ServerHandle
from tests.support import backend, error_of, model, routes_yaml

pytestmark = pytest.mark.anyio
INFER = "/v2/models/linear/versions/1/infer"
REQUEST = {
    "inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
}


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki")


@pytest.fixture
def mtls_triton(ca: CA, start_triton: Callable[..., ServerHandle]) -> ServerHandle:
    """A Triton whose gRPC port requires a client certificate issued by ``ca``."""
    server = ca.server("127.0.0.1", "triton.models")
    return start_triton(
        "--grpc-use-ssl-mutual=true",
        f"--grpc-server-cert={server.cert}",
        f"--grpc-server-key={server.key}",
        f"--grpc-root-cert={ca.cert}",
    )


def routes(triton: ServerHandle, tls: dict[str, Any], **health: Any) -> str:
    url = f"grpcs://{triton.grpc_address}"
    on = backend("triton", url, protocol="grpc", tls=tls, health=health or None)
    served = {"1": {"backend": "triton", "name": "linear", "version": "1"}}
    return routes_yaml({"triton": on}, {"linear": model(served)})


async def test_triton_over_mutual_tls(
    start_gateway: StartGateway, mtls_triton: ServerHandle, ca: CA
) -> None:
    client = ca.client("model-gateway")
    tls = {"ca_file": str(ca.cert), "cert_file": str(client.cert), "key_file": str(client.key)}
    # probes every 100 ms, one failure takes the replica out: they go over the same channel
    gateway = await start_gateway(
        routes(mtls_triton, {**tls, "server_name": "triton.models"}, interval="100ms")
    )
    for _ in range(3):
        response = await gateway.client.post(INFER, json=REQUEST)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [1.0, 9.0]
    ready = await gateway.client.get("/v2/models/linear/versions/1/ready")
    assert ready.status_code == 200


async def test_a_wrong_ca_or_no_client_certificate_is_a_clear_503(
    tmp_path: Path, start_gateway: StartGateway, mtls_triton: ServerHandle, ca: CA
) -> None:
    client = ca.client("model-gateway")
    other = CA(tmp_path / "other", "other CA")
    wrong_ca = {"ca_file": str(other.cert), "cert_file": str(client.cert)}
    wrong_ca["key_file"] = str(client.key)
    no_client_cert = {"ca_file": str(ca.cert)}
    # grpcio's own words: the handshake's reason, or the socket the server closed on us
    for tls, reason in ((wrong_ca, "CERTIFICATE_VERIFY_FAILED"), (no_client_cert, "closed")):
        gateway = await start_gateway(routes(mtls_triton, tls, interval="60s"))
        response = await gateway.client.post(INFER, json=REQUEST)
        assert response.status_code == 503, response.text
        code, message = error_of(response)
        assert code == "no_healthy_replica"
        assert "could not connect to backend 'triton'" in message
        assert reason in message
        assert (await gateway.client.get("/healthz")).status_code == 200
