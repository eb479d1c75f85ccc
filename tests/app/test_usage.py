"""``GET /admin/usage`` on a running gateway (memory store and real Redis alike): what calls
count (HTTP, gRPC, an async job's submit and run), the ``by`` views, the model filter, CSV by
``format`` or ``Accept``, quota consumption against the plan, the query checked, and admin
credentials required. The counts reach the
store by the recorder's write-behind (a short ``usage_flush_seconds``), waited for by polling.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from typing import Any

import grpc
import httpx
import pytest

from gateway.codecs import v2_proto
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    error_of,
    eventually,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio
IDENTITY = {"Accept-Encoding": "identity"}  # bytes_out is what was sent: keep it uncompressed


def routes(url: str) -> str:
    """Model ``linear`` (versions 1 and 2, cached per tenant) on a fake; plan ``small`` with a
    quota of 3 a day; API keys."""
    linear = model(
        versions("fake", "1", "2", inputs=[INPUT0]),
        default="1",
        deterministic=True,
        cache={"ttl": "60s"},
    )
    return routes_yaml(
        {"fake": backend("kserve", url)},
        {"linear": linear},
        plans={"small": {"quota": ["3/day"]}, "open": {}},
        auth={"required": False},
    )


async def start(
    start_gateway: StartGateway, url: str, store_settings: dict[str, Any]
) -> RunningGateway:
    return await start_gateway(
        routes(url),
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
        usage_flush_seconds=0.05,
        **store_settings,
    )


async def tenant_key(
    gateway: RunningGateway, plan: str, scopes: tuple[str, ...] = ("*",)
) -> tuple[str, str]:
    name = "t-" + uuid.uuid4().hex[:8]
    created = await gateway.client.post(
        "/admin/tenants", json={"name": name, "plan": plan}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    made = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": list(scopes)}, headers=ADMIN
    )
    return name, str(made.json()["key"])


async def infer(
    gateway: RunningGateway, key: str | None, version: str, value: float = 1.0
) -> httpx.Response:
    body = {"inputs": [{**V2["inputs"][0], "data": [value, 2, 3, 4]}]}
    headers = {**IDENTITY, **({"X-API-Key": key} if key else {})}
    return await gateway.client.post(
        f"/v2/models/linear/versions/{version}/infer", json=body, headers=headers
    )


async def usage(gateway: RunningGateway, **query: str) -> dict[str, Any]:
    response = await gateway.client.get("/admin/usage", params=query, headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def settled(gateway: RunningGateway, tenant: str, requests: int) -> dict[str, Any]:
    """The report once ``tenant``'s requests all reached the store (polled, bounded)."""
    found: dict[str, Any] = {}

    async def written() -> bool:
        nonlocal found
        found = await usage(gateway, tenant=tenant, by="version")
        return sum(int(r["requests"]) for r in found["rows"]) == requests

    await eventually(written, 10)
    return found


async def test_calls_are_counted_per_tenant_model_and_version(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, backend.url, store_settings)
    tenant, key = await tenant_key(gateway, "small")
    sent = [await infer(gateway, key, "1") for _ in range(3)]  # a miss, then two hits
    sent.append(await infer(gateway, key, "2"))  # the quota (3 a day) is spent: 429
    assert [r.status_code for r in sent] == [200, 200, 200, 429]
    assert ["hit" in r.headers.get("cache-status", "") for r in sent] == [0, 1, 1, 0]
    before = time.time()
    report = await settled(gateway, tenant, 4)
    sizes = [int(r.request.headers["content-length"]) for r in sent]
    assert report["by"] == "version"
    assert report["rows"] == [
        {
            "tenant": tenant,
            "model": "linear",
            "version": "1",
            "requests": 3,
            "errors_4xx": 0,
            "errors_5xx": 0,
            "cache_hits": 2,
            "rate_limited": 0,
            "bytes_in": sum(sizes[:3]),
            "bytes_out": sum(len(r.content) for r in sent[:3]),
        },
        {
            "tenant": tenant,
            "model": "linear",
            "version": "2",
            "requests": 1,
            "errors_4xx": 1,
            "errors_5xx": 0,
            "cache_hits": 0,
            "rate_limited": 1,
            "bytes_in": sizes[3],
            "bytes_out": len(sent[3].content),
        },
    ]
    assert report["quota"] == [
        {
            "tenant": tenant,
            "plan": "small",
            "name": "quota-day",
            "limit": 3,
            "window": 86400,
            "used": 3,
            "remaining": 0,
            "resets_in": report["quota"][0]["resets_in"],
        }
    ]
    assert 0 < report["quota"][0]["resets_in"] <= 86400
    assert report["to"] >= before  # the current minute is in: to rounded up
    assert report["to"] - report["from"] >= 86400
    by_model = await usage(gateway, tenant=tenant)
    assert [(r["model"], r["requests"], r["cache_hits"]) for r in by_model["rows"]] == [
        ("linear", 4, 2)
    ]
    assert "version" not in by_model["rows"][0]
    by_day = await usage(gateway, tenant=tenant, by="day")
    today = time.strftime("%Y-%m-%d", time.gmtime(before))
    assert [(r["day"], r["requests"]) for r in by_day["rows"]] == [(today, 4)]
    assert (await usage(gateway, tenant=tenant, model="other"))["rows"] == []


async def test_anonymous_calls_count_under_the_empty_tenant(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, backend.url, store_settings)
    answered = await infer(gateway, None, "2", 5.0)
    refused = await infer(gateway, "gk_0000000000000000_" + "x" * 43, "1")
    assert (answered.status_code, refused.status_code) == (200, 401)

    async def written() -> bool:
        rows = (await usage(gateway, by="version"))["rows"]
        return sum(int(r["requests"]) for r in rows if r["tenant"] == "") == 2

    await eventually(written, 10)
    rows = [r for r in (await usage(gateway, by="version"))["rows"] if r["tenant"] == ""]
    assert [(r["version"], r["requests"], r["errors_4xx"]) for r in rows] == [
        ("", 1, 1),  # refused before a version was chosen
        ("2", 1, 0),
    ]


async def test_csv_by_format_or_accept(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, backend.url, store_settings)
    tenant, key = await tenant_key(gateway, "open")
    first = await infer(gateway, key, "1")
    second = await infer(gateway, key, "1", 9.0)
    await settled(gateway, tenant, 2)
    by_format = await gateway.client.get(
        "/admin/usage", params={"tenant": tenant, "format": "csv", "by": "version"}, headers=ADMIN
    )
    by_accept = await gateway.client.get(
        "/admin/usage",
        params={"tenant": tenant, "by": "version"},
        headers={**ADMIN, "Accept": "text/csv"},
    )
    for response in (by_format, by_accept):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(response.text)))
        assert lines == [
            ["tenant", "model", "version", "requests", "errors_4xx", "errors_5xx",
             "cache_hits", "rate_limited", "bytes_in", "bytes_out"],
            [tenant, "linear", "1", "2", "0", "0", "0", "0",
             str(int(first.request.headers["content-length"]) * 2),
             str(len(first.content) + len(second.content))],
        ]  # fmt: skip
    as_json = await gateway.client.get(
        "/admin/usage",
        params={"tenant": tenant, "format": "json"},
        headers={**ADMIN, "Accept": "text/csv"},
    )
    assert as_json.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"by": "week"}, "by must be one of model, version, day"),
        ({"format": "xml"}, "format must be json or csv"),
        ({"from": "yesterday"}, "from must be unix seconds or an ISO 8601 time"),
        ({"to": "-1"}, "to must be unix seconds"),
        ({"from": "1767225600", "to": "1767225600"}, "from must be before to"),
        ({"from": "2020-01-01", "to": "2022-01-01"}, "the range is at most 400 days"),
    ],
)
async def test_a_bad_query_is_a_400_naming_it(
    start_gateway: StartGateway, backend: FakeReplica, query: dict[str, str], words: str
) -> None:
    gateway = await start(start_gateway, backend.url, {})
    response = await gateway.client.get("/admin/usage", params=query, headers=ADMIN)
    assert response.status_code == 400, response.text
    code, message = error_of(response)
    assert code == "bad_request"
    assert words in message


async def test_admin_credentials_are_required(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    gateway = await start(start_gateway, backend.url, {})
    response = await gateway.client.get("/admin/usage")
    assert response.status_code == 401
    _, key = await tenant_key(gateway, "open", ("predict:*",))  # no admin scope
    response = await gateway.client.get("/admin/usage", headers={"X-API-Key": key})
    assert response.status_code == 403


async def test_grpc_calls_count_their_messages_bytes(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    """A gRPC call's bytes are its messages' serialized sizes: the request as the client
    serialized it, the answer as it came over the wire."""
    port = free_port()
    gateway = await start_gateway(
        routes(backend.url),
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
        usage_flush_seconds=0.05,
        grpc_port=port,
    )
    tenant, key = await tenant_key(gateway, "open")
    pb = v2_proto.messages()
    request = pb.ModelInferRequest(model_name="linear", model_version="2")
    tensor = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 4])
    tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        infer: Any = channel.unary_unary(
            f"/{v2_proto.SERVICE}/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=None,  # the answer's bytes as they came
        )
        answer = await infer(request, metadata=(("x-api-key", key),))
    assert pb.ModelInferResponse.FromString(answer).outputs
    report = await settled(gateway, tenant, 1)
    assert [
        (r["version"], r["requests"], r["bytes_in"], r["bytes_out"]) for r in report["rows"]
    ] == [("2", 1, len(request.SerializeToString()), len(answer))]


async def test_an_async_job_counts_its_submit_and_its_run(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, backend.url, store_settings)
    tenant, key = await tenant_key(gateway, "open")
    headers = {**IDENTITY, "X-API-Key": key, "Prefer": "respond-async"}
    accepted = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=headers)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]

    async def finished() -> bool:
        shown = await gateway.client.get(f"/jobs/{job_id}", headers={"X-API-Key": key})
        return bool(shown.json()["status"] == "succeeded")

    await eventually(finished, 10)
    report = await settled(gateway, tenant, 2)  # polling /jobs/{id} is not a call
    assert [(r["version"], r["requests"]) for r in report["rows"]] == [
        ("", 1),  # the submit: answered 202 before a version is chosen
        ("1", 1),  # the run
    ]
