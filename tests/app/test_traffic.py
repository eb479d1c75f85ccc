"""Versioned traffic through the running app: the weighted split, sticky callers, pinning,
health-aware choice, and the rollout controller's hook. Each version is its own fake backend,
so the tests count which server really answered."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import httpx
import pytest

from tests.app.test_auth import make_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, dead_url
from tests.support import ADMIN, ADMIN_TOKEN, INPUT0, V2, backend, model, routes_yaml

pytestmark = pytest.mark.anyio
BODY = json.dumps(V2).encode()
JSON = {"Content-Type": "application/json"}


def reply(value: float) -> bytes:
    return json.dumps(
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [value]}]}
    ).encode()


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeReplica]]:
    """One fake server per version ("1", "2", "3"), each answering its own number."""
    started = {v: await FakeReplica(body=reply(float(v))).start() for v in ("1", "2", "3")}
    yield started
    for fake in started.values():
        await fake.stop()


def routes(
    urls: Mapping[str, str],
    health: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    **options: Any,
) -> str:
    """Model ``m``, each version ``v`` of ``urls`` on its own backend ``b<v>`` (``b2`` with
    ``health`` checks), default "1", with ``options`` (``traffic``, ``sticky``)."""
    backends = {
        f"b{v}": backend("kserve", url, health=health if v == "2" else None)
        for v, url in urls.items()
    }
    served = {v: {"backend": f"b{v}", "inputs": [INPUT0]} for v in urls}
    return routes_yaml(backends, {"m": model(served, default="1", **options)}, auth=auth)


def answered(fake: FakeReplica) -> int:
    """Inference calls that reached ``fake`` (health probes aside)."""
    return sum(1 for r in fake.seen if r.path.endswith("/infer"))


async def infer(
    gateway: RunningGateway, headers: Mapping[str, str] | None = None, path: str = ""
) -> httpx.Response:
    return await gateway.client.post(
        f"/v2/models/m{path}/infer", content=BODY, headers={**JSON, **(headers or {})}
    )


async def send(
    gateway: RunningGateway, headers: Sequence[Mapping[str, str]], batch: int = 50
) -> list[tuple[int, str]]:
    """One request per entry of ``headers``, ``batch`` at a time: (status, version reported).

    An aiohttp client: several times faster than httpx for the 10,000-request runs.
    """
    url = f"{gateway.url}/v2/models/m/infer"
    result: list[tuple[int, str]] = []
    async with aiohttp.ClientSession() as session:

        async def one(extra: Mapping[str, str]) -> tuple[int, str]:
            async with session.post(url, data=BODY, headers={**JSON, **extra}) as response:
                await response.read()
                return response.status, response.headers.get("X-Model-Version", "")

        for start in range(0, len(headers), batch):
            result += await asyncio.gather(*(one(h) for h in headers[start : start + batch]))
    return result


async def many(gateway: RunningGateway, n: int) -> Counter[str]:
    """``n`` requests; the versions reported, all of them 200."""
    replies = await send(gateway, [{}] * n)
    assert {status for status, _ in replies} == {200}
    return Counter(version for _, version in replies)


# -- the weighted split -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights", [{"1": 90, "2": 10}, {"1": 70, "2": 20, "3": 10}], ids=["90/10", "70/20/10"]
)
async def test_the_split_is_accurate_over_10000_requests(
    start_gateway: StartGateway, fakes: dict[str, FakeReplica], weights: dict[str, int]
) -> None:
    urls = {v: fakes[v].url for v in weights}
    gateway = await start_gateway(routes(urls, traffic=weights))
    n = 10_000
    reported = await many(gateway, n)
    served = {v: answered(fakes[v]) for v in weights}
    assert served == dict(reported)  # the header tells the truth
    for version, weight in weights.items():
        share = served[version] / n
        assert abs(share - weight / 100) <= 0.01, (version, share)
        # smooth weighted round-robin is exact to a request or two, whatever the concurrency
        assert abs(served[version] - n * weight / 100) <= 2, served


# -- stickiness -------------------------------------------------------------------------------


async def test_sticky_by_header_keeps_callers_and_a_weight_change_moves_the_minimum(
    start_gateway: StartGateway, fakes: dict[str, FakeReplica]
) -> None:
    urls = {v: fakes[v].url for v in ("1", "2")}

    def text(weights: dict[str, int]) -> str:
        return routes(urls, traffic=weights, sticky={"by": "header", "name": "X-User"})

    gateway = await start_gateway(text({"1": 90, "2": 10}), admin_token=ADMIN_TOKEN)
    one = await send(gateway, [{"X-User": "alice"}] * 50)
    assert len(set(one)) == 1
    callers = [f"user-{i}" for i in range(400)]

    async def versions() -> dict[str, str]:
        replies = await send(gateway, [{"X-User": c} for c in callers])
        assert {status for status, _ in replies} == {200}
        return {c: v for c, (_, v) in zip(callers, replies, strict=True)}

    before = await versions()
    assert before == await versions()  # stable
    assert 0.04 < Counter(before.values())["2"] / len(callers) < 0.16  # ~10%
    gateway.routes.write_text(text({"1": 70, "2": 30}), encoding="utf-8")
    reload = await gateway.client.post("/admin/config/reload", headers=ADMIN)
    assert reload.status_code == 200, reload.text
    after = await versions()
    moved = [c for c in callers if before[c] != after[c]]
    assert all(before[c] == "1" and after[c] == "2" for c in moved)  # nobody left version 2
    assert abs(len(moved) / len(callers) - 0.20) < 0.06  # the minimum is 20%
    # a request without the header falls back to the round-robin, served all the same
    assert (await infer(gateway)).status_code == 200


async def test_sticky_by_cookie(start_gateway: StartGateway, fakes: dict[str, FakeReplica]) -> None:
    urls = {v: fakes[v].url for v in ("1", "2")}
    sticky = {"by": "cookie", "name": "uid"}
    gateway = await start_gateway(routes(urls, traffic={"1": 50, "2": 50}, sticky=sticky))
    seen: dict[str, set[str]] = {}
    for caller in (f"c{i}" for i in range(20)):
        replies = await send(gateway, [{"Cookie": f"other=1; uid={caller}"}] * 50)
        seen[caller] = {version for status, version in replies if status == 200}
    assert all(len(v) == 1 for v in seen.values())
    assert {next(iter(v)) for v in seen.values()} == {"1", "2"}  # both versions have callers


@pytest.mark.parametrize("by", ["tenant", "api_key"])
async def test_sticky_by_tenant_and_by_api_key(
    start_gateway: StartGateway, fakes: dict[str, FakeReplica], by: str
) -> None:
    urls = {v: fakes[v].url for v in ("1", "2")}
    text = routes(urls, auth={}, traffic={"1": 50, "2": 50}, sticky={"by": by})
    gateway = await start_gateway(text, admin_token=ADMIN_TOKEN, secret=uuid.uuid4().hex)
    keys = [await make_key(gateway, "*") for _ in range(12)]
    chosen: list[str] = []
    for key in keys:
        replies = await send(gateway, [{"X-API-Key": key}] * 50)
        assert {status for status, _ in replies} == {200}
        versions = {version for _, version in replies}
        assert len(versions) == 1
        chosen += versions
    assert set(chosen) == {"1", "2"}
    assert answered(fakes["1"]) + answered(fakes["2"]) == 12 * 50


# -- pinning ----------------------------------------------------------------------------------


async def test_pinning_needs_the_pin_scope_and_is_reported(
    start_gateway: StartGateway, fakes: dict[str, FakeReplica]
) -> None:
    urls = {v: fakes[v].url for v in ("1", "2", "3")}
    gateway = await start_gateway(
        routes(urls, auth={}, traffic={"1": 100}),
        admin_token=ADMIN_TOKEN,
        secret=uuid.uuid4().hex,
    )
    plain = await make_key(gateway, "predict:m", "metadata:m")
    pinner = await make_key(gateway, "predict:m", "pin:m")
    for key, status in ((plain, 403), (pinner, 200)):
        by_header = await infer(gateway, {"X-API-Key": key, "X-Model-Version": "2"})
        by_path = await infer(gateway, {"X-API-Key": key}, path="/versions/3")
        assert (by_header.status_code, by_path.status_code) == (status, status), by_header.text
    assert (by_header.headers["X-Model-Version"], by_path.headers["X-Model-Version"]) == ("2", "3")
    assert by_header.json()["outputs"][0]["data"] == [2.0]
    assert by_path.json()["outputs"][0]["data"] == [3.0]
    unpinned = await infer(gateway, {"X-API-Key": plain})
    assert unpinned.headers["X-Model-Version"] == "1"
    # an unknown model is only revealed after authentication
    missing = await gateway.client.post("/v2/models/nope/infer", content=BODY, headers=JSON)
    assert missing.status_code == 401
    # the status endpoint lists every version, whatever the split
    listed = await gateway.client.get("/v1/models/m", headers={"X-API-Key": plain})
    assert [s["version"] for s in listed.json()["model_version_status"]] == ["3", "2", "1"]


# -- health -----------------------------------------------------------------------------------


async def wait_unready(gateway: RunningGateway, backend: str) -> None:
    for _ in range(500):  # bounded: 100 ms probes, so well under the 10 s this allows
        config = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
        if all(r["unready"] for r in config["backends"][backend]["replicas"]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{backend} never marked unready")


async def test_a_version_without_a_live_replica_gets_no_traffic(
    start_gateway: StartGateway, fakes: dict[str, FakeReplica]
) -> None:
    urls = {"1": fakes["1"].url, "2": dead_url()}
    health = {"interval": "100ms", "unhealthy_after": 1}
    text = routes(urls, health, traffic={"1": 50, "2": 50})
    gateway = await start_gateway(text, admin_token=ADMIN_TOKEN)
    await wait_unready(gateway, "b2")
    seen = await many(gateway, 300)  # asserts every reply is a 200
    assert seen == {"1": 300}
    assert answered(fakes["1"]) == 300


async def test_when_every_version_is_down_the_backend_error_is_returned(
    start_gateway: StartGateway,
) -> None:
    urls = {"1": dead_url(), "2": dead_url()}
    health = {"interval": "100ms", "unhealthy_after": 1}
    gateway = await start_gateway(
        routes(urls, health, traffic={"1": 50, "2": 50}), admin_token=ADMIN_TOKEN
    )
    await wait_unready(gateway, "b2")
    replies = [await infer(gateway) for _ in range(4)]
    assert {r.status_code for r in replies} == {503}
    assert {r.headers["X-Model-Version"] for r in replies} <= {"1", "2"}


# -- the rollout controller's hook ------------------------------------------------------------


@dataclasses.dataclass
class FakeControl:
    live: dict[str, float] | None
    seen: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)

    def weights(self, model: str) -> Mapping[str, float] | None:
        return self.live

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append((model, version, status))
