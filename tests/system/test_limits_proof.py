"""Proof, on real `gateway serve` processes and real Redis, that the limits and the cache hold what
they promise under load: a token bucket shared by two replicas admits what one bucket would
(single Redis and a three-master Redis Cluster), a Redis killed mid-load follows the declared
failure mode and recovers, and the response cache makes one backend call per key and version
across replicas.

The accuracy figures are printed (run with ``-s``) and written to ``figures.json`` in the test's
tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import redis.asyncio as aredis

from gateway.store.redis.cluster import cluster_client
from tests.fakes import FakeReplica, forwarded
from tests.redis_plugin import RedisServer, StartRedis
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
GATEWAY = str(Path(sys.executable).with_name("gateway"))
BODY = json.dumps(V2).encode()
INFER = "/v2/models/linear/infer"

RATE, BURST = 200.0, 50.0  # the shared plan of the conformance tests
CLIENTS = 24  # concurrent callers, half on each replica
LOAD = 2.5  # seconds of load per phase


# --------------------------------------------------------------------------- gateway processes


@dataclass
class Replica:
    """One `gateway serve` process this test started."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def gateway_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": f"gwtest:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_SECRET": "secret-" + uuid.uuid4().hex,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_WATCH": "false",
        **extra,
    }


@asynccontextmanager
async def replicas(
    tmp_path: Path, routes: str, env: dict[str, str], count: int = 2
) -> AsyncIterator[list[Replica]]:
    """``count`` `gateway serve` processes on one routes.yaml and one store, ready; stopped
    (SIGINT, then SIGKILL) by PID afterwards while this loop keeps serving the fake backends."""
    config = tmp_path / f"routes-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(routes, encoding="utf-8")
    started: list[Replica] = []
    try:
        for _ in range(count):
            port = free_port()
            log = tmp_path / f"gateway-{port}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                    [GATEWAY, "serve", "--config", str(config), "--port", str(port)],
                    env={**os.environ, **env},
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            started.append(Replica(f"http://127.0.0.1:{port}", process, log))
        async with httpx.AsyncClient(timeout=1) as client:
            for replica in started:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await client.get(f"{replica.url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if replica.process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"a gateway did not start:\n{replica.log.read_text()[-3000:]}")
                    await asyncio.sleep(0.05)
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGINT)
        for replica in started:
            for _ in range(100):
                if replica.process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                replica.process.kill()
                replica.process.wait()


async def tenant_key(base: str, plan: str | None = None) -> tuple[str, str]:
    """A new tenant (on ``plan``) and an API key of it: (tenant, key)."""
    name = "t-" + uuid.uuid4().hex[:8]
    tenant: dict[str, Any] = {"name": name} if plan is None else {"name": name, "plan": plan}
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=ADMIN) as client:
        created = await client.post("/admin/tenants", json=tenant)
        assert created.status_code == 201, created.text
        made = await client.post(f"/admin/tenants/{name}/keys", json={"scopes": ["*"]})
        assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return name, key


async def store_failures(client: httpx.AsyncClient, base: str) -> float:
    """``gateway_ratelimit_store_failures_total``, every mode together."""
    text = (await client.get(f"{base}/metrics")).text
    pattern = r"^gateway_ratelimit_store_failures_total\{[^}]*\} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def report(tmp_path: Path, name: str, figures: dict[str, Any]) -> None:
    """Print the figures (pytest -s) and keep them in the test's tmp dir."""
    path = tmp_path / "figures.json"
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything[name] = figures
    path.write_text(json.dumps(everything, indent=2))
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --------------------------------------------------------------------------- load


@dataclass
class Call:
    sent: float  # time.perf_counter()
    done: float
    status: int
    code: str | None  # the error code of a refused call
    replica: int  # which of the URLs


@dataclass
class Load:
    calls: list[Call] = field(default_factory=list)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for call in self.calls:
            counts[call.status] = counts.get(call.status, 0) + 1
        return counts

    def admitted(
        self, start: float = -math.inf, end: float = math.inf, replica: int | None = None
    ) -> int:
        """200s of calls sent at or after ``start`` and answered by ``end`` (by ``replica``)."""
        return sum(
            1
            for c in self.calls
            if c.status == 200
            and start <= c.sent
            and c.done <= end
            and replica in (None, c.replica)
        )


async def hammer(
    urls: list[str],
    seconds: float,
    headers: dict[str, str] | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
    clients: int = CLIENTS,
) -> Load:
    """``clients`` callers spread over ``urls``. Each first makes one call (its connection
    opened, the caller's key verified and cached by that replica); then ``ready`` runs, and
    every caller sends its next request as soon as the last one is answered, for ``seconds``.

    aiohttp rather than httpx: on two cores the client must not be what limits the offered
    load, and aiohttp's client costs a fraction of httpx's per request."""
    load = Load()
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients, force_close=False),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    mine = [i % len(urls) for i in range(clients)]

    async def call(replica: int) -> tuple[int, bytes]:
        url = urls[replica] + INFER
        async with session.post(url, data=BODY, headers=sent_headers) as response:
            return response.status, await response.read()

    async def caller(replica: int, deadline: float) -> None:
        while (sent := time.perf_counter()) < deadline:
            status, body = await call(replica)
            code = None if status == 200 else json.loads(body).get("code")  # v2: error is text
            load.calls.append(Call(sent, time.perf_counter(), status, code, replica))

    try:
        await asyncio.gather(*(call(replica) for replica in mine))
        if ready is not None:
            await ready()
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(caller(replica, deadline) for replica in mine))
    finally:
        await session.close()
    return load


# --------------------------------------------------------------------------- conformance


def plan_routes(url: str, **sections: Any) -> str:
    """Model ``linear`` on the fake at ``url``, plans ``shared`` and ``small``, ``auth: {}``;
    ``sections`` add to the table or replace its ``auth``."""
    plans = {
        "shared": {"rate": f"{RATE:g}/s", "burst": int(BURST)},
        "small": {"rate": "1/min", "burst": 5},
    }
    sections.setdefault("auth", {})
    return routes_yaml(
        {"fake": backend("kserve", url)},
        {"linear": model(versions("fake", "1", inputs=[INPUT0]))},
        plans=plans,
        **sections,
    )


async def server_time(client: aredis.Redis | aredis.RedisCluster, key: str) -> float:
    """Redis ``TIME`` on the server holding ``key``: the clock the limits are decided on."""
    if isinstance(client, aredis.RedisCluster):
        await client.initialize()  # the slot map, to find the node (a no-op once read)
        node = client.get_node_from_key(key)
        seconds, micros = await client.execute_command("TIME", target_nodes=node)
    else:
        seconds, micros = await client.time()
    return int(seconds) + int(micros) / 1e6


async def prove_conformance(
    tmp_path: Path,
    name: str,
    env: dict[str, str],
    backend: FakeReplica,
    client: aredis.Redis | aredis.RedisCluster,
) -> None:
    # Every decision must be the store's, with the default store_timeout. (At 50 ms, a gateway
    # whose event loop was saturated on two shared cores timed out on a healthy Redis and fell
    # back to its in-process bucket, admitting up to 4 over the bound; hence the 250 ms
    # default, and this test checks that no decision fell back.)
    routes = plan_routes(backend.url)
    async with replicas(tmp_path, routes, env) as running:
        urls = [r.url for r in running]
        tenant, key = await tenant_key(urls[0], "shared")
        bucket = f"{env['GATEWAY_REDIS_PREFIX']}{{t:{tenant}}}:l:rate"
        forwarded_before = 0
        # The precondition (an offered load over 3x the rate) depends on the machine: a phase
        # whose callers the scheduler starved (other work on the 2 cores) is run again, at most
        # three times; every phase that counts is checked in full.
        start: list[float] = []  # T0 of each phase
        for _phase in range(3):

            async def ready() -> None:
                # the warm-up's tokens come back: a full bucket
                await asyncio.sleep(2 * BURST / RATE)
                start.append(await server_time(client, bucket))

            load = await hammer(urls, LOAD, {"X-API-Key": key}, ready)
            # T is measured on the store's clock, the one the bucket is decided on. T0: Redis TIME
            # read just before the first call of the load, the bucket full by then. T1: the
            # bucket's ``ts``, which the Lua script stamps with Redis TIME at every admission (a
            # refusal writes nothing), so the server time of the last one. Every admission of the
            # load lies in [T0, T1], where one bucket can admit at most BURST + RATE * (T1 - T0):
            # the ceiling is exact. The floor is not: a bucket that is full wastes what it refills,
            # so any pause in the offered load (the scheduler of a shared 2-core machine stalling
            # the callers or both replicas for 150 ms) costs admissions. A CI run measured 0.943
            # that way. The floor's job is to catch a split or double-counted bucket (about 0.5 of
            # the bound), so it sits at 90%, clear of both. The client's view
            # (first call sent .. last admitted answer received) holds every admission too, but
            # adds the answers' way back and mixes in the test's scheduling: reported only.
            ts = await client.hget(bucket, "ts")
            assert ts is not None
            window = float(ts) - start[-1]
            statuses = load.statuses()
            admitted, refused = statuses.get(200, 0), statuses.get(429, 0)
            bound = BURST + RATE * window
            sent = min(c.sent for c in load.calls)
            last = max(c.done for c in load.calls if c.status == 200)
            span = max(c.done for c in load.calls) - sent
            async with httpx.AsyncClient(timeout=10) as http:
                failures = [await store_failures(http, url) for url in urls]
            per_replica = [load.admitted(replica=i) for i in range(len(urls))]
            figures = {
                "admitted": admitted,
                "refused": refused,
                "bound": round(bound, 1),
                "ratio": round(admitted / bound, 4),
                "server_window_s": round(window, 4),
                "client_window_s": round(last - sent, 4),
                "client_bound": round(BURST + RATE * (last - sent), 1),
                "offered_per_s": round(len(load.calls) / span, 1),
                "admitted_per_replica": per_replica,
                "store_failures": sum(failures),
            }
            report(tmp_path, name, figures)
            assert set(statuses) <= {200, 429}, statuses
            assert failures == [0, 0], "some limits were decided without the store"
            assert admitted <= bound + 1e-6  # the ceiling is exact, whatever the offered load
            # every phase's warm-up, then its admitted calls, and nothing else reached the backend
            assert len(forwarded(backend)) == forwarded_before + CLIENTS + admitted
            forwarded_before = len(forwarded(backend))
            if len(load.calls) / span > 3 * RATE:
                break
        assert len(load.calls) / span > 3 * RATE, "the offered load must exceed the rate 3-fold"
        assert all(n > BURST / 4 for n in per_replica), "both replicas must have admitted calls"
        assert refused > admitted / 2
        assert admitted >= 0.9 * bound


async def test_two_replicas_on_one_redis_admit_what_one_bucket_would(
    tmp_path: Path, backend: FakeReplica, redis_url: str
) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await prove_conformance(tmp_path, "single-redis", gateway_env(redis_url), backend, client)
    finally:
        await client.aclose()


async def test_two_replicas_on_a_redis_cluster_admit_what_one_bucket_would(
    tmp_path: Path, backend: FakeReplica, redis_cluster_url: str
) -> None:
    url = "redis+cluster://" + redis_cluster_url.split("//", 1)[1].split("/", 1)[0]
    client = cluster_client(url)
    try:
        await prove_conformance(tmp_path, "redis-cluster", gateway_env(url), backend, client)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- Redis outage

ANON_RATE, ANON_BURST = 100.0, 20.0  # per client IP; every caller here is 127.0.0.1
KILL_AT, RESTART_AT, OUTAGE_LOAD = 0.7, 1.9, 3.0  # seconds into the load


def outage_routes(url: str, mode: str) -> str:
    anonymous = {"rate": f"{ANON_RATE:g}/s", "burst": int(ANON_BURST)}
    return plan_routes(
        url,
        rate_limits={"failure_mode": mode, "anonymous": anonymous},
        auth={"required": False},
    )


@dataclass
class Outage:
    """What the test saw around a Redis killed (SIGKILL) and restarted on the same port."""

    killed: float = math.nan  # time.perf_counter() just before the SIGKILL
    restarting: float = math.nan  # just before the new redis-server was started
    back: float = math.nan  # once it answered PING
    recovered: float = math.nan  # seconds from then until no call failed over any more
    healthz: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds) meanwhile


async def kill_and_restart(
    start_redis: StartRedis, server_port: int, process: subprocess.Popen[bytes], base: str
) -> Outage:
    """SIGKILL the redis-server at KILL_AT, probe /healthz during the outage, start a new one
    on the same port at RESTART_AT (both times from now), and time the way back to Redis while
    the load goes on."""
    outage, began = Outage(), time.perf_counter()
    await asyncio.sleep(KILL_AT)
    outage.killed = time.perf_counter()
    process.kill()
    await asyncio.to_thread(process.wait)
    async with httpx.AsyncClient(timeout=5) as client:
        while time.perf_counter() < began + RESTART_AT:
            asked = time.perf_counter()
            status = (await client.get(f"{base}/healthz")).status_code
            outage.healthz.append((status, time.perf_counter() - asked))
            await asyncio.sleep(0.2)
    outage.restarting = time.perf_counter()
    await asyncio.to_thread(start_redis, port=server_port)  # polls PING: off this loop
    outage.back = time.perf_counter()
    outage.recovered = await until_decided_by_redis(base)
    return outage


async def until_decided_by_redis(base: str, deadline: float = 10.0) -> float:
    """Seconds until the store-failure counter stops rising over a batch of calls of ours (and
    those of the load, if it is still running): every limit is decided by Redis again."""
    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while True:
            before = await store_failures(client, base)
            for _ in range(10):
                response = await client.post(INFER, json=V2)
                assert response.status_code in (200, 429), response.text
            if await store_failures(client, base) == before:
                return time.perf_counter() - began
            assert time.perf_counter() - began < deadline, "the limits never went back to Redis"
            await asyncio.sleep(0.1)


@dataclass
class OutageRun:
    gateway: Replica
    load: Load
    outage: Outage


@asynccontextmanager
async def through_an_outage(
    tmp_path: Path,
    routes: str,
    env: dict[str, str],
    server: RedisServer,
    start_redis: StartRedis,
) -> AsyncIterator[OutageRun]:
    """One gateway under load while its Redis is killed and restarted on the same port."""
    async with replicas(tmp_path, routes, env, 1) as running:
        (gateway,) = running
        watcher: list[asyncio.Task[Outage]] = []

        async def ready() -> None:
            watcher.append(
                asyncio.create_task(
                    kill_and_restart(start_redis, server.port, server.process, gateway.url)
                )
            )

        load = await hammer([gateway.url], OUTAGE_LOAD, ready=ready)
        yield OutageRun(gateway, load, await watcher[0])


async def test_fail_open_keeps_a_local_bucket_while_redis_is_down_and_recovers(
    tmp_path: Path, backend: FakeReplica, start_redis: StartRedis
) -> None:
    server = start_redis()
    env = gateway_env(server.url)
    routes = outage_routes(backend.url, "fail_open")
    async with through_an_outage(tmp_path, routes, env, server, start_redis) as run:
        gateway, load, outage = run.gateway, run.load, run.outage

        # a new tenant's burst, decided by Redis: exactly, and the bucket is in Redis
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:
            tenant, key = await tenant_key(gateway.url, "small")
            failures = await store_failures(client, gateway.url)
            statuses = [
                (await client.post(INFER, json=V2, headers={"X-API-Key": key})).status_code
                for _ in range(7)
            ]
            assert statuses == [200] * 5 + [429] * 2
            assert await store_failures(client, gateway.url) == failures
        bucket = f"{env['GATEWAY_REDIS_PREFIX']}{{t:{tenant}}}:l:rate"
        redis = aredis.Redis.from_url(server.url, decode_responses=True)
        try:
            tokens = await redis.hget(bucket, "tokens")
        finally:
            await redis.aclose()
        assert tokens is not None
        assert float(tokens) < 1

        window = outage.restarting - outage.killed
        during = load.admitted(start=outage.killed, end=outage.restarting)
        bound = ANON_BURST + ANON_RATE * window
        counts = load.statuses()
        report(
            tmp_path,
            "outage-fail-open",
            {
                "statuses": counts,
                "outage_s": round(window, 3),
                "admitted_during_outage": during,
                "outage_bound": round(bound, 1),
                "outage_ratio": round(during / bound, 4),
                "healthz_during_outage": [(st, round(s, 4)) for st, s in outage.healthz],
                "redis_restart_s": round(outage.back - outage.restarting, 3),
                "back_to_redis_within_s": round(outage.recovered, 3),
                "redis_tokens_after_new_tenants_burst": tokens,
            },
        )
        assert set(counts) <= {200, 429}, counts
        assert gateway.process.poll() is None
        assert outage.healthz
        assert all(status == 200 for status, _ in outage.healthz)
        assert during <= bound + 2  # a local bucket of the same limits: not unlimited
        assert during >= 0.5 * ANON_RATE * window  # and open: it did admit
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{gateway.url}/healthz")).status_code == 200


async def test_fail_closed_refuses_quickly_while_redis_is_down_and_recovers(
    tmp_path: Path, backend: FakeReplica, start_redis: StartRedis
) -> None:
    server = start_redis()
    env = gateway_env(server.url)
    routes = outage_routes(backend.url, "fail_closed")
    async with through_an_outage(tmp_path, routes, env, server, start_redis) as run:
        gateway, load, outage = run.gateway, run.load, run.outage

        inside = [c for c in load.calls if outage.killed <= c.sent and c.done <= outage.restarting]
        refused = [c for c in inside if c.status == 503]
        slowest = max(c.done - c.sent for c in refused)
        after = [c for c in load.calls if c.sent >= outage.back]
        counts = load.statuses()
        report(
            tmp_path,
            "outage-fail-closed",
            {
                "statuses": counts,
                "outage_s": round(outage.restarting - outage.killed, 3),
                "calls_during_outage": len(inside),
                "refused_503_during_outage": len(refused),
                "slowest_503_s": round(slowest, 4),
                "mean_503_s": round(sum(c.done - c.sent for c in refused) / len(refused), 4),
                "admitted_after_restart": sum(1 for c in after if c.status == 200),
                "back_to_redis_within_s": round(outage.recovered, 3),
            },
        )
        assert set(counts) <= {200, 429, 503}, counts
        assert inside
        assert all(c.status == 503 for c in inside)
        assert all(c.code == "limits_unavailable" for c in load.calls if c.status == 503)
        assert slowest < 2.0
        assert any(c.status == 200 for c in after)
        assert gateway.process.poll() is None
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.post(INFER, json=V2)).status_code in (200, 429)


# --------------------------------------------------------------------------- response cache


def cache_routes(one: str, two: str, **traffic: Any) -> str:
    """Model ``linear``, cached: version "1" on a fake at ``one``, "2" at ``two``."""
    served = {**versions("one", "1", inputs=[INPUT0]), **versions("two", "2", inputs=[INPUT0])}
    linear = model(served, deterministic=True, cache={"ttl": "60s"}, default="1", **traffic)
    return routes_yaml(
        {"one": backend("kserve", one), "two": backend("kserve", two)},
        {"linear": linear},
        auth={},
    )


def reply(version: int) -> bytes:
    """A v2 answer that says which version made it."""
    output = {"name": "y", "datatype": "FP32", "shape": [1], "data": [version]}
    return json.dumps({"outputs": [output]}).encode()


async def test_a_stampede_over_two_replicas_makes_one_backend_call(
    tmp_path: Path, redis_url: str
) -> None:
    slow = await FakeReplica(body=reply(1), delay=0.5).start()
    unused = await FakeReplica(body=reply(2)).start()
    try:
        text = cache_routes(slow.url, unused.url)
        async with replicas(tmp_path, text, gateway_env(redis_url)) as running:
            urls = [r.url for r in running]
            _, key = await tenant_key(urls[0])
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            async with httpx.AsyncClient(timeout=30) as client:
                started = time.perf_counter()
                answers = await asyncio.gather(
                    *(client.post(urls[i % 2] + INFER, content=BODY, headers=headers)
                      for i in range(50))
                )  # fmt: skip
                took = time.perf_counter() - started
            kinds: dict[str, int] = {}  # Cache-Status by replica
            for i, answer in enumerate(answers):
                kind = answer.headers.get("Cache-Status", "").removeprefix("model-gateway; ")
                kind = f"replica {i % 2}: " + re.sub(r"ttl=\d+", "ttl=…", kind)
                kinds[kind] = kinds.get(kind, 0) + 1
            report(
                tmp_path,
                "stampede",
                {
                    "requests": len(answers),
                    "backend_calls": len(forwarded(slow)),
                    "cache_status": kinds,
                    "seconds": round(took, 3),
                },
            )
            assert [a.status_code for a in answers] == [200] * 50
            assert len({a.content for a in answers}) == 1
            assert answers[0].json()["outputs"][0]["data"] == [1]
            assert forwarded(slow) == ["/v2/models/linear/infer"]  # one inference call
            assert not forwarded(unused)
    finally:
        await slow.stop()
        await unused.stop()


async def test_canary_versions_never_share_a_cache_entry(tmp_path: Path, redis_url: str) -> None:
    one = await FakeReplica(body=reply(1), delay=0.05).start()
    two = await FakeReplica(body=reply(2), delay=0.05).start()
    try:
        text = cache_routes(one.url, two.url, traffic={"1": 50, "2": 50})
        async with replicas(tmp_path, text, gateway_env(redis_url)) as running:
            urls = [r.url for r in running]
            _, key = await tenant_key(urls[0])
            headers = {"X-API-Key": key, "Content-Type": "application/json"}
            gate = asyncio.Semaphore(10)

            async def ask(client: httpx.AsyncClient, i: int) -> httpx.Response:
                async with gate:
                    return await client.post(urls[i % 2] + INFER, content=BODY, headers=headers)

            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(*(ask(client, i) for i in range(100)))
            pairs = [
                (a.headers["X-Model-Version"], a.json()["outputs"][0]["data"]) for a in answers
            ]
            seen = {version: pairs.count((version, [int(version)])) for version in ("1", "2")}
            report(
                tmp_path,
                "canary-cache",
                {
                    "answers_per_version": seen,
                    "backend_calls": {"1": len(forwarded(one)), "2": len(forwarded(two))},
                },
            )
            assert [a.status_code for a in answers] == [200] * 100
            assert all(body == [int(version)] for version, body in pairs), pairs
            assert seen["1"] > 0
            assert seen["2"] > 0
            assert len(forwarded(one)) == 1
            assert len(forwarded(two)) == 1
    finally:
        await one.stop()
        await two.stop()
