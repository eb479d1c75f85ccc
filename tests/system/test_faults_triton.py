"""A killed replica of a REAL Triton (``tests/servers``) is ejected and traffic continues."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import StartGateway
from tests.servers.plugin import ServerHandle
from tests.support import V2, backend, eventually, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
ADMIN = {"Authorization": "Bearer fault-token"}


async def test_a_killed_triton_replica_is_ejected_and_traffic_continues(
    start_gateway: StartGateway, start_triton: Callable[[], ServerHandle]
) -> None:
    first, second = start_triton(), start_triton()
    triton = backend(
        "triton",
        first.url,
        second.url,
        health={"interval": "200ms", "timeout": "1s", "unhealthy_after": 1},
        outlier={"consecutive_failures": 1, "ejection": "30s"},
    )
    linear = model(versions("triton", "1", name="linear", version="1"))
    gateway = await start_gateway(
        routes_yaml({"triton": triton}, {"linear": linear}), admin_token="fault-token"
    )
    for _ in range(20):
        response = await gateway.client.post("/v2/models/linear/infer", json=V2)
        assert response.json()["outputs"][0]["data"] == [1.0, 9.0]
    first.kill()
    statuses = []
    for _ in range(60):
        statuses.append((await gateway.client.post("/v2/models/linear/infer", json=V2)).status_code)
    # Sequential requests: nothing was in flight on the killed replica, so none may fail.
    assert statuses == [200] * 60

    async def ejected() -> bool:
        state = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
        killed = state["backends"]["triton"]["replicas"][0]
        return bool(killed["ejected_for"] > 0 or killed["unready"])

    await eventually(ejected)
