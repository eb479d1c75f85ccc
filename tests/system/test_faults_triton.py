"""A killed replica of a REAL Triton (``tests/servers``) is ejected and traffic continues."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.app.test_reload import eventually
from tests.conftest import StartGateway
from tests.servers.plugin import ServerHandle

pytestmark = pytest.mark.anyio
V2 = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
ADMIN = {"Authorization": "Bearer fault-token"}


async def test_a_killed_triton_replica_is_ejected_and_traffic_continues(
    start_gateway: StartGateway, start_triton: Callable[[], ServerHandle]
) -> None:
    first, second = start_triton(), start_triton()
    gateway = await start_gateway(
        f"""
backends:
  triton:
    kind: triton
    urls: ["{first.url}", "{second.url}"]
    health: {{interval: 200ms, timeout: 1s, unhealthy_after: 1}}
    outlier: {{consecutive_failures: 1, ejection: 30s}}
models:
  linear: {{versions: {{"1": {{backend: triton, name: linear, version: "1"}}}}}}
""",
        admin_token="fault-token",
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
