"""The bundled demo model server answers bad input as a v2 server does: a 400 with the
protocol's string error, never a 500 (the gateway would turn that into a 502)."""

from __future__ import annotations

import httpx
import pytest

from gateway.demo import demo_model_app

pytestmark = pytest.mark.anyio


async def infer(data: str) -> httpx.Response:
    body = '{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":' + data + "}]}"
    transport = httpx.ASGITransport(app=demo_model_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        return await client.post("/v2/models/linear/versions/2/infer", content=body)


@pytest.mark.parametrize("data", ["[1,2,3,1e39]", "[1,2,3,-3.5e38]", "[1,2,3,2.48e170]"])
async def test_a_value_past_fp32_range_is_a_400(data: str) -> None:
    response = await infer(data)
    assert response.status_code == 400, response.text
    assert "does not fit FP32" in response.json()["error"]


async def test_ieee_specials_pass_through() -> None:
    response = await infer("[1,2,3,Infinity]")
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1, 2]
