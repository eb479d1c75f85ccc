"""Shadow traffic through the running app: the caller's answers never change, the copies are
compared and counted (metrics and ``GET /admin/shadow``), slow or failing shadows never touch
the caller, and a full queue drops and counts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, health_check
from tests.support import ADMIN, ADMIN_TOKEN, INPUT0, V2, backend, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
V1 = {"instances": [[1.0, 2.0, 3.0, 4.0]]}
SHADOW = {"version": "2"}  # the shadow of most tests: every call copied to version "2"


def reply(*values: float) -> bytes:
    return json.dumps(
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [len(values)], "data": values}]}
    ).encode()


@dataclasses.dataclass
class HeldReplica(FakeReplica):
    """A fake that holds every request until ``release`` is set."""

    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/ready"):
            return web.Response(status=200)
        if (checked := health_check(request)) is not None:
            return checked
        self.calls += 1
        await self.release.wait()
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@pytest.fixture
async def primary() -> AsyncIterator[FakeReplica]:
    fake = await FakeReplica(body=reply(7.0, 1.5)).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def shadow() -> AsyncIterator[FakeReplica]:
    fake = await FakeReplica(body=reply(7.0, 1.5)).start()
    yield fake
    await fake.stop()


def routes(primary: str, shadow: str, spec: dict[str, Any] | None = SHADOW) -> str:
    """Model ``m``: version "1" on a fake at ``primary``, "2" at ``shadow``; ``spec`` is its
    ``shadow`` (None: no shadow)."""
    served = {**versions("p", "1", inputs=[INPUT0]), **versions("s", "2", inputs=[INPUT0])}
    return routes_yaml(
        {"p": backend("kserve", primary), "s": backend("kserve", shadow)},
        {"m": model(served, default="1", shadow=spec)},
    )


def inferred(fake: FakeReplica) -> int:
    return sum(1 for r in fake.seen if r.path.endswith("/infer"))


async def calls(gateway: RunningGateway, n: int) -> list[httpx.Response]:
    """``n`` v2 calls and ``n`` v1 calls, alternating; every one a 200."""
    replies = []
    for _ in range(n):
        replies.append(await gateway.client.post("/v2/models/m/infer", json=V2))
        replies.append(await gateway.client.post("/v1/models/m:predict", json=V1))
    assert {r.status_code for r in replies} == {200}, replies[0].text
    return replies


async def report(gateway: RunningGateway) -> dict[str, Any]:
    """``/admin/shadow`` for model m's version 2, once every mirrored copy is done (bounded)."""
    for _ in range(500):
        body = (await gateway.client.get("/admin/shadow", headers=ADMIN)).json()
        stats: dict[str, Any] = body["models"].get("m", {}).get("2", {})
        if stats and stats["pending"] == 0:
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"shadow copies still pending: {body}")


async def metric(gateway: RunningGateway, name: str, **labels: str) -> float:
    text = (await gateway.client.get("/metrics")).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_callers_get_the_same_answers_with_and_without_shadow(
    start_gateway: StartGateway, primary: FakeReplica, shadow: FakeReplica
) -> None:
    plain = await start_gateway(routes(primary.url, shadow.url, None), admin_token=ADMIN_TOKEN)
    mirrored = await start_gateway(routes(primary.url, shadow.url), admin_token=ADMIN_TOKEN)
    without, with_shadow = await calls(plain, 10), await calls(mirrored, 10)
    assert [r.content for r in without] == [r.content for r in with_shadow]
    assert {r.headers["X-Model-Version"] for r in with_shadow} == {"1"}
    stats = await report(mirrored)
    assert stats["mirrored"] == stats["exact_matches"] == stats["numeric_agreements"] == 20
    assert (stats["mismatches"], stats["errors"], stats["dropped"]) == (0, 0, 0)
    assert stats["primary_requests"] == 20
    assert stats["primary_error_rate"] == 0
    assert isinstance(stats["mean_latency_delta_seconds"], float)
    assert inferred(shadow) == 20
    assert await metric(mirrored, "gateway_shadow_requests_total", **M2, outcome="match") == 20
    assert await metric(mirrored, "gateway_shadow_latency_delta_seconds_count", **M2) == 20
    # the plain gateway mirrored nothing
    assert (await plain.client.get("/admin/shadow", headers=ADMIN)).json()["models"] == {}


M2 = {"model": "m", "version": "2"}


@pytest.mark.parametrize(
    ("answer", "tolerance", "agree"),
    [((7.5, 1.5), "1e-4", False), ((7.0000001, 1.5), "1e-4", True), ((7.0,), "1.0", False)],
    ids=["far", "within-tolerance", "other-shape"],
)
async def test_a_disagreeing_shadow_shows_in_metrics_and_admin(
    start_gateway: StartGateway,
    primary: FakeReplica,
    shadow: FakeReplica,
    answer: tuple[float, ...],
    tolerance: str,
    agree: bool,
) -> None:
    shadow.body = reply(*answer)
    spec = {"version": "2", "tolerance": yaml.safe_load(tolerance)}  # as routes.yaml reads it
    gateway = await start_gateway(routes(primary.url, shadow.url, spec), admin_token=ADMIN_TOKEN)
    replies = await calls(gateway, 6)
    assert all(r.headers["X-Model-Version"] == "1" for r in replies)
    assert all("7.0" in r.text and "7.5" not in r.text for r in replies)
    stats = await report(gateway)
    assert (stats["mirrored"], stats["exact_matches"], stats["mismatches"]) == (12, 0, 12)
    assert stats["numeric_agreements"] == (12 if agree else 0)
    assert stats["numeric_disagreements"] == (0 if agree else 12)
    assert await metric(gateway, "gateway_shadow_requests_total", **M2, outcome="mismatch") == 12
    result = "agree" if agree else "disagree"
    total = await metric(gateway, "gateway_shadow_numeric_agreement_total", **M2, result=result)
    assert total == 12


async def test_the_share_is_exact_not_a_coin_flip(
    start_gateway: StartGateway, primary: FakeReplica, shadow: FakeReplica
) -> None:
    spec = {"version": "2", "share": "10%"}
    gateway = await start_gateway(routes(primary.url, shadow.url, spec), admin_token=ADMIN_TOKEN)
    await calls(gateway, 25)  # 50 requests
    stats = await report(gateway)
    assert stats["mirrored"] == inferred(shadow) == 5
    assert stats["primary_requests"] == 50


async def test_a_failing_shadow_never_fails_the_caller(
    start_gateway: StartGateway, primary: FakeReplica, shadow: FakeReplica
) -> None:
    shadow.status, shadow.body = 500, b'{"error": "broken"}'
    gateway = await start_gateway(routes(primary.url, shadow.url), admin_token=ADMIN_TOKEN)
    await calls(gateway, 5)  # asserts 200s
    stats = await report(gateway)
    assert (stats["mirrored"], stats["errors"], stats["exact_matches"]) == (10, 10, 0)
    assert stats["shadow_error_rate"] == 1.0
    assert stats["primary_error_rate"] == 0
    assert await metric(gateway, "gateway_shadow_requests_total", **M2, outcome="error") == 10


@pytest.fixture
async def held() -> AsyncIterator[HeldReplica]:
    fake = HeldReplica(body=reply(7.0, 1.5))
    await fake.start()
    yield fake
    fake.release.set()
    await fake.stop()


async def test_a_stalled_shadow_never_holds_the_caller_and_a_full_queue_drops(
    start_gateway: StartGateway, primary: FakeReplica, held: HeldReplica
) -> None:
    spec = {"version": "2", "queue": 1}
    gateway = await start_gateway(routes(primary.url, held.url, spec), admin_token=ADMIN_TOKEN)
    replies = await calls(gateway, 10)  # every caller answered while the shadow answers nobody
    assert len(replies) == 20
    assert held.calls <= 4
    body = (await gateway.client.get("/admin/shadow", headers=ADMIN)).json()
    stats = body["models"]["m"]["2"]
    # at most the 4 copies in flight and 1 waiting were taken; every other one was dropped
    assert stats["mirrored"] + stats["dropped"] == 20
    assert stats["dropped"] >= 20 - 4 - 1
    assert stats["pending"] == stats["mirrored"]
    assert await metric(gateway, "gateway_shadow_dropped_total", model="m") == stats["dropped"]
    held.release.set()
    done = await report(gateway)
    assert done["exact_matches"] == done["mirrored"] == stats["mirrored"]


async def test_the_shadow_report_needs_admin_credentials(
    start_gateway: StartGateway, primary: FakeReplica, shadow: FakeReplica
) -> None:
    gateway = await start_gateway(routes(primary.url, shadow.url), admin_token=ADMIN_TOKEN)
    assert (await gateway.client.get("/admin/shadow")).status_code == 401
    body = (await gateway.client.get("/admin/shadow", headers=ADMIN)).json()
    assert body["configured"] == {"m": {"version": "2", "share": 1.0}}
