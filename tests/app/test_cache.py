"""The response cache through the running app: hits on canonical bodies, Cache-Status, client
directives, tenant and version isolation, stale-if-error, stampedes, purge."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import REPLY, FakeReplica, forwarded
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


def routes(url: str, **cache: Any) -> str:
    """Model ``linear`` (versions "1" and "2") on a fake at ``url``, cached for 60 s unless
    ``cache`` says otherwise."""
    linear = model(
        versions("fake", "1", "2", inputs=[INPUT0]),
        deterministic=True,
        cache={"ttl": "60s", **cache},
        default="1",
    )
    return routes_yaml({"fake": backend("kserve", url)}, {"linear": linear}, auth={})


async def start(
    start_gateway: StartGateway, text: str, store_settings: dict[str, Any]
) -> RunningGateway:
    return await start_gateway(
        text, admin_token=ADMIN_TOKEN, secret="s-" + uuid.uuid4().hex, **store_settings
    )


async def key_for(gateway: RunningGateway, name: str | None = None) -> str:
    name = name or "t-" + uuid.uuid4().hex[:8]
    await gateway.client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    created = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": ["*"]}, headers=ADMIN
    )
    key: str = created.json()["key"]
    return key


async def infer(
    gateway: RunningGateway,
    key: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await gateway.client.post(
        "/v2/models/linear/infer",
        content=body or json.dumps(V2).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json", **(headers or {})},
    )


def status_of(response: httpx.Response) -> str:
    return response.headers["Cache-Status"]


async def test_miss_then_hit_on_a_canonically_equal_body(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, routes(backend.url), store_settings)
    key = await key_for(gateway)
    first = await infer(gateway, key)
    assert status_of(first) == "model-gateway; fwd=miss; stored"
    reordered = json.dumps(
        {"inputs": [{"data": [1, 2, 3, 4], "datatype": "FP32", "shape": [1, 4], "name": "INPUT0"}]},
        indent=3,
    ).encode()
    second = await infer(gateway, key, reordered)
    assert status_of(second).startswith("model-gateway; hit; ttl=")
    assert second.json() == first.json()
    assert second.headers["X-Model-Version"] == "1"
    assert len(forwarded(backend)) == 1
    # The key is the tensors: the same values written as floats hit too, and the request id
    # is not part of it (each caller gets its own id back); other values miss.
    floats = {"inputs": [{**V2["inputs"][0], "data": [1.0, 2.0, 3.0, 4.0]}], "id": "x"}
    third = await infer(gateway, key, json.dumps(floats).encode())
    assert status_of(third).startswith("model-gateway; hit; ttl=")
    assert third.json()["id"] == "x"
    assert third.json()["outputs"] == first.json()["outputs"]
    assert "id" not in second.json()
    other = {"inputs": [{**V2["inputs"][0], "data": [1, 2, 3, 5]}]}
    assert status_of(await infer(gateway, key, json.dumps(other).encode())) == (
        "model-gateway; fwd=miss; stored"
    )
    assert len(forwarded(backend)) == 2


async def test_client_directives(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, routes(backend.url), store_settings)
    key = await key_for(gateway)
    no_store = await infer(gateway, key, headers={"Cache-Control": "no-store"})
    assert status_of(no_store) == "model-gateway; fwd=request"
    assert status_of(await infer(gateway, key)) == "model-gateway; fwd=miss; stored"
    no_cache = await infer(gateway, key, headers={"Cache-Control": "no-cache"})
    assert status_of(no_cache) == "model-gateway; fwd=request; stored"
    assert status_of(await infer(gateway, key)).startswith("model-gateway; hit")
    assert len(forwarded(backend)) == 3


async def test_entries_never_cross_tenants_or_versions(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, routes(backend.url), store_settings)
    first, second = await key_for(gateway), await key_for(gateway)
    assert "fwd=miss" in status_of(await infer(gateway, first))
    assert "fwd=miss" in status_of(await infer(gateway, second))
    pinned = await infer(gateway, first, headers={"X-Model-Version": "2"})
    assert "fwd=miss" in status_of(pinned)
    assert pinned.headers["X-Model-Version"] == "2"
    assert len(forwarded(backend)) == 3  # three keys, three misses: nothing shared


async def test_a_shared_cache_serves_every_tenant(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, routes(backend.url, shared=True), store_settings)
    assert "fwd=miss" in status_of(await infer(gateway, await key_for(gateway)))
    assert "hit" in status_of(await infer(gateway, await key_for(gateway)))


async def test_a_stampede_makes_one_backend_call(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    backend.delay = 0.3
    gateway = await start(start_gateway, routes(backend.url), store_settings)
    key = await key_for(gateway)
    responses = await asyncio.gather(*(infer(gateway, key) for _ in range(50)))
    assert {r.status_code for r in responses} == {200}
    assert len(forwarded(backend)) == 1
    assert sum("collapsed" in status_of(r) for r in responses) == 49


async def test_stale_if_error_and_size_limit(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(
        start_gateway, routes(backend.url, ttl="1s", stale_if_error="60s"), store_settings
    )
    key = await key_for(gateway)
    fresh = await infer(gateway, key)
    await asyncio.sleep(1.1)
    backend.status, backend.body = 500, b"boom"
    stale = await infer(gateway, key)
    assert stale.status_code == 200
    assert stale.json() == fresh.json()
    assert status_of(stale) == ("model-gateway; fwd=stale; fwd-status=502; detail=stale-if-error")
    backend.status, backend.body = 200, REPLY
    small = await start(start_gateway, routes(backend.url, max_entry_bytes=10), store_settings)
    small_key = await key_for(small)
    first_small = await infer(small, small_key)
    assert first_small.status_code == 200, first_small.text
    assert status_of(first_small) == "model-gateway; fwd=miss"
    assert status_of(await infer(small, small_key)) == "model-gateway; fwd=miss"


async def test_purge_by_model_version_and_tenant(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, routes(backend.url), store_settings)
    name = "t-" + uuid.uuid4().hex[:8]
    key = await key_for(gateway, name)
    await infer(gateway, key)
    await infer(gateway, key, headers={"X-Model-Version": "2"})
    purged = await gateway.client.post(
        "/admin/cache/purge", json={"model": "linear", "version": "2"}, headers=ADMIN
    )
    assert purged.json()["purged"] == 1
    assert "hit" in status_of(await infer(gateway, key))
    assert "fwd=miss" in status_of(await infer(gateway, key, headers={"X-Model-Version": "2"}))
    purged = await gateway.client.post("/admin/cache/purge", json={"tenant": name}, headers=ADMIN)
    assert purged.json()["purged"] == 2
    assert "fwd=miss" in status_of(await infer(gateway, key))
