"""Rate limits through the running app: plans, quotas, per-key, model-wide, anonymous,
concurrency, headers and failure modes (memory store and real Redis alike)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, forwarded
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    error_of,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


def routes(
    url: str, plans: dict[str, Any], limits: dict[str, Any] | None = None, **sections: Any
) -> str:
    """Model ``linear`` (with its own ``limits``, if any) on a fake at ``url``, ``plans``, and
    ``auth: {}`` unless ``sections`` (``rate_limits``, ``auth``) say otherwise."""
    linear = model(versions("fake", "1", inputs=[INPUT0]), limits=limits)
    sections.setdefault("auth", {})
    return routes_yaml(
        {"fake": backend("kserve", url)}, {"linear": linear}, plans=plans, **sections
    )


async def start(
    start_gateway: StartGateway, text: str, store_settings: dict[str, Any], **settings: Any
) -> RunningGateway:
    return await start_gateway(
        text,
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
        **{**store_settings, **settings},
    )


async def tenant_key(gateway: RunningGateway, plan: str | None, *scopes: str) -> str:
    name = "t-" + uuid.uuid4().hex[:8]
    body: dict[str, Any] = {"name": name}
    if plan:
        body["plan"] = plan
    assert (
        await gateway.client.post("/admin/tenants", json=body, headers=ADMIN)
    ).status_code == 201
    created = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": list(scopes) or ["*"]}, headers=ADMIN
    )
    key: str = created.json()["key"]
    return key


async def call(gateway: RunningGateway, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return await gateway.client.post("/v2/models/linear/infer", json=V2, headers=headers)


async def test_a_plans_bucket_admits_the_burst_then_429(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(
        start_gateway, routes(backend.url, {"small": {"rate": "1/min", "burst": 5}}), store_settings
    )
    key = await tenant_key(gateway, "small")
    statuses = [(await call(gateway, key)).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert len(forwarded(backend)) == 5
    ok = await call(gateway, await tenant_key(gateway, "small"))
    assert ok.headers["RateLimit-Policy"] == '"rate";q=5;w=300'
    assert ok.headers["RateLimit"].startswith('"rate";r=4;t=')
    refused = await call(gateway, key)
    assert error_of(refused)[0] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit"].startswith('"rate";r=0;')


async def test_quotas_and_all_or_nothing(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    plans = {"quota": {"rate": "1/min", "burst": 10, "quota": ["3/day"]}}
    gateway = await start(start_gateway, routes(backend.url, plans), store_settings)
    key = await tenant_key(gateway, "quota")
    statuses = [(await call(gateway, key)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = await call(gateway, key)
    fields = dict(item.split(";", 1) for item in refused.headers["RateLimit"].split(", "))
    assert fields['"rate"'].startswith("r=7;")  # refused calls took nothing from the bucket
    assert fields['"quota-day"'].startswith("r=0;")
    assert "quota-day" in error_of(refused)[1]


async def test_per_key_and_model_wide_limits(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    per_key = {"rate": "1/min", "burst": 2}
    plans = {"keyed": {"rate": "100/s", "burst": 100, "per_key": per_key}}
    text = routes(backend.url, plans, limits={"rate": "1/min", "burst": 5})
    gateway = await start(start_gateway, text, store_settings)
    first, second = await tenant_key(gateway, "keyed"), await tenant_key(gateway, "keyed")
    assert [(await call(gateway, first)).status_code for _ in range(3)] == [200, 200, 429]
    assert [(await call(gateway, second)).status_code for _ in range(3)] == [200, 200, 429]
    third = await tenant_key(gateway, "keyed")
    assert (await call(gateway, third)).status_code == 200  # the model's 5th
    refused = await call(gateway, third)
    assert refused.status_code == 429  # the model's own limit: 5 for everyone together
    assert "(model)" in error_of(refused)[1]


async def test_anonymous_callers_are_limited_per_ip(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = routes(
        backend.url,
        {"none": {}},
        rate_limits={"anonymous": {"rate": "1/min", "burst": 2}},
        auth={"required": False},
    )
    gateway = await start(start_gateway, text, store_settings)
    assert [(await call(gateway, None)).status_code for _ in range(3)] == [200, 200, 429]
    assert (await call(gateway, await tenant_key(gateway, None))).status_code == 200


async def test_concurrency_limit_gives_back_pressure(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    backend.delay = 0.5
    gateway = await start(
        start_gateway, routes(backend.url, {"one": {"concurrency": 1}}), store_settings
    )
    key = await tenant_key(gateway, "one")
    first = asyncio.create_task(call(gateway, key))
    await asyncio.sleep(0.2)
    second = await call(gateway, key)
    assert second.status_code == 429
    assert (await first).status_code == 200
    assert (await call(gateway, key)).status_code == 200  # the slot was given back


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
async def test_a_dead_store_follows_the_declared_failure_mode(
    start_gateway: StartGateway, backend: FakeReplica, mode: str
) -> None:
    text = routes(
        backend.url,
        {"none": {}},
        rate_limits={"failure_mode": mode, "anonymous": {"rate": "1/min", "burst": 2}},
        auth={"required": False},
    )
    gateway = await start(start_gateway, text, {"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    statuses = [(await call(gateway, None)).status_code for _ in range(3)]
    if mode == "fail_open":
        assert statuses == [200, 200, 429]  # a local bucket, not unlimited
    else:
        assert statuses == [503] * 3
    metrics = (await gateway.client.get("/metrics")).text
    assert f'gateway_ratelimit_store_failures_total{{mode="{mode}"}} 3.0' in metrics
