"""Proof, on two real `gateway serve` processes sharing one real Redis, that per-tenant usage is
exact across replicas: traffic of a known composition (two tenants and anonymous callers, two
models, two versions, answers, 4xx and 5xx errors, cache hits and 429s), sent to the replicas in
turn, and `GET /admin/usage` on either replica returns exactly those numbers once both have
flushed (polled, bounded); the CSV says the same; quota consumption is the limiter's; the
`gateway usage` command prints it; `gateway_tenant_requests_total` adds up to every call.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import REPLY, FakeReplica
from tests.support import ADMIN, ADMIN_TOKEN, INPUT0, V2, backend, model, routes_yaml, versions
from tests.system.test_limits_proof import gateway_env, replicas

pytestmark = pytest.mark.anyio
GATEWAY = str(Path(sys.executable).with_name("gateway"))
IDENTITY = {"Accept-Encoding": "identity"}  # bytes_out is what was sent: keep it uncompressed
FIELDS = (
    "requests", "errors_4xx", "errors_5xx", "cache_hits", "rate_limited", "bytes_in", "bytes_out"
)  # fmt: skip
WAIT = 30.0  # bound on the wait for both replicas' flushes

Group = tuple[str, str, str]  # tenant, model, version


def routes(good: str, failing: str) -> str:
    """``linear`` (versions 1 and 2, cached per tenant) answers; ``broken`` answers 500 (the
    gateway: a 5xx). Plans: ``pro`` (1000 a day), ``small`` (5 a day). Anonymous calls pass."""
    linear = model(
        versions("fake", "1", "2", inputs=[INPUT0]),
        default="1",
        deterministic=True,
        cache={"ttl": "5m"},
    )
    broken = model(versions("down", "1", inputs=[INPUT0]))
    return routes_yaml(
        {"fake": backend("kserve", good), "down": backend("kserve", failing)},
        {"linear": linear, "broken": broken},
        plans={"pro": {"quota": ["1000/day"]}, "small": {"quota": ["5/day"]}},
        auth={"required": False},
    )


class Traffic:
    """Sends calls to the replicas in turn and keeps what each group should count."""

    def __init__(self, client: httpx.AsyncClient, urls: list[str]) -> None:
        self.client = client
        self.urls = urls
        self.sent = 0
        self.expected: dict[Group, dict[str, int]] = {}

    async def infer(
        self,
        group: Group,
        path: str,
        *,
        key: str | None = None,
        value: float = 1.0,
        status: int = 200,
        cache_hit: bool = False,
        limited: bool = False,
    ) -> httpx.Response:
        body = {"inputs": [{**V2["inputs"][0], "data": [value, 2, 3, 4]}]}
        headers = {**IDENTITY, **({"X-API-Key": key} if key else {})}
        url = self.urls[self.sent % len(self.urls)]
        self.sent += 1
        response = await self.client.post(f"{url}{path}", json=body, headers=headers)
        if status >= 500:
            assert response.status_code >= 500, response.text
        else:
            assert response.status_code == status, response.text
        assert ("hit" in response.headers.get("cache-status", "")) == cache_hit
        counts = self.expected.setdefault(group, dict.fromkeys(FIELDS, 0))
        counts["requests"] += 1
        counts["errors_4xx"] += 400 <= response.status_code < 500
        counts["errors_5xx"] += response.status_code >= 500
        counts["cache_hits"] += cache_hit
        counts["rate_limited"] += limited
        counts["bytes_in"] += int(response.request.headers["content-length"])
        counts["bytes_out"] += len(response.content)
        return response

    def rows(self) -> list[dict[str, Any]]:
        """The expected ``by=version`` rows, sorted as the API sorts them."""
        return [
            {"tenant": t, "model": m, "version": v, **counts}
            for (t, m, v), counts in sorted(self.expected.items())
        ]


async def tenant_key(client: httpx.AsyncClient, base: str, plan: str) -> tuple[str, str]:
    name = f"{plan}-{uuid.uuid4().hex[:6]}"
    created = await client.post(f"{base}/admin/tenants", json={"name": name, "plan": plan})
    assert created.status_code == 201, created.text
    made = await client.post(
        f"{base}/admin/tenants/{name}/keys", json={"scopes": ["predict:*", "pin:*"]}
    )
    assert made.status_code == 201, made.text
    return name, str(made.json()["key"])


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeReplica, FakeReplica]]:
    good = await FakeReplica(body=REPLY).start()
    failing = await FakeReplica(status=500, body=b'{"error": "boom"}').start()
    yield good, failing
    await good.stop()
    await failing.stop()


async def test_usage_from_two_replicas_is_exact(
    tmp_path: Path, redis_url: str, fakes: tuple[FakeReplica, FakeReplica]
) -> None:
    good, failing = fakes
    env = gateway_env(redis_url, GATEWAY_USAGE_FLUSH_SECONDS="0.2", GATEWAY_METRICS_MAX_TENANTS="2")
    async with replicas(tmp_path, routes(good.url, failing.url), env) as running:
        urls = [r.url for r in running]
        async with httpx.AsyncClient(timeout=10, headers=ADMIN) as admin:
            acme, acme_key = await tenant_key(admin, urls[0], "pro")
            beta, beta_key = await tenant_key(admin, urls[1], "small")
        async with httpx.AsyncClient(timeout=10) as client:
            traffic = Traffic(client, urls)
            v1, v2 = "/v2/models/linear/versions/1/infer", "/v2/models/linear/versions/2/infer"
            for n in range(4):  # one body: a miss, then hits on either replica
                await traffic.infer((acme, "linear", "1"), v1, key=acme_key, cache_hit=n > 0)
            for value in (2.0, 3.0):
                await traffic.infer((acme, "linear", "2"), v2, key=acme_key, value=value)
            await traffic.infer(  # no such version: refused without one chosen
                (acme, "linear", ""), "/v2/models/linear/versions/9/infer", key=acme_key, status=404
            )
            for _ in range(2):
                await traffic.infer(
                    (acme, "broken", "1"), "/v2/models/broken/infer", key=acme_key, status=500
                )
            for n in range(7):  # 5 a day: the last two are refused
                await traffic.infer(
                    (beta, "linear", "1"),
                    v1,
                    key=beta_key,
                    value=10.0 + n,
                    status=429 if n >= 5 else 200,
                    limited=n >= 5,
                )
            await traffic.infer(("", "linear", "1"), "/v2/models/linear/infer")  # anonymous
            bad_key = "gk_0000000000000000_" + "x" * 43
            await traffic.infer(("", "linear", ""), v1, key=bad_key, status=401)
        expected = traffic.rows()
        assert sum(r["requests"] for r in expected) == traffic.sent == 18
        async with httpx.AsyncClient(timeout=10, headers=ADMIN) as admin:
            await until_counted(admin, urls[0], expected)
            for url in urls:  # the same figures from either replica
                report = await usage(admin, url, by="version")
                assert [r for r in report["rows"] if r["tenant"] in (acme, beta, "")] == expected
            await check_views(admin, urls[1], acme, beta, expected)
            await check_csv(admin, urls[0], beta, expected)
            await check_metrics(admin, urls)
        check_cli(urls[1], beta, expected)


async def usage(client: httpx.AsyncClient, url: str, **query: str) -> dict[str, Any]:
    response = await client.get(f"{url}/admin/usage", params=query)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def until_counted(client: httpx.AsyncClient, url: str, expected: list[Any]) -> None:
    """Poll until the store holds every call (both replicas flushed), bounded."""
    tenants = {r["tenant"] for r in expected}
    deadline = time.monotonic() + WAIT
    while True:
        rows = (await usage(client, url, by="version"))["rows"]
        mine = [r for r in rows if r["tenant"] in tenants]
        if mine == expected:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"usage never matched after {WAIT} s:\n{mine}\n!=\n{expected}")
        await asyncio.sleep(0.1)


async def check_views(
    client: httpx.AsyncClient, url: str, acme: str, beta: str, expected: list[Any]
) -> None:
    """by=model and by=day sum the same rows; quota is the limiter's count."""
    acme_rows = [r for r in expected if r["tenant"] == acme]
    by_model = (await usage(client, url, tenant=acme))["rows"]
    assert [(r["model"], r["requests"], r["errors_5xx"]) for r in by_model] == [
        ("broken", 2, 2),
        ("linear", 7, 0),
    ]
    assert sum(r["bytes_out"] for r in by_model) == sum(r["bytes_out"] for r in acme_rows)
    by_day = (await usage(client, url, tenant=beta, by="day"))["rows"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert [(r["day"], r["requests"], r["rate_limited"]) for r in by_day] == [(today, 7, 2)]
    report = await usage(client, url, tenant=beta)
    assert [
        (q["plan"], q["name"], q["used"], q["limit"], q["remaining"]) for q in report["quota"]
    ] == [("small", "quota-day", 5, 5, 0)]
    report = await usage(client, url, tenant=acme)
    # every call of acme passed the limiter: an unknown version is answered (404) after it
    assert [(q["plan"], q["used"], q["limit"]) for q in report["quota"]] == [("pro", 9, 1000)]


async def check_csv(client: httpx.AsyncClient, url: str, beta: str, expected: list[Any]) -> None:
    response = await client.get(
        f"{url}/admin/usage", params={"tenant": beta, "by": "version", "format": "csv"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0] == ["tenant", "model", "version", *FIELDS]
    [row] = [r for r in expected if r["tenant"] == beta]
    assert lines[1:] == [[beta, "linear", "1", *(str(row[f]) for f in FIELDS)]]


async def check_metrics(client: httpx.AsyncClient, urls: list[str]) -> None:
    """Every call once in gateway_tenant_requests_total over both replicas, each with at most
    2 tenant labels of its own plus 'other' (GATEWAY_METRICS_MAX_TENANTS=2)."""
    pattern = r'^gateway_tenant_requests_total\{status_class="(\w+)",tenant="([^"]*)"\} (\S+)$'
    total = 0.0
    for url in urls:
        text = (await client.get(f"{url}/metrics")).text
        found = re.findall(pattern, text, re.MULTILINE)
        assert found, text[-2000:]
        assert len({tenant for _, tenant, _ in found} - {"other"}) <= 2
        total += sum(float(value) for _, _, value in found)
    assert total == 18


def check_cli(url: str, beta: str, expected: list[Any]) -> None:
    env = {**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [GATEWAY, "usage", "--admin-url", url, "--tenant", beta, "--by", "version"]
    shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    [row] = [r for r in expected if r["tenant"] == beta]
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("usage from ")
    assert lines[0].endswith(" by version")
    assert lines[2].split() == ["tenant", "model", "version", "requests", "4xx", "5xx",
                                "cache", "hits", "429s", "bytes", "in", "bytes", "out"]  # fmt: skip
    assert lines[3].split() == [beta, "linear", "1", *(str(row[f]) for f in FIELDS)]
    assert lines[4] == ""
    assert lines[5].split() == [
        "tenant",
        "plan",
        "quota",
        "used",
        "limit",
        "remaining",
        "resets",
        "in",
        "(s)",
    ]
    assert lines[6].split()[:-1] == [beta, "small", "quota-day", "5", "5", "0"]
    as_csv = subprocess.run(
        [*command, "--csv"], env=env, capture_output=True, text=True, timeout=60
    )
    assert as_csv.returncode == 0, as_csv.stderr
    assert list(csv.reader(io.StringIO(as_csv.stdout)))[1] == [
        beta, "linear", "1", *(str(row[f]) for f in FIELDS)
    ]  # fmt: skip
