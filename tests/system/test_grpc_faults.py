"""REAL Tritons behind a gRPC backend when things go wrong: a version unloaded on one replica,
a replica killed, a server stopped (SIGSTOP: connected, silent), the circuit breaker, and a
dead replica beside a live one (connection refused is retried on the other)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.app.test_metrics import scrape, value
from tests.conftest import RunningGateway, StartGateway
from tests.servers.plugin import ServerHandle
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    V2,
    backend,
    error_of,
    eventually,
    free_port,
    model,
    routes_yaml,
)

pytestmark = pytest.mark.anyio
StartTriton = Callable[..., ServerHandle]
EXPLICIT = ("--model-control-mode=explicit", "--load-model=linear")
V1_ONLY = {  # linear's config.pbtxt as JSON, serving version 1 only
    "name": "linear",
    "backend": "python",
    "max_batch_size": 0,
    "version_policy": {"specific": {"versions": [1]}},
    "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [-1, 4]}],
    "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [-1, 2]}],
    "instance_group": [{"kind": "KIND_CPU", "count": 1}],
}


def grpc_url(server: ServerHandle) -> str:
    return f"grpc://{server.grpc_address}"


def linear_on(*urls: str, **options: Any) -> str:
    """Model ``linear`` (versions 1 and 2) on a gRPC Triton backend of ``urls``."""
    served = {v: {"backend": "triton", "name": "linear", "version": v} for v in ("1", "2")}
    triton = backend("triton", *urls, protocol="grpc", **options)
    return routes_yaml({"triton": triton}, {"linear": model(served, default="1")})


async def infer(gateway: RunningGateway, version: str = "1") -> httpx.Response:
    return await gateway.client.post(f"/v2/models/linear/versions/{version}/infer", json=V2)


async def replicas(gateway: RunningGateway) -> list[dict[str, Any]]:
    state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
    found: list[dict[str, Any]] = state["backends"]["triton"]["replicas"]
    return found


async def inference_count(server: ServerHandle, version: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = await client.get(f"{server.url}/v2/models/linear/versions/{version}/stats")
    count: int = stats.json()["model_stats"][0]["inference_count"]
    return count


@contextlib.contextmanager
def stopped(server: ServerHandle) -> Iterator[None]:
    """The server frozen (SIGSTOP): its connections stay open, nothing answers."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_a_version_unloaded_on_one_replica_moves_to_the_other(
    start_gateway: StartGateway, start_triton: StartTriton
) -> None:
    first, second = start_triton(*EXPLICIT), start_triton(*EXPLICIT)
    health = {"interval": "200ms", "timeout": "1s", "unhealthy_after": 1}
    routes = linear_on(grpc_url(first), grpc_url(second), health=health)
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
    assert (await infer(gateway, "2")).json()["outputs"][0]["data"] == [2.0, 18.0]
    async with httpx.AsyncClient(timeout=60) as client:
        loaded = await client.post(
            f"{first.url}/v2/repository/models/linear/load",
            json={"parameters": {"config": json.dumps(V1_ONLY)}},
        )
    assert loaded.status_code == 200, loaded.text

    async def unready() -> bool:
        return bool((await replicas(gateway))[0]["unready"] == ["linear/2"])

    await eventually(unready)
    before = await inference_count(second, "2")
    for _ in range(20):
        response = await infer(gateway, "2")
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [2.0, 18.0]
    assert await inference_count(second, "2") == before + 20  # all on the replica that has it
    for _ in range(10):  # version 1 is still served by both
        assert (await infer(gateway, "1")).json()["outputs"][0]["data"] == [1.0, 9.0]


async def test_a_killed_replica_is_ejected_and_traffic_continues(
    start_gateway: StartGateway, start_triton: StartTriton
) -> None:
    first, second = start_triton(), start_triton()
    routes = linear_on(
        grpc_url(first),
        grpc_url(second),
        health={"interval": "200ms", "timeout": "1s", "unhealthy_after": 1},
        outlier={"consecutive_failures": 1, "ejection": "30s"},
    )
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
    for _ in range(20):
        assert (await infer(gateway)).json()["outputs"][0]["data"] == [1.0, 9.0]
    first.kill()
    statuses = [(await infer(gateway)).status_code for _ in range(60)]
    # Sequential requests: nothing was in flight on the killed replica, so none may fail.
    assert statuses == [200] * 60

    async def ejected() -> bool:
        killed = (await replicas(gateway))[0]
        return bool(killed["ejected_for"] > 0 or killed["unready"])

    await eventually(ejected)


async def test_a_stopped_server_is_504_within_the_deadline_and_a_dead_one_503(
    start_gateway: StartGateway, start_triton: StartTriton
) -> None:
    triton = start_triton()
    routes = linear_on(grpc_url(triton), timeout="1s", deadline="2s", health={"interval": "1h"})
    gateway = await start_gateway(routes)
    assert (await infer(gateway)).status_code == 200  # connected
    with stopped(triton):
        response = await infer(gateway)
    assert response.status_code == 504, response.text
    assert error_of(response)[0] == "upstream_timeout"
    triton.kill()
    response = await infer(gateway)
    assert response.status_code == 503, response.text
    code, message = error_of(response)
    assert code == "no_healthy_replica"
    assert "could not connect to backend 'triton'" in message


async def test_the_circuit_breaker_refuses_beyond_max_in_flight(
    start_gateway: StartGateway, start_triton: StartTriton
) -> None:
    triton = start_triton()
    routes = linear_on(grpc_url(triton), timeout="2s", max_in_flight=1, health={"interval": "1h"})
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
    assert (await infer(gateway)).status_code == 200
    with stopped(triton):
        waiting = asyncio.create_task(infer(gateway))

        async def one_in_flight() -> bool:
            state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
            return bool(state["backends"]["triton"]["in_flight"] == 1)

        await eventually(one_in_flight)
        refused = await infer(gateway)
        assert refused.status_code == 503
        assert error_of(refused)[0] == "overloaded"
        assert refused.headers["Retry-After"] == "1"
        assert (await waiting).status_code == 504
    samples = await scrape(gateway.client)
    assert value(samples, "gateway_backend_circuit_open_total", backend="triton") == 1


async def test_connection_refused_is_retried_on_the_other_replica(
    start_gateway: StartGateway, triton_server: ServerHandle
) -> None:
    dead = f"grpc://127.0.0.1:{free_port()}"
    routes = linear_on(
        dead,
        grpc_url(triton_server),
        health={"interval": "1h", "unhealthy_after": 10},  # one probe: the dead one stays in
        outlier={"consecutive_failures": 1000},  # and is never ejected
    )
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
    for _ in range(30):
        response = await infer(gateway)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [1.0, 9.0]
    samples = await scrape(gateway.client)
    retries = value(samples, "gateway_backend_retries_total", backend="triton")
    refused = value(
        samples, "gateway_backend_attempts_total", backend="triton", outcome="retryable"
    )
    assert retries >= 1  # P2C picks the dead replica first about half the time
    assert refused == retries  # every refused connection retried once, on the live replica
    assert (await replicas(gateway))[0]["ejected_for"] == 0
