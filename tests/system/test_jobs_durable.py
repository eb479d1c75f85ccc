"""Durable jobs, proven against real components: ``gateway serve`` on a real Redis in front
of a real MLServer, SIGKILLed with 200 accepted jobs in flight, then started again: not one
job is lost, and every one ends ``succeeded`` with the answer a live call gives."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.plugin import ServerHandle
from tests.support import backend, gateway_process, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
JOBS = 200
FINISH_WITHIN = 120.0  # seconds for the restarted gateway to run what is left


def request(n: int) -> dict[str, Any]:
    row = [float(n), float(n % 7), 1.0, float(n % 3)]
    return {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": row}]}


async def test_no_job_is_lost_when_the_gateway_is_killed(
    tmp_path: Path, mlserver_server: ServerHandle, redis_url: str, redis_prefix: str
) -> None:
    # two runs at a time and a short visibility timeout: most jobs are still queued at the
    # kill, a few running (their claims die with the process and are taken over)
    jobs = {"concurrency": 2, "visibility_timeout": "2s", "max_queued_per_tenant": 1000}
    routes = routes_yaml(
        {"mls": backend("kserve", mlserver_server.url)},
        {"linear": model(versions("mls", "1", name="linear", version="1"))},
        jobs=jobs,
    )
    env = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": redis_prefix,
        "GATEWAY_SECRET": "s-" + uuid.uuid4().hex,
        "GATEWAY_LOG_LEVEL": "warning",
    }
    ids: dict[str, int] = {}
    async with gateway_process(tmp_path, routes, env) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            for n in range(JOBS):
                accepted = await client.post(
                    "/v2/models/linear/infer",
                    json=request(n),
                    headers={"Prefer": "respond-async"},
                )
                assert accepted.status_code == 202, accepted.text
                ids[accepted.json()["id"]] = n
            page = (await client.get("/jobs?limit=1000")).json()["jobs"]
        assert len(page) == JOBS
        unfinished = [j for j in page if j["status"] != "succeeded"]
        gateway.process.kill()  # SIGKILL: no drain, no put-back
        gateway.process.wait(10)
    assert unfinished, "every job finished before the kill: nothing was in flight"

    async with (
        gateway_process(tmp_path, routes, env) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        async with asyncio.timeout(FINISH_WITHIN):
            while True:
                page = (await client.get("/jobs?limit=1000")).json()["jobs"]
                if all(j["status"] in ("succeeded", "failed") for j in page):
                    break
                await asyncio.sleep(0.25)
        assert {j["id"] for j in page} == set(ids)  # 0 jobs lost
        assert {j["status"] for j in page} == {"succeeded"}
        for job_id, n in ids.items():
            shown = (await client.get(f"/jobs/{job_id}")).json()
            live = await client.post("/v2/models/linear/infer", json=request(n))
            assert without_id(shown["result"]) == without_id(live.json()), (job_id, n)


def without_id(reply: dict[str, Any]) -> dict[str, Any]:
    """MLServer gives every reply an id of its own when the request has none."""
    return {k: v for k, v in reply.items() if k != "id"}
