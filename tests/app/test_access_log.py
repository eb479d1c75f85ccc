"""One structured access line per request: ids, caller, model, status, bytes, times; no secret."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from gateway.telemetry.logs import JSONFormatter
from tests.app.test_tracing import routes
from tests.conftest import StartGateway
from tests.fakes import FakeReplica
from tests.support import ADMIN, ADMIN_TOKEN, V2


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JSONFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        """After the gateway starts (its dictConfig resets the handlers of child loggers)."""
        logger = logging.getLogger("gateway.access")
        logger.addHandler(self)
        logger.setLevel(logging.INFO)  # the gateways of the tests log at warning


@pytest.fixture
def access() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("gateway.access")
    yield handler
    logger.setLevel(logging.NOTSET)
    logger.removeHandler(handler)


@pytest.mark.anyio
async def test_one_json_line_per_request_without_secrets(
    start_gateway: StartGateway, backend: FakeReplica, access: Lines
) -> None:
    gateway = await start_gateway(
        routes(backend.url),
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
    )
    access.attach()
    client = gateway.client
    await client.post("/admin/tenants", json={"name": "acme"}, headers=ADMIN)
    key = (
        await client.post("/admin/tenants/acme/keys", json={"scopes": ["*"]}, headers=ADMIN)
    ).json()["key"]
    await client.get("/healthz")
    access.lines.clear()
    headers = {"X-API-Key": key, "X-Request-ID": "req-1"}
    first = await client.post("/v2/models/linear/infer?api_key=" + key, json=V2, headers=headers)
    second = await client.post("/v2/models/linear/infer", json=V2, headers={"X-API-Key": key})
    refused = await client.post("/v2/models/linear/infer", json=V2, headers={"X-API-Key": "x"})
    assert (first.status_code, second.status_code, refused.status_code) == (200, 200, 401)
    assert len(access.lines) == 3
    for line in access.lines:
        assert key not in line
        assert ADMIN_TOKEN not in line
    one, two, three = (json.loads(line) for line in access.lines)
    assert one["logger"] == "gateway.access"
    assert one["message"] == "access"
    assert one["request_id"] == "req-1"
    assert one["path"] == "/v2/models/linear/infer"  # never the query string
    assert (one["tenant"], one["model"], one["version"]) == ("acme", "linear", "1")
    assert (one["status"], one["bytes"], one["cache"]) == (200, len(first.content), "miss")
    assert one["backend"] == "fake"
    assert one["retries"] == 0
    assert one["trace_id"] is None  # tracing off
    assert one["total_ms"] >= one["upstream_ms"] > 0
    assert one["gateway_ms"] == pytest.approx(one["total_ms"] - one["upstream_ms"], abs=0.01)
    assert (two["cache"], two["upstream_ms"], two["backend"]) == ("hit", 0, None)
    assert (three["status"], three["tenant"]) == (401, None)


@pytest.mark.anyio
async def test_the_access_log_can_be_turned_off(
    start_gateway: StartGateway, backend: FakeReplica, access: Lines
) -> None:
    gateway = await start_gateway(
        routes(backend.url, auth=False),
        access_log=False,
    )
    access.attach()
    assert (await gateway.client.post("/v2/models/linear/infer", json=V2)).status_code == 200
    assert access.lines == []
