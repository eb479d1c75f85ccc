"""``GET /admin/series`` on one gateway (the memory store: the fleet is this process): what
each answer was counted as, and who may ask."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    eventually,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio
INFER = "/v2/models/m/versions/{}/infer"


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplica]:
    replica = await FakeReplica(body=b'{"outputs": []}').start()
    yield replica
    await replica.stop()


async def gateway(start_gateway: StartGateway, fake: FakeReplica) -> RunningGateway:
    served = versions("b", "1", "2", inputs=[INPUT0])
    text = routes_yaml({"b": backend("kserve", fake.url)}, {"m": model(served, default="1")})
    return await start_gateway(text, admin_token=ADMIN_TOKEN, series_step_seconds=1)


async def totals(gw: RunningGateway, **query: str) -> dict[tuple[str, str | None], Any]:
    response = await gw.client.get("/admin/series", params=query, headers=ADMIN)
    assert response.status_code == 200, response.text
    return {(s["model"], s["version"]): s["total"] for s in response.json()["series"]}


async def test_each_answer_is_counted_under_its_model_version_and_status_class(
    start_gateway: StartGateway, fake: FakeReplica
) -> None:
    gw = await gateway(start_gateway, fake)
    client = gw.client
    for _ in range(3):
        assert (await client.post(INFER.format(1), json=V2)).status_code == 200
    assert (await client.post(INFER.format(1), content=b"{bad")).status_code == 400
    assert (await client.post(INFER.format(2), json=V2)).status_code == 200
    assert (await client.post(INFER.format(9), json=V2)).status_code == 404  # no version
    assert (await client.post("/v2/models/nope/infer", json=V2)).status_code == 404  # no model
    fake.status = 500
    assert (await client.post(INFER.format(1), json=V2)).status_code == 502
    expected = {
        ("m", None): (1, 0, 1),  # answered before a version was chosen
        ("m", "1"): (5, 1, 1),
        ("m", "2"): (1, 0, 0),
    }

    async def counted() -> bool:
        found = await totals(gw)
        seen = {k: (t["requests"], t["errors_5xx"], t["errors_4xx"]) for k, t in found.items()}
        return seen == expected

    await eventually(counted)
    found = await totals(gw, model="m", version="1", minutes="1")
    assert list(found) == [("m", "1")]
    assert found["m", "1"]["error_rate"] == 0.2
    assert found["m", "1"]["p50_ms"] <= found["m", "1"]["p99_ms"]


@pytest.mark.parametrize("minutes", ["0", "1441", "x", "²", "-1", ""])
async def test_minutes_must_be_a_whole_number_in_range(
    start_gateway: StartGateway, fake: FakeReplica, minutes: str
) -> None:
    gw = await gateway(start_gateway, fake)
    response = await gw.client.get(f"/admin/series?minutes={minutes}", headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


async def test_the_series_need_admin_credentials(
    start_gateway: StartGateway, fake: FakeReplica
) -> None:
    gw = await gateway(start_gateway, fake)
    assert (await gw.client.get("/admin/series")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await gw.client.get("/admin/series", headers=wrong)).status_code == 401
    body = (await gw.client.get("/admin/series?minutes=2", headers=ADMIN)).json()
    assert (body["step"], body["end"] - body["start"]) == (1, 120)
