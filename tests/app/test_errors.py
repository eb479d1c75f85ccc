"""Errors take the shape of the endpoint's protocol; the earlier object shape on the inference
endpoints stays available, deprecated, behind GATEWAY_INFERENCE_ERRORS=legacy."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway
from tests.support import demo_routes

pytestmark = pytest.mark.anyio


async def test_protocol_shape_on_inference_endpoints_object_shape_elsewhere(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), admin_token="t0ken")
    missing = await gateway.client.post("/v2/models/nope/infer", json={"inputs": []})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "model 'nope' is not served here",
        "code": "model_not_found",
        "request_id": missing.headers["X-Request-ID"],
    }
    unrouted = await gateway.client.get("/v2/nothing/here")
    assert unrouted.status_code == 404
    assert isinstance(unrouted.json()["error"], str)
    wrong_method = await gateway.client.get("/v2/models/linear/infer")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["code"] == "method_not_allowed"
    admin = await gateway.client.get(
        "/admin/tenants/nope", headers={"Authorization": "Bearer t0ken"}
    )
    assert admin.status_code == 404
    assert admin.json() == {
        "error": {"code": "not_found", "message": "no tenant 'nope'"},
        "request_id": admin.headers["X-Request-ID"],
    }


async def test_the_legacy_shape_is_kept_behind_a_deprecated_setting(
    start_gateway: StartGateway, demo_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), inference_errors="legacy")
    assert "GATEWAY_INFERENCE_ERRORS=legacy is deprecated" in capsys.readouterr().err
    for path in ("/v2/models/nope/infer", "/v1/models/nope:predict", "/v2/nothing"):
        response = await gateway.client.post(path, json={"inputs": []})
        assert response.status_code == 404
        error = response.json()["error"]
        assert set(error) == {"code", "message"}, error
    ok = await gateway.client.post(
        "/v2/models/linear/infer",
        json={
            "inputs": [
                {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            ]
        },
    )
    assert ok.status_code == 200
