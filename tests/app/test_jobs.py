"""Async jobs through the running app: submit (202), follow, list, cancel, idempotency, the
tenant's limits, tenant isolation, and how a run ends (memory store and real Redis alike)."""

from __future__ import annotations

import asyncio
import gzip
import struct
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, forwarded
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    V2,
    backend,
    error_of,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio
ASYNC = {"Prefer": "respond-async"}
V1 = {"instances": [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]}
WAIT = 30.0


class Flaky(FakeReplica):
    """Ready, but answers the calls with ``status``."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/ready"):
            return web.Response(status=200)
        return await super()._handle(request)


def demo_table(url: str, jobs: dict[str, Any] | None = None, **sections: Any) -> str:
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    return routes_yaml(
        {"demo": backend("triton", url, timeout="5s")},
        {"linear": model(served, default="1")},
        jobs=jobs,
        **sections,
    )


def fake_table(url: str, jobs: dict[str, Any] | None = None, **sections: Any) -> str:
    linear = model(versions("fake", "1", inputs=[INPUT0]))
    fake = backend("kserve", url, retries={"attempts": 1})
    return routes_yaml({"fake": fake}, {"linear": linear}, jobs=jobs, **sections)


async def start(
    start_gateway: StartGateway, text: str, store_settings: dict[str, Any], **settings: Any
) -> RunningGateway:
    return await start_gateway(
        text,
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
        **{**store_settings, **settings},
    )


async def tenant_key(gateway: RunningGateway, plan: str | None = None) -> str:
    name = "t-" + uuid.uuid4().hex[:8]
    body: dict[str, Any] = {"name": name, **({"plan": plan} if plan else {})}
    assert (
        await gateway.client.post("/admin/tenants", json=body, headers=ADMIN)
    ).status_code == 201
    created = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": ["*"]}, headers=ADMIN
    )
    key: str = created.json()["key"]
    return key


async def submit(
    gateway: RunningGateway,
    path: str = "/v2/models/linear/infer",
    body: Any = V2,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await gateway.client.post(path, json=body, headers={**ASYNC, **(headers or {})})


async def done(
    gateway: RunningGateway, job_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            shown = await gateway.client.get(f"/jobs/{job_id}", headers=headers)
            assert shown.status_code == 200, shown.text
            job: dict[str, Any] = shown.json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            await asyncio.sleep(0.05)


def binary_v2(rows: list[list[float]]) -> tuple[bytes, int]:
    raw = b"".join(struct.pack("<4f", *row) for row in rows)
    tensor = {"name": "INPUT0", "shape": [len(rows), 4], "datatype": "FP32"}
    header = orjson.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]})
    return header + raw, len(header)


async def test_v2_and_v1_jobs_answer_what_a_live_call_answers(
    start_gateway: StartGateway, demo_backend: str, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, demo_table(demo_backend), store_settings)
    accepted = await submit(gateway, headers={"Prefer": 'wait=5, RESPOND-ASYNC; x="a,b"'})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert accepted.headers["Location"] == f"/jobs/{job['id']}"
    assert accepted.headers["Preference-Applied"] == "respond-async"
    assert (job["status"], job["model"]) == ("queued", "linear")
    assert isinstance(job["created_at"], float)
    finished = await done(gateway, job["id"])
    live = await gateway.client.post("/v2/models/linear/infer", json=V2)
    assert finished["status"] == "succeeded"
    assert finished["attempts"] == 1
    assert finished["result"] == live.json()
    assert finished["started_at"] <= finished["finished_at"]

    v1 = await submit(gateway, "/v1/models/linear/versions/2:predict", V1)
    assert v1.status_code == 202
    finished = await done(gateway, v1.json()["id"])
    live = await gateway.client.post("/v1/models/linear/versions/2:predict", json=V1)
    assert finished["result"] == live.json()
    assert finished["version"] == "2"

    body, length = binary_v2([[1, 2, 3, 4], [0, 1, 0, 1]])
    headers = {
        **ASYNC,
        "Inference-Header-Content-Length": str(length),
        "Content-Type": "application/octet-stream",
    }
    zipped = await gateway.client.post(
        "/v2/models/linear/infer",
        content=gzip.compress(body),
        headers={**headers, "Content-Encoding": "gzip"},
    )
    assert zipped.status_code == 202, zipped.text
    finished = await done(gateway, zipped.json()["id"])
    live = await gateway.client.post(
        "/v2/models/linear/infer",
        content=body,
        headers={k: v for k, v in headers.items() if k != "Prefer"},
    )
    assert finished["result"] == live.json()
    metrics = (await gateway.client.get("/metrics")).text
    assert 'gateway_jobs_finished_total{model="linear",outcome="succeeded"} 3.0' in metrics
    assert 'gateway_job_runs_total{model="linear",result="succeeded"} 3.0' in metrics


async def test_submit_checks_what_a_live_call_checks(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = fake_table(backend.url, auth={})
    gateway = await start(start_gateway, text, store_settings, job_workers=False)
    assert (await submit(gateway)).status_code == 401
    key = {"X-API-Key": await tenant_key(gateway)}
    unknown = await submit(gateway, "/v2/models/nope/infer", headers=key)
    assert unknown.status_code == 404
    assert error_of(unknown)[0] == "model_not_found"
    assert "error" in unknown.json()
    assert isinstance(unknown.json()["error"], str)
    malformed = await gateway.client.post(
        "/v2/models/linear/infer", content=b"{nope", headers={**ASYNC, **key}
    )
    assert malformed.status_code == 400
    refused = await submit(gateway, headers={**key, "Callback-URL": "https://hooks.test/x"})
    assert refused.status_code == 400
    assert error_of(refused)[0] == "webhooks_unavailable"
    listed = await gateway.client.get("/jobs", headers=key)
    assert listed.json() == {"jobs": [], "next_cursor": None}
    assert forwarded(backend) == []


async def test_list_cancel_and_tenant_isolation(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = fake_table(backend.url, auth={})
    gateway = await start(start_gateway, text, store_settings, job_workers=False)
    mine, theirs = (
        {"X-API-Key": await tenant_key(gateway)},
        {"X-API-Key": await tenant_key(gateway)},
    )
    ids = []
    for _ in range(3):
        ids.append((await submit(gateway, headers=mine)).json()["id"])
        await asyncio.sleep(0.002)
    other = (await submit(gateway, headers=theirs)).json()["id"]

    page = (await gateway.client.get("/jobs?limit=2", headers=mine)).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = await gateway.client.get(f"/jobs?limit=2&cursor={page['next_cursor']}", headers=mine)
    assert [j["id"] for j in rest.json()["jobs"]] == [ids[0]]

    cancelled = await gateway.client.delete(f"/jobs/{ids[1]}", headers=mine)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await gateway.client.delete(f"/jobs/{ids[1]}", headers=mine)
    assert again.status_code == 409
    queued = (await gateway.client.get("/jobs?status=queued", headers=mine)).json()["jobs"]
    assert {j["id"] for j in queued} == {ids[0], ids[2]}
    assert (await gateway.client.get("/jobs?model=other", headers=mine)).json()["jobs"] == []
    assert (await gateway.client.get("/jobs?status=nope", headers=mine)).status_code == 400

    # another tenant's job is a 404 like an unknown id, and stays untouched
    for method in ("GET", "DELETE"):
        foreign = await gateway.client.request(method, f"/jobs/{other}", headers=mine)
        unknown = await gateway.client.request(method, "/jobs/j0000", headers=mine)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["error"] == {"code": "not_found", "message": f"no job {other!r}"}
        assert set(foreign.json()) == set(unknown.json()) == {"error", "request_id"}
    assert [
        j["id"] for j in (await gateway.client.get("/jobs", headers=theirs)).json()["jobs"]
    ] == [other]
    # the admin sees every tenant's
    everyone = (await gateway.client.get("/admin/jobs", headers=ADMIN)).json()["jobs"]
    assert {j["id"] for j in everyone} == {*ids, other}
    shown = await gateway.client.get(f"/admin/jobs/{other}", headers=ADMIN)
    assert shown.json()["status"] == "queued"
    assert (await gateway.client.delete(f"/admin/jobs/{other}", headers=ADMIN)).status_code == 200
    assert (await gateway.client.get("/admin/jobs/dead", headers=ADMIN)).json() == {"dead": []}


async def test_idempotency_key_and_queue_limit(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = fake_table(backend.url, jobs={"max_queued_per_tenant": 2}, auth={})
    gateway = await start(start_gateway, text, store_settings, job_workers=False)
    key = {"X-API-Key": await tenant_key(gateway)}
    first = await submit(gateway, headers={**key, "Idempotency-Key": "k1"})
    again = await submit(gateway, headers={**key, "Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = {"inputs": [{**V2["inputs"][0], "data": [4, 3, 2, 1]}]}
    conflict = await submit(gateway, body=other, headers={**key, "Idempotency-Key": "k1"})
    assert conflict.status_code == 409
    assert error_of(conflict)[0] == "conflict"
    assert (await submit(gateway, headers=key)).status_code == 202
    full = await submit(gateway, headers=key)
    assert full.status_code == 429
    assert error_of(full)[0] == "job_queue_full"
    # another tenant has a queue of its own
    assert (
        await submit(gateway, headers={"X-API-Key": await tenant_key(gateway)})
    ).status_code == 202


async def test_quota_at_submit_and_the_rate_at_run(
    start_gateway: StartGateway, demo_backend: str, store_settings: dict[str, Any]
) -> None:
    plans = {
        "quota": {"rate": "100/s", "quota": ["2/day"]},
        "slow": {"rate": "1/min", "burst": 2},
    }
    text = demo_table(demo_backend, plans=plans, auth={})
    gateway = await start(start_gateway, text, store_settings)
    quota = {"X-API-Key": await tenant_key(gateway, "quota")}
    for _ in range(2):
        assert (
            await gateway.client.post("/v2/models/linear/infer", json=V2, headers=quota)
        ).status_code == 200
    spent = await submit(gateway, headers=quota)
    assert spent.status_code == 429
    assert "quota-day" in error_of(spent)[1]

    slow = {"X-API-Key": await tenant_key(gateway, "slow")}
    ids = [(await submit(gateway, headers=slow)).json()["id"] for _ in range(4)]
    async with asyncio.timeout(WAIT):
        while True:
            jobs = (await gateway.client.get("/jobs", headers=slow)).json()["jobs"]
            if sum(j["status"] == "succeeded" for j in jobs) == 2:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the other two were refused by the rate: put back, not run
    jobs = {j["id"]: j for j in (await gateway.client.get("/jobs", headers=slow)).json()["jobs"]}
    assert sorted(j["status"] for j in jobs.values()) == [
        "queued",
        "queued",
        "succeeded",
        "succeeded",
    ]
    assert all(j["attempts"] == 0 for j in jobs.values() if j["status"] == "queued")
    assert set(jobs) == set(ids)


async def test_a_backend_4xx_fails_the_job_and_a_503_is_retried(
    start_gateway: StartGateway, store_settings: dict[str, Any]
) -> None:
    refusing = await FakeReplica(status=400, body=b'{"error": "bad input here"}').start()
    flaky = await Flaky(status=503, body=b'{"error": "busy"}').start()
    try:
        jobs = {"retry_backoff": "50ms", "max_attempts": 3}
        gateway = await start(start_gateway, fake_table(refusing.url, jobs=jobs), store_settings)
        failed = await done(gateway, (await submit(gateway)).json()["id"])
        assert (failed["status"], failed["attempts"], failed["error_status"]) == ("failed", 1, 400)
        assert failed["error"]["code"] == "upstream_error"
        assert "bad input here" in failed["error"]["error"]
        assert "result" not in failed

        # a queue of its own: the first gateway's workers would take its jobs otherwise
        own = {**store_settings}
        if "redis_prefix" in own:
            own["redis_prefix"] += "b:"
        retried = await start(start_gateway, fake_table(flaky.url, jobs=jobs), own)
        job_id = (await submit(retried)).json()["id"]
        async with asyncio.timeout(WAIT):
            while not forwarded(flaky):  # noqa: ASYNC110 - the fake offers no event
                await asyncio.sleep(0.01)
        flaky.status, flaky.body = (
            200,
            b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [7]}]}',
        )
        finished = await done(retried, job_id)
        assert finished["status"] == "succeeded"
        assert finished["attempts"] >= 2
        assert finished["result"]["outputs"][0]["data"] == [7]
    finally:
        await refusing.stop()
        await flaky.stop()
