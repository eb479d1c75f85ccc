"""Batch files through the running app: a batch runs to the answers live calls give, bad files
are refused whole, the feeder keeps a tenant's open jobs under its cap, cancel, isolation,
and a restarted feeder finishes a batch without a job twice (memory store and real Redis)."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from gateway.batches.model import idempotency_key
from gateway.cli.main import main
from gateway.jobs.config import JobsConfig
from gateway.jobs.service import JobService
from gateway.store.redis.store import RedisStore
from tests.app.test_jobs import V1, demo_table, fake_table, start, tenant_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import REPLY, FakeReplica, forwarded, health_check
from tests.support import ADMIN, ADMIN_TOKEN, V2, error_of


class NoCallbacks:
    """A job sink for jobs submitted by hand (no line of a batch has a Callback-URL)."""

    async def check_callback(self, tenant: str | None, url: str) -> str:
        raise AssertionError("batch lines carry no Callback-URL")

    async def enqueue(
        self, tenant: str, url: str, event_type: str, data: Mapping[str, object]
    ) -> str:
        raise AssertionError("batch lines carry no Callback-URL")


pytestmark = pytest.mark.anyio
WAIT = 30.0
V2_OTHER = {"inputs": [{"name": "INPUT0", "shape": [2, 4], "datatype": "FP32", "data": [0] * 8}]}


class Peak(FakeReplica):
    """Counts the inference calls in flight at once (the highest seen in ``peak``)."""

    def __init__(self, delay: float) -> None:
        super().__init__(body=REPLY, delay=delay)
        self.now = self.peak = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/ready"):
            return web.Response(status=200)
        if (checked := health_check(request)) is not None:
            return checked
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await super()._handle(request)
        finally:
            self.now -= 1


def jsonl(*lines: Any) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def line(custom_id: str, body: Any = V2, protocol: str = "v2", **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "model": "linear", "protocol": protocol, "body": body, **extra}


async def post(
    gateway: RunningGateway, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await gateway.client.post(
        "/batches",
        content=content,
        headers={"Content-Type": "application/jsonl", **(headers or {})},
    )


async def finished(
    gateway: RunningGateway, batch_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The batch once no line is queued or running any more."""
    async with asyncio.timeout(WAIT):
        while True:
            shown = await gateway.client.get(f"/batches/{batch_id}", headers=headers)
            assert shown.status_code == 200, shown.text
            batch: dict[str, Any] = shown.json()
            counts = batch["counts"]
            if batch["status"] in ("completed", "cancelled") and not (
                counts["queued"] or counts["running"]
            ):
                return batch
            await asyncio.sleep(0.05)


async def results(
    gateway: RunningGateway, batch_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    response = await gateway.client.get(f"/batches/{batch_id}/results", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    return [orjson.loads(row) for row in response.content.splitlines()]


async def test_a_batch_of_v1_and_v2_lines_answers_what_live_calls_answer(
    start_gateway: StartGateway, demo_backend: str, store_settings: dict[str, Any]
) -> None:
    gateway = await start(start_gateway, demo_table(demo_backend), store_settings)
    file = jsonl(
        line("a", V2),
        line("b", V1, "v1", version="2"),
        line("c", V2_OTHER, version="1"),
    )
    accepted = await post(gateway, gzip.compress(file), {"Content-Encoding": "gzip"})
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert accepted.headers["Location"] == f"/batches/{batch['id']}"
    assert batch["status"] == "queued"
    assert batch["counts"] == {
        "total": 3,
        "queued": 3,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    done = await finished(gateway, batch["id"])
    assert done["status"] == "completed"
    assert done["counts"]["succeeded"] == 3
    assert done["finished_at"] >= done["created_at"]

    live = {
        "a": (await gateway.client.post("/v2/models/linear/infer", json=V2)).json(),
        "b": (await gateway.client.post("/v1/models/linear/versions/2:predict", json=V1)).json(),
        "c": (
            await gateway.client.post("/v2/models/linear/versions/1/infer", json=V2_OTHER)
        ).json(),
    }
    rows = await results(gateway, batch["id"])
    assert [row["custom_id"] for row in rows] == ["a", "b", "c"]
    for row in rows:
        assert (row["status"], row["status_code"]) == ("succeeded", 200)
        assert row["response"] == live[row["custom_id"]]
    # the lines ran as jobs of the batch
    jobs = (await gateway.client.get(f"/jobs?batch_id={batch['id']}")).json()["jobs"]
    assert sorted(j["custom_id"] for j in jobs) == ["a", "b", "c"]
    listed = (await gateway.client.get("/batches")).json()
    assert [b["id"] for b in listed["batches"]] == [batch["id"]]
    admin = await gateway.client.get(f"/admin/batches/{batch['id']}/results", headers=ADMIN)
    assert [orjson.loads(r) for r in admin.content.splitlines()] == rows


async def test_a_bad_file_is_refused_whole_naming_its_lines(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = fake_table(backend.url, auth={})
    gateway = await start(start_gateway, text, store_settings)
    key = {"X-API-Key": await tenant_key(gateway)}
    assert (await post(gateway, jsonl(line("a")))).status_code == 401
    bad = jsonl(
        line("a"),
        b"{not json",
        b"",  # blank lines are skipped, and counted in the numbering
        {**line("d"), "model": "nope"},
        line("e", {"inputs": []}),
        line("f", protocol="v3"),
        line("a"),
    )
    refused = await post(gateway, bad, key)
    assert refused.status_code == 400
    code, message = error_of(refused)
    assert code == "invalid_batch"
    assert message.startswith("5 bad lines, nothing was queued: line 2: not JSON")
    for number, why in (
        (4, "nope"),
        (5, "'inputs' must be a non-empty list"),
        (6, "'protocol' must be"),
        (7, "custom_id 'a' is used by an earlier line"),
    ):
        assert f"line {number}: " in message, message
        assert why in message, (number, message)
    assert set(refused.json()) == {"error", "request_id"}
    assert (await post(gateway, b"\n\n", key)).status_code == 400
    # a version needs pin:<model>, as a live call does
    name = "t-" + uuid.uuid4().hex[:8]
    await gateway.client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    narrow = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": ["predict:linear"]}, headers=ADMIN
    )
    pinned = await post(gateway, jsonl(line("a", version="1")), {"X-API-Key": narrow.json()["key"]})
    assert pinned.status_code == 400
    assert "line 1: missing scope: pin:linear" in error_of(pinned)[1]

    assert (await gateway.client.get("/batches", headers=key)).json()["batches"] == []
    assert (await gateway.client.get("/jobs", headers=key)).json()["jobs"] == []
    await asyncio.sleep(0.3)  # a feeder round or two: still nothing reached the backend
    assert forwarded(backend) == []


async def test_the_limits_on_lines_and_bytes(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    jobs = {"max_batch_lines": 2, "max_batch_bytes": 2000}
    gateway = await start(start_gateway, fake_table(backend.url, jobs=jobs), store_settings)
    three = await post(gateway, jsonl(line("a"), line("b"), line("c")))
    assert three.status_code == 400
    assert "more than 2 lines" in error_of(three)[1]
    big = line("a", {"inputs": [{**V2["inputs"][0], "parameters": {"pad": "x" * 3000}}]})
    too_big = await post(gateway, jsonl(big))
    assert too_big.status_code == 413


async def test_the_feeder_keeps_a_tenants_open_jobs_under_its_cap(
    start_gateway: StartGateway, store_settings: dict[str, Any]
) -> None:
    slow = Peak(delay=0.15)
    await slow.start()
    try:
        jobs = {"batch_concurrency": 2, "tenant_concurrency": 8, "concurrency": 16}
        gateway = await start(start_gateway, fake_table(slow.url, jobs=jobs), store_settings)
        file = jsonl(*(line(f"l{i}") for i in range(7)))
        first = (await post(gateway, file)).json()["id"]
        second = (await post(gateway, jsonl(line("x"), line("y")))).json()["id"]
        most_open = 0
        async with asyncio.timeout(WAIT):
            while True:
                listed = (await gateway.client.get("/jobs?limit=100")).json()["jobs"]
                unfinished = [j for j in listed if j["status"] in ("queued", "running")]
                most_open = max(most_open, len(unfinished))
                if len(listed) == 9 and not unfinished:
                    break
                await asyncio.sleep(0.01)
        assert most_open <= 2
        assert 1 <= slow.peak <= 2
        for batch_id, total in ((first, 7), (second, 2)):
            done = await finished(gateway, batch_id)
            assert (done["status"], done["counts"]["succeeded"]) == ("completed", total)
        assert len(forwarded(slow)) == 9
        metrics = (await gateway.client.get("/metrics")).text
        assert "gateway_batch_lines_fed_total 9.0" in metrics
        assert 'gateway_batches_finished_total{outcome="completed"} 2.0' in metrics
    finally:
        await slow.stop()


async def test_cancel_stops_what_has_not_run(
    start_gateway: StartGateway, store_settings: dict[str, Any]
) -> None:
    slow = Peak(delay=0.5)
    await slow.start()
    try:
        jobs = {"batch_concurrency": 1}
        gateway = await start(start_gateway, fake_table(slow.url, jobs=jobs), store_settings)
        batch_id = (await post(gateway, jsonl(*(line(f"l{i}") for i in range(4))))).json()["id"]
        async with asyncio.timeout(WAIT):
            while not forwarded(slow):  # noqa: ASYNC110 - the fake offers no event
                await asyncio.sleep(0.01)
        cancelled = await gateway.client.delete(f"/batches/{batch_id}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["counts"]["cancelled"] == 3
        assert (await gateway.client.delete(f"/batches/{batch_id}")).status_code == 409
        done = await finished(gateway, batch_id)
        assert done["counts"] == {
            "total": 4,
            "queued": 0,
            "running": 0,
            "succeeded": 1,
            "failed": 0,
            "cancelled": 3,
        }
        rows = await results(gateway, batch_id)
        assert [r["status"] for r in rows] == ["succeeded", "cancelled", "cancelled", "cancelled"]
        await asyncio.sleep(0.3)  # a feeder round or two: nothing more was fed
        assert len(forwarded(slow)) == 1
    finally:
        await slow.stop()


async def test_a_backend_4xx_is_the_lines_error_in_its_protocols_shape(
    start_gateway: StartGateway, store_settings: dict[str, Any]
) -> None:
    refusing = await FakeReplica(status=400, body=b'{"error": "bad input here"}').start()
    try:
        gateway = await start(start_gateway, fake_table(refusing.url), store_settings)
        batch_id = (await post(gateway, jsonl(line("a")))).json()["id"]
        done = await finished(gateway, batch_id)
        assert (done["status"], done["counts"]["failed"]) == ("completed", 1)
        [row] = await results(gateway, batch_id)
        assert (row["status"], row["status_code"]) == ("failed", 400)
        assert row["error"]["code"] == "upstream_error"
        assert isinstance(row["error"]["error"], str)
        assert "bad input here" in row["error"]["error"]
        assert "response" not in row
    finally:
        await refusing.stop()


async def test_a_tenant_sees_only_its_own_batches(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> None:
    text = fake_table(backend.url, auth={})
    gateway = await start(start_gateway, text, store_settings, job_workers=False)
    mine = {"X-API-Key": await tenant_key(gateway)}
    theirs = {"X-API-Key": await tenant_key(gateway)}
    batch_id = (await post(gateway, jsonl(line("a")), mine)).json()["id"]
    for method, path in (
        ("GET", f"/batches/{batch_id}"),
        ("GET", f"/batches/{batch_id}/results"),
        ("DELETE", f"/batches/{batch_id}"),
    ):
        foreign = await gateway.client.request(method, path, headers=theirs)
        assert foreign.status_code == 404, (method, path)
        assert foreign.json()["error"] == {"code": "not_found", "message": f"no batch {batch_id!r}"}
    assert (await gateway.client.get("/batches", headers=theirs)).json()["batches"] == []
    shown = (await gateway.client.get(f"/batches/{batch_id}", headers=mine)).json()
    assert (shown["status"], shown["counts"]["queued"]) == ("queued", 1)  # no feeder here
    rows = await results(gateway, batch_id, mine)
    assert rows == [{"custom_id": "a", "status": "queued"}]
    everyone = (await gateway.client.get("/admin/batches", headers=ADMIN)).json()["batches"]
    assert [(b["id"], b["tenant"]) for b in everyone] == [(batch_id, shown_tenant(everyone))]
    cancelled = await gateway.client.delete(f"/admin/batches/{batch_id}", headers=ADMIN)
    assert cancelled.json()["status"] == "cancelled"


def shown_tenant(batches: list[dict[str, Any]]) -> str:
    tenant: str = batches[0]["tenant"]
    assert tenant.startswith("t-")
    return tenant


async def test_a_restarted_feeder_finishes_the_batch_without_a_job_twice(
    start_gateway: StartGateway, redis_url: str
) -> None:
    slow = Peak(delay=0.1)
    await slow.start()
    prefix = f"gwtest:{uuid.uuid4().hex[:8]}:"
    store = RedisStore.from_url(redis_url, prefix=prefix)
    try:
        settings = {"redis_url": redis_url, "redis_prefix": prefix}
        text = fake_table(slow.url, jobs={"batch_concurrency": 2})
        first = await start(start_gateway, text, settings)
        batch_id = (await post(first, jsonl(*(line(f"l{i}") for i in range(8))))).json()["id"]
        async with asyncio.timeout(WAIT):
            while len(forwarded(slow)) < 2:  # noqa: ASYNC110 - the fake offers no event
                await asyncio.sleep(0.01)
        first.server.should_exit = True
        await asyncio.wait_for(first.task, WAIT)

        # as if a feeder died between submitting the next line's job and recording it
        batch = await store.batch_get(batch_id)
        assert batch is not None
        assert batch.fed < 8
        [next_line] = await store.batch_lines(batch_id, batch.fed, 1)
        jobs = JobService(store, JobsConfig, NoCallbacks())
        orphan, created = await jobs.submit(
            model=next_line.model,
            pin=None,
            protocol=next_line.protocol,
            body=next_line.body,
            headers=[],
            caller=None,
            owner=batch.owner,
            idempotency_key=idempotency_key(batch_id, next_line.custom_id),
            batch_id=batch_id,
            custom_id=next_line.custom_id,
        )
        assert created

        second = await start(start_gateway, text, settings)
        done = await finished(second, batch_id)
        assert (done["status"], done["counts"]["succeeded"]) == ("completed", 8)
        listed = (await second.client.get(f"/jobs?batch_id={batch_id}&limit=100")).json()["jobs"]
        assert sorted(j["custom_id"] for j in listed) == [f"l{i}" for i in range(8)]
        assert orphan.id in {j["id"] for j in listed}
        rows = await results(second, batch_id)
        assert [r["custom_id"] for r in rows] == [f"l{i}" for i in range(8)]
        assert all(r["status"] == "succeeded" for r in rows)
    finally:
        await store.close()
        await slow.stop()


async def test_the_openapi_document_describes_the_batch_routes(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    gateway = await start_gateway(fake_table(backend.url), admin_token=ADMIN_TOKEN)
    doc = (await gateway.client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths["/batches"]) == {"get", "post"}
    assert set(paths["/batches/{batch_id}"]) == {"get", "delete"}
    post_op = paths["/batches"]["post"]
    assert set(post_op["responses"]) == {"202", "default"}
    line_schema = post_op["requestBody"]["content"]["application/jsonl"]["schema"]["x-jsonl-line"]
    assert line_schema["required"] == ["custom_id", "model", "protocol", "body"]
    results_op = paths["/batches/{batch_id}/results"]["get"]
    assert "application/jsonl" in results_op["responses"]["200"]["content"]
    assert results_op["parameters"][0]["name"] == "batch_id"
    assert "security" not in results_op  # the callers' schemes, the document's default
    assert "/admin/batches/{batch_id}/results" in paths


async def test_the_cli_lists_shows_prints_results_and_cancels(
    start_gateway: StartGateway,
    backend: FakeReplica,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = await start(start_gateway, fake_table(backend.url), {}, job_workers=False)
    batch_id = (await post(gateway, jsonl(line("a"), line("b")))).json()["id"]
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)

    async def cli(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["batches", *args, "--admin-url", gateway.url])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await cli("list")
    assert code == 0
    assert [b["id"] for b in orjson.loads(out)["batches"]] == [batch_id]
    code, out, _ = await cli("show", batch_id)
    assert orjson.loads(out)["counts"]["queued"] == 2
    code, out, _ = await cli("results", batch_id)
    assert code == 0
    assert [orjson.loads(row) for row in out.splitlines()] == [
        {"custom_id": "a", "status": "queued"},
        {"custom_id": "b", "status": "queued"},
    ]
    code, out, _ = await cli("cancel", batch_id)
    assert (code, orjson.loads(out)["status"]) == (0, "cancelled")
    code, out, _ = await cli("results", batch_id)
    assert {orjson.loads(row)["status"] for row in out.splitlines()} == {"cancelled"}
    code, _, err = await cli("results", "b-nope")
    assert code == 1
    assert "404" in err
