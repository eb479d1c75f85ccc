"""TF Serving's REST methods through the gateway: ``:classify`` and ``:regress`` reach a TF
Serving backend (the double, faithful to TF Serving's source) and come back exactly as it
answers; another backend kind gets a 400 naming the method; ``signature_name`` reaches the
server. Compared number for number with the double asked directly."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import StartGateway
from tests.doubles.plugin import TFServingHandle
from tests.support import backend, error_of, model, routes_yaml, versions

pytestmark = pytest.mark.anyio

EXAMPLES = {"examples": [{"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [0.5, 0.0, 0.0, 2.0]}]}


def routes(tfs: str, demo: str) -> str:
    return routes_yaml(
        {"tfs": backend("tfserving", tfs, timeout="5s"), "demo": backend("triton", demo)},
        {
            "linear": model(
                {v: {"backend": "tfs", "name": "linear", "version": v} for v in ("1", "2")},
                default="1",
            ),
            "v2only": model(versions("demo", "1", name="linear", version="1")),
        },
    )


def pinned(version: str, method: str) -> str:
    return f"/v1/models/linear/versions/{version}:{method}"


async def direct(tfs: TFServingHandle, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=tfs.url) as client:
        return await client.post(path, json=body)


@pytest.mark.parametrize("method", ["classify", "regress"])
@pytest.mark.parametrize("version", ["1", "2"])
async def test_classify_and_regress_come_back_as_tf_serving_answers(
    start_gateway: StartGateway,
    tfserving_server: TFServingHandle,
    demo_backend: str,
    method: str,
    version: str,
) -> None:
    gateway = await start_gateway(routes(tfserving_server.url, demo_backend))
    body = {"signature_name": f"{method}_x_to_y", **EXAMPLES}
    through = await gateway.client.post(pinned(version, method), json=body)
    expected = await direct(tfserving_server, pinned(version, method), body)
    assert through.status_code == expected.status_code == 200, through.text
    assert through.json() == expected.json()
    assert "results" in through.json()
    assert through.headers["X-Model-Version"] == version


async def test_tf_serving_errors_keep_their_text(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, demo_backend: str
) -> None:
    gateway = await start_gateway(routes(tfserving_server.url, demo_backend))
    body = {"signature_name": "classify_x_to_y"}  # no examples
    through = await gateway.client.post("/v1/models/linear:classify", json=body)
    expected = await direct(tfserving_server, "/v1/models/linear/versions/1:classify", body)
    assert through.status_code == expected.status_code == 400
    assert expected.json()["error"] in error_of(through)[1]


async def test_other_kinds_refuse_classify_and_regress_by_name(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, demo_backend: str
) -> None:
    gateway = await start_gateway(routes(tfserving_server.url, demo_backend))
    for method in ("classify", "regress"):
        response = await gateway.client.post(f"/v1/models/v2only:{method}", json=EXAMPLES)
        assert response.status_code == 400
        code, message = error_of(response)
        assert code == "unsupported_method"
        assert message.startswith(f"{method} is a TF Serving method")
        assert "triton backend" in message
    missing = await gateway.client.post("/v1/models/nope:classify", json=EXAMPLES)
    assert missing.status_code == 404
    wrong = await gateway.client.get("/v1/models/linear:classify")
    assert wrong.status_code == 405  # the method is known; GET is not


async def test_signature_name_reaches_the_server(
    start_gateway: StartGateway, tfserving_server: TFServingHandle, demo_backend: str
) -> None:
    gateway = await start_gateway(routes(tfserving_server.url, demo_backend))
    for body in (
        {"signature_name": "nope", "instances": [[1, 2, 3, 4]]},
        {"signature_name": "serving_default", "instances": [[1.0, 2.0, 3.0, 4.0]]},
    ):
        through = await gateway.client.post("/v1/models/linear:predict", json=body)
        expected = await direct(tfserving_server, "/v1/models/linear/versions/1:predict", body)
        assert through.status_code == expected.status_code, through.text
        if expected.status_code == 200:
            assert through.json() == expected.json()
        else:  # TF Serving's own words about the unknown signature
            assert expected.json()["error"] in error_of(through)[1]
