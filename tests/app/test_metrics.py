"""/metrics after known traffic: requests, latency, auth, limits, cache, backends, workers."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartGateway
from tests.fakes import REPLY, FakeReplica, dead_url
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


def routes(*urls: str, **sections: Any) -> str:
    """Models ``linear`` (cached) and ``open`` on fakes at ``urls``, ejected at the first
    failure; ``sections`` add to the table."""
    on_fake = versions("fake", "1", inputs=[INPUT0])
    linear = model(on_fake, deterministic=True, cache={"ttl": "60s"}, default="1")
    return routes_yaml(
        {"fake": backend("kserve", *urls, outlier={"consecutive_failures": 1})},
        {"linear": linear, "open": model(on_fake, default="1")},
        **sections,
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


async def test_requests_latency_cache_auth_and_limits_are_counted(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    text = routes(
        backend.url, auth={"required": True}, plans={"small": {"rate": "1/min", "burst": 3}}
    )
    gateway = await start_gateway(text, admin_token=ADMIN_TOKEN, secret="s-" + uuid.uuid4().hex)
    client = gateway.client
    created = await client.post(
        "/admin/tenants", json={"name": "acme", "plan": "small"}, headers=ADMIN
    )
    assert created.status_code == 201
    key = (
        await client.post("/admin/tenants/acme/keys", json={"scopes": ["*"]}, headers=ADMIN)
    ).json()["key"]
    headers = {"X-API-Key": key}
    statuses = [
        (await client.post("/v2/models/linear/infer", json=V2, headers=headers)).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]  # a miss, two hits, then the bucket is empty
    assert (await client.post("/v2/models/linear/infer", json=V2)).status_code == 401
    bad = {"X-API-Key": "gw_nope"}
    assert (await client.post("/v2/models/open/infer", json=V2, headers=bad)).status_code == 401
    assert (await client.post("/v2/models/nope/infer", json=V2, headers=headers)).status_code in (
        404,
        429,
    )
    await client.get("/healthz")

    samples = await scrape(client)
    ok = {"model": "linear", "version": "1", "status_class": "2xx"}
    assert value(samples, "gateway_requests_total", **ok, backend="fake") == 1  # the miss
    assert value(samples, "gateway_requests_total", **ok, backend="") == 2  # the hits
    assert value(samples, "gateway_requests_total", model="linear", status_class="4xx") == 2
    assert value(samples, "gateway_requests_total", model="open", status_class="4xx") == 1
    assert value(samples, "gateway_requests_total", model="nope") == 0  # never a label
    assert value(samples, "gateway_request_duration_seconds_count", model="linear") == 5
    assert value(samples, "gateway_upstream_duration_seconds_count", model="linear") == 1
    assert value(samples, "gateway_overhead_duration_seconds_count", model="linear") == 5
    assert value(samples, "gateway_cache_requests_total", result="miss") == 1
    assert value(samples, "gateway_cache_requests_total", result="hit") == 2
    assert value(samples, "gateway_ratelimit_decisions_total", decision="allowed") == 3
    assert value(samples, "gateway_ratelimit_decisions_total", decision="rejected") >= 1
    reasons = ("missing_credentials", "invalid_credentials")
    for reason in reasons:
        assert value(samples, "gateway_auth_failures_total", reason=reason) == 1
    assert value(samples, "gateway_backend_attempts_total", outcome="ok") == 1
    # health probes and scrapes are not counted; the admin calls are (model "")
    assert value(samples, "gateway_requests_total", model="", status_class="2xx") == 2
    text = (await client.get("/metrics")).text
    assert key not in text
    assert ADMIN_TOKEN not in text


async def test_retries_ejections_and_replica_health(start_gateway: StartGateway) -> None:
    live = await FakeReplica(body=REPLY).start()
    try:
        gateway = await start_gateway(routes(dead_url(), live.url))
        sent = 0
        # P2C takes the dead replica first half the time while it is not ejected: requests
        # until it has been tried (bounded: 40 misses in a row is a 2^-40 chance), 6 at least
        for sent in range(1, 41):
            response = await gateway.client.post("/v2/models/open/infer", json=V2)
            assert response.status_code == 200
            samples = await scrape(gateway.client)
            tried = value(samples, "gateway_backend_retries_total", backend="fake") >= 1
            if sent >= 6 and tried:
                break
    finally:
        await live.stop()
    retries = value(samples, "gateway_backend_retries_total", backend="fake")
    assert retries >= 1  # the dead replica was tried once at least, then ejected
    assert value(samples, "gateway_backend_attempts_total", outcome="retryable") == retries
    assert value(samples, "gateway_backend_attempts_total", outcome="ok") == sent
    assert value(samples, "gateway_backend_ejections_total", backend="fake") >= 1
    up = {ls: v for (n, ls), v in samples.items() if n == "gateway_backend_replica_up"}
    assert 0.0 in up.values()
    assert value(samples, "gateway_requests_total", model="open", status_class="2xx") == sent
    assert value(samples, "gateway_backend_in_flight", backend="fake") == 0


async def test_two_workers_count_every_request_whichever_answers(
    tmp_path: Path, backend: FakeReplica
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(routes(backend.url), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))}
    gateway = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-watch",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            total = 30
            for _ in range(total):
                # a new connection each time, so both workers answer some of them
                async with httpx.AsyncClient(base_url=client.base_url, timeout=10) as one:
                    assert (await one.post("/v2/models/open/infer", json=V2)).status_code == 200
            seen = set()
            for _ in range(6):
                async with httpx.AsyncClient(base_url=client.base_url, timeout=10) as one:
                    samples = await scrape(one)
                counted = value(samples, "gateway_requests_total", model="open")
                assert counted == total
                seen.add(value(samples, "gateway_config_last_reload_successful"))
            assert seen == {1.0}
    finally:
        gateway.terminate()
        await asyncio.wait_for(gateway.wait(), 30)
