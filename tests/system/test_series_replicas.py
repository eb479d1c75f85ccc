"""Proof, on two real `gateway serve` processes sharing one Redis, that ``GET /admin/series``
shows the fleet: traffic of known composition sent half to each replica (successes behind a
model server that takes 50 ms, malformed bodies, then the model server failing) reads back
from either replica as the summed counts, error rate and latency."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeReplica
from tests.support import ADMIN, INPUT0, V2, backend, model, routes_yaml, versions
from tests.system.test_limits_proof import gateway_env, replicas

pytestmark = pytest.mark.anyio
INFER = "/v2/models/linear/versions/{}/infer"
WAIT = 30.0  # bound on the wait for every replica's steps to be published
DELAY = 0.05  # the model server's time per request: no answer from it is faster


async def series(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(f"{url}/admin/series?model=linear&minutes=5", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_both_replicas_show_the_summed_traffic_of_the_fleet(
    tmp_path: Path, redis_url: str
) -> None:
    fake = await FakeReplica(body=b'{"outputs": []}', delay=DELAY).start()
    served = versions("b", "1", "2", inputs=[INPUT0])
    text = routes_yaml({"b": backend("kserve", fake.url)}, {"linear": model(served, default="1")})
    env = gateway_env(redis_url, GATEWAY_SERIES_STEP_SECONDS="1")
    try:
        async with replicas(tmp_path, text, env) as running, httpx.AsyncClient(timeout=10) as c:
            urls = [r.url for r in running]
            calls = [c.post(f"{url}{INFER.format(1)}", json=V2) for url in urls * 5]
            answers = await asyncio.gather(*calls)  # 10 successes of version 1, 5 per replica
            assert [r.status_code for r in answers] == [200] * 10
            for url in urls:  # a malformed body each: a 4xx of version 1
                assert (await c.post(f"{url}{INFER.format(1)}", content=b"{")).status_code == 400
            for _ in range(3):  # 3 successes of version 2 on the first replica
                assert (await c.post(f"{urls[0]}{INFER.format(2)}", json=V2)).status_code == 200
            fake.status = 500  # the model server fails from now on
            for url in urls * 2:  # 4 failures of version 1, 2 per replica
                assert (await c.post(f"{url}{INFER.format(1)}", json=V2)).status_code >= 500
            deadline = time.monotonic() + WAIT
            while True:
                views = [await series(c, url) for url in urls]
                totals = [{s["version"]: s["total"] for s in v["series"]} for v in views]
                if all(t.get("1", {}).get("requests") == 16 for t in totals):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"the fleet's series never showed 16 requests: {totals}")
                await asyncio.sleep(0.2)
    finally:
        await fake.stop()
    a, b = views
    assert a["replicas"] == b["replicas"] == 2
    assert totals[0] == totals[1]  # either replica answers the same fleet
    one, two = totals[0]["1"], totals[0]["2"]
    assert (one["requests"], one["errors_5xx"], one["errors_4xx"]) == (16, 4, 2)
    assert one["error_rate"] == 4 / 16
    assert (two["requests"], two["errors_5xx"], two["errors_4xx"], two["error_rate"]) == (
        3,
        0,
        0,
        0.0,
    )
    # 10 of version 1's 16 answers waited 50 ms on the model server: its median did too
    assert one["p50_ms"] >= DELAY * 1000
    assert two["p50_ms"] >= DELAY * 1000
    assert set(totals[0]) == {"1", "2"}  # nothing answered before a version was chosen
    for view in views:  # the points add up to the totals, aligned to t
        for line in view["series"]:
            assert len(line["t"]) == len(line["requests"]) == len(line["p99_ms"]) == 300
            assert sum(line["requests"]) == line["total"]["requests"]
            assert sum(line["errors_5xx"]) == line["total"]["errors_5xx"]
