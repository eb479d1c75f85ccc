"""The rate limits' Redis SIGKILLed under load, in each failure mode: ``fail_open`` serves every
request, ``fail_closed`` refuses each with the protocol's 503 (never a 500, never a hang); once
a new redis-server is up on the same port, service is back to normal. The Redis here is a
throwaway server of the test's own, never the shared one."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis

from tests.fakes import FakeReplica
from tests.redis_plugin import StartRedis
from tests.reliability.load import hammer, report
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    error_of,
    eventually,
    gateway_process,
    model,
    routes_yaml,
    versions,
)

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

CLIENTS, SECONDS = 16, 6.0  # the load
KILL_AT, RESTART_AT = 1.5, 3.5  # seconds into it
INFER = "/v2/models/linear/infer"
# A plan no caller here reaches: a refusal can only come from the store's failure.
PLAN = {"rate": "100000/s", "burst": 100000}


def limited_routes(url: str, mode: str) -> str:
    return routes_yaml(
        {"fake": backend("kserve", url)},
        {"linear": model(versions("fake", "1", inputs=[INPUT0]))},
        plans={"roomy": PLAN},
        rate_limits={"failure_mode": mode},
        auth={},
    )


async def api_key(base: str) -> str:
    """A new tenant on plan ``roomy`` and an API key of it."""
    name = "t-" + uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=ADMIN) as client:
        created = await client.post("/admin/tenants", json={"name": name, "plan": "roomy"})
        assert created.status_code == 201, created.text
        made = await client.post(f"/admin/tenants/{name}/keys", json={"scopes": ["*"]})
        assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


async def store_failures(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    pattern = r"^gateway_ratelimit_store_failures_total\{[^}]*\} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
async def test_redis_killed_under_load_follows_the_failure_mode_and_recovers(
    tmp_path: Path, backend: FakeReplica, start_redis: StartRedis, mode: str
) -> None:
    redis = start_redis()
    env = {
        "GATEWAY_REDIS_URL": redis.url,
        "GATEWAY_REDIS_PREFIX": f"gwtest:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_SECRET": "secret-" + uuid.uuid4().hex,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_LEVEL": "error",
    }
    async with gateway_process(tmp_path, limited_routes(backend.url, mode), env) as gateway:
        key = {"X-API-Key": await api_key(gateway.url)}
        # Written to disk, as a Redis with persistence would have it: the restarted server
        # loads the tenant and its key (the limits' buckets are in it too, and refill).
        saver = aredis.Redis.from_url(redis.url)
        try:
            await saver.save()
        finally:
            await saver.aclose()
        client = httpx.AsyncClient(base_url=gateway.url, timeout=5, headers=key)
        marks: dict[str, float] = {}
        probes: list[httpx.Response] = []  # one request of ours while Redis is down

        async def outage() -> None:
            await asyncio.sleep(KILL_AT)
            redis.process.kill()  # SIGKILL, by PID
            await asyncio.to_thread(redis.process.wait, 10)
            marks["killed"] = time.monotonic()
            await asyncio.sleep(0.3)
            probes.append(await client.post(INFER, json=V2))
            await asyncio.sleep(RESTART_AT - KILL_AT - 0.3)
            marks["restarting"] = time.monotonic()
            await asyncio.to_thread(start_redis, port=redis.port)  # waits for PING, bounded

        try:
            load = await hammer(
                gateway.url + INFER, SECONDS, CLIENTS, key, outage, request_timeout=5
            )

            # Back to normal: within a bound, Redis decides again and 100 requests in a row
            # are served without a single store failure.
            async def decided_by_redis() -> bool:
                before = await store_failures(client)
                answers = [await client.post(INFER, json=V2) for _ in range(10)]
                fine = all(a.status_code == 200 for a in answers)
                return fine and await store_failures(client) == before

            await eventually(decided_by_redis, 15)
            before = await store_failures(client)
            after = [(await client.post(INFER, json=V2)).status_code for _ in range(100)]
            failures_after = await store_failures(client) - before
        finally:
            await client.aclose()
        alive = gateway.process.poll() is None

    statuses = load.statuses()
    # Sent after the kill and answered before the new server started: Redis was down for all
    # of it. (One sent just before the restart may be decided by the new server.)
    down = [o for o in load.sent_between(marks["killed"]) if o.done < marks["restarting"]]
    (probe,) = probes
    report(
        f"Redis SIGKILLed, {mode}",
        {
            "requests": len(load.outcomes),
            "statuses": statuses,
            "answered_while_down": len(down),
            "statuses_while_down": {s: sum(1 for o in down if o.status == s) for s in {200, 503}},
            "after_restart": {s: after.count(s) for s in set(after)},
        },
    )
    assert alive
    assert len(down) > 50  # the load went on through the outage
    assert 0 not in statuses  # every request answered within its timeout: no hang, no reset
    if mode == "fail_open":
        assert statuses == {200: len(load.outcomes)}
        assert probe.status_code == 200
    else:
        assert set(statuses) <= {200, 503}, statuses
        assert all(o.status == 503 for o in down)
        assert {o.code for o in load.outcomes if o.status == 503} == {"limits_unavailable"}
        assert probe.status_code == 503
        assert error_of(probe)[0] == "limits_unavailable"  # the v2 protocol's error shape
    assert after == [200] * 100
    assert failures_after == 0
