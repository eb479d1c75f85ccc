"""One structured access line per request: ids, caller, model, status, bytes, times; no secret."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from gateway.telemetry.logs import JSONFormatter
from tests.app.test_metrics import Samples, scrape, value
from tests.app.test_tracing import routes, undeclared
from tests.conftest import StartGateway
from tests.fakes import REPLY, FakeReplica, dead_url, forwarded
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


def lines_of(access: Lines, path: str) -> list[dict[str, object]]:
    return [line for line in map(json.loads, access.lines) if line["path"] == path]


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.mark.anyio
async def test_a_first_call_that_fetches_the_metadata_is_not_a_retry(
    start_gateway: StartGateway, backend: FakeReplica, access: Lines
) -> None:
    gateway = await start_gateway(undeclared(backend.url))
    access.attach()
    response = await gateway.client.post("/v2/models/m0/infer", json=V2)
    assert response.status_code == 200
    assert forwarded(backend) == ["/v2/models/m0", "/v2/models/m0/infer"]
    samples = await scrape(gateway.client)
    (line,) = lines_of(access, "/v2/models/m0/infer")
    assert line["retries"] == 0
    assert value(samples, "gateway_backend_retries_total", backend="fake") == 0
    assert value(samples, "gateway_backend_attempts_total", outcome="ok") == 2


@pytest.mark.anyio
async def test_each_line_says_the_retries_of_its_own_call(
    start_gateway: StartGateway, access: Lines
) -> None:
    """Each model's first call makes two pool requests (metadata, infer); a request whose
    first try goes to the dead replica is retried on the live one, once."""
    live = await FakeReplica(body=REPLY).start()
    try:
        gateway = await start_gateway(undeclared(dead_url(), live.url, models=40))
        access.attach()
        retried = 0
        # P2C takes the dead replica first half the time: calls until one was retried
        # (bounded: 40 calls without one is a 2^-80 chance)
        for i in range(40):
            before = await scrape(gateway.client)
            path = f"/v2/models/m{i}/infer"
            assert (await gateway.client.post(path, json=V2)).status_code == 200
            after = await scrape(gateway.client)
            (line,) = lines_of(access, path)
            failed = moved(before, after, "gateway_backend_attempts_total", outcome="retryable")
            assert line["retries"] == failed
            assert moved(before, after, "gateway_backend_retries_total", backend="fake") == failed
            assert moved(before, after, "gateway_backend_attempts_total", outcome="ok") == 2
            retried += int(failed)
            if retried:
                break
    finally:
        await live.stop()
    assert retried in (1, 2)  # the metadata fetch's, the infer's, or both
