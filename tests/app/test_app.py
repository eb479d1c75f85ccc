"""The gateway's public surface over the bundled KServe v2 demo server: answers and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import yaml

from tests.conftest import StartGateway
from tests.fakes import FakeReplica
from tests.support import (
    INPUT0,
    V2,
    backend,
    demo_routes,
    error_of,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("path", "headers", "version", "outputs"),
    [
        ("/v2/models/linear/infer", {}, "1", [1.0, 9.0]),
        ("/v2/models/linear/versions/2/infer", {}, "2", [2.0, 18.0]),
        ("/v2/models/linear/infer", {"X-Model-Version": "2"}, "2", [2.0, 18.0]),
        ("/v2/models/linear/versions/1/infer", {"X-Model-Version": "2"}, "1", [1.0, 9.0]),
    ],
)
async def test_v2_inference_and_version_pinning(
    start_gateway: StartGateway,
    demo_backend: str,
    path: str,
    headers: dict[str, str],
    version: str,
    outputs: list[float],
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    response = await gateway.client.post(path, json={**V2, "id": "r-7"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("linear", version, "r-7")
    assert body["outputs"][0]["data"] == outputs
    assert response.headers["X-Model-Version"] == version


async def test_every_response_carries_request_id_and_timing(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    ok = await gateway.client.post("/v2/models/linear/infer", json=V2)
    mine = await gateway.client.get("/v2/models/nope", headers={"X-Request-ID": "abc-123"})
    assert len(ok.headers["X-Request-ID"]) == 32
    assert mine.headers["X-Request-ID"] == "abc-123"
    assert mine.json()["request_id"] == "abc-123"
    timing = dict(p.strip().split(";dur=") for p in ok.headers["Server-Timing"].split(","))
    assert set(timing) == {"gateway", "upstream"}
    assert float(timing["upstream"]) > 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v2/models/linear/infer", b"{not json", 400, "bad_request"),
        ("POST", "/v2/models/linear/infer", b"", 400, "bad_request"),
        ("POST", "/v2/models/linear/infer", b'{"inputs": []}', 400, "bad_request"),
        ("POST", "/v1/models/linear:predict", b'{"instances": [[1, 2], [3]]}', 400, "bad_request"),
        ("POST", "/v2/models/nope/infer", b"{}", 404, "model_not_found"),
        ("POST", "/v2/models/linear/versions/9/infer", b"{}", 404, "version_not_found"),
        ("GET", "/v1/models/linear/versions/9", b"", 404, "version_not_found"),
        ("GET", "/v2/models/linear/infer", b"", 405, "method_not_allowed"),
        ("GET", "/nowhere", b"", 404, "not_found"),
        (
            "POST",
            "/v2/models/linear/infer",
            b'{"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", '
            b'"data": [1, 2, 3]}]}',
            422,
            "invalid_tensor",
        ),
        (
            "POST",
            "/v2/models/linear/infer",
            b'{"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "INT64", '
            b'"data": [1, 2, 3, 4]}]}',
            422,
            "invalid_tensor",
        ),
        ("POST", "/v1/models/linear:predict", b'{"instances": [[1, 2, 3]]}', 422, "invalid_tensor"),
        (
            "POST",
            "/v1/models/linear:predict",
            b'{"instances": [["a", "b", "c", "d"]]}',
            422,
            "invalid_tensor",
        ),
    ],
)
async def test_bad_input_gets_a_json_error(
    start_gateway: StartGateway,
    demo_backend: str,
    method: str,
    path: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    response = await gateway.client.request(method, path, content=body)
    assert response.status_code == status, response.text
    found, message = error_of(response)  # in the endpoint's shape, request id included
    assert found == code
    assert message
    again = await gateway.client.post("/v2/models/linear/infer", json=V2)
    assert again.status_code == 200  # and the gateway keeps serving


async def test_body_over_the_limit_is_413(start_gateway: StartGateway, demo_backend: str) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), max_body_bytes=1000)
    big = {"instances": [[1.0, 2.0, 3.0, 4.0]] * 200}
    response = await gateway.client.post("/v1/models/linear:predict", json=big)
    assert response.status_code == 413
    assert error_of(response)[0] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    streamed = await gateway.client.post("/v1/models/linear:predict", content=chunks())
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("upstream_status", "upstream_body", "status", "message"),
    [
        (400, b'{"error": "unexpected shape for input"}', 400, "unexpected shape for input"),
        (404, b'{"error": "Request for unknown model"}', 404, "Request for unknown model"),
        (500, b"Internal Server Error", 502, "Internal Server Error"),
        (503, b'{"code": 503, "message": "Prediction failed"}', 503, "Prediction failed"),
        (504, b'{"error": "deadline exceeded"}', 504, "deadline exceeded"),
        (200, b"<html>not json</html>", 502, "reply is not valid JSON"),
        (200, b'{"no": "outputs"}', 502, "no 'outputs'"),
    ],
)
async def test_backend_errors_keep_their_message(
    start_gateway: StartGateway,
    upstream_status: int,
    upstream_body: bytes,
    status: int,
    message: str,
) -> None:
    fake = await FakeReplica(status=upstream_status, body=upstream_body).start()
    try:
        fake_backend = backend("kserve", fake.url, retries={"attempts": 1})
        m = model(versions("fake", "1", inputs=[INPUT0]))
        gateway = await start_gateway(routes_yaml({"fake": fake_backend}, {"m": m}))
        response = await gateway.client.post("/v2/models/m/infer", json=V2)
        assert response.status_code == status
        assert message in error_of(response)[1]
    finally:
        await fake.stop()


@pytest.mark.parametrize(
    ("weights", "version"), [("{'1': 100, '2': 0}", "1"), ("{'1': 0, '2': 100}", "2")]
)
async def test_traffic_weights_choose_the_version(
    start_gateway: StartGateway, demo_backend: str, weights: str, version: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend, traffic=yaml.safe_load(weights)))
    for _ in range(5):
        response = await gateway.client.post("/v2/models/linear/infer", json=V2)
        assert response.json()["model_version"] == version


async def test_metadata_status_and_readiness(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    meta = (await gateway.client.get("/v2/models/linear")).json()
    assert meta["name"] == "linear"
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}]
    status = (await gateway.client.get("/v1/models/linear")).json()
    assert [s["version"] for s in status["model_version_status"]] == ["2", "1"]
    assert {s["state"] for s in status["model_version_status"]} == {"AVAILABLE"}
    ready = await gateway.client.get("/v2/models/linear/versions/2/ready")
    assert ready.json() == {"name": "linear", "ready": True}
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    assert (await gateway.client.get("/readyz")).json()["status"] == "ready"


async def test_readiness_of_a_model_whose_server_is_down(start_gateway: StartGateway) -> None:
    routes = demo_routes("http://127.0.0.1:9")
    gateway = await start_gateway(routes)
    response = await gateway.client.get("/v2/models/linear/ready")
    assert response.status_code == 503
    assert error_of(response)[0] == "model_not_ready"
    infer = await gateway.client.post("/v2/models/linear/infer", json=V2)
    assert infer.status_code == 503
    assert error_of(infer)[0] == "no_healthy_replica"


async def test_admin_api_needs_its_token(start_gateway: StartGateway, demo_backend: str) -> None:
    closed = await start_gateway(demo_routes(demo_backend))
    assert (await closed.client.get("/admin/config")).status_code == 403
    gateway = await start_gateway(demo_routes(demo_backend), admin_token="s3cret-token")
    assert (await gateway.client.get("/admin/config")).status_code == 401
    wrong = await gateway.client.get("/admin/config", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "s3cret" not in wrong.text
    ok = await gateway.client.get("/admin/config", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert ok.json()["backends"]["demo"]["kind"] == "triton"
