"""Proof, on two real `gateway serve` processes sharing one Redis and real (fake) model servers,
that a rollout does what it promises: a healthy canary advances step by step to 100 % and
completes, with both replicas applying the same weights throughout (any difference gone within a
second); a canary that answers 500 is rolled back within one interval, after which callers see
no more errors.

The timings are printed (run with ``-s``) and written to ``figures.json`` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes import REPLY, FakeReplica, health_check
from tests.support import ADMIN, INPUT0, V2, backend, model, routes_yaml
from tests.system.test_limits_proof import gateway_env, replicas, report

pytestmark = pytest.mark.anyio
INFER = "/v2/models/linear/infer"
WAIT = 60.0  # bound on any wait for the rollout to get somewhere


@dataclass
class FailingInfer(FakeReplica):
    """Answers inference (POST) with 500; health and metadata (GET) stay fine, so the version
    keeps its healthy replicas and its share of the traffic."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if (checked := health_check(request)) is not None:
            return checked
        if request.method == "POST":
            self.calls += 1
            return web.Response(
                status=500, body=b'{"error": "boom"}', content_type="application/json"
            )
        return web.Response(status=200, body=self.body, content_type="application/json")


def routes(v1: str, v2: str, rollout: dict[str, Any] | None = None) -> str:
    """Model ``linear``: version "1" on a fake at ``v1``, "2" at ``v2``; ``rollout``, if any,
    as its rollout."""
    served = {
        "1": {"backend": "one", "inputs": [INPUT0]},
        "2": {"backend": "two", "inputs": [INPUT0]},
    }
    linear = model(served, default="1", rollout=rollout)
    return routes_yaml(
        {"one": backend("kserve", v1), "two": backend("kserve", v2)}, {"linear": linear}
    )


@dataclass
class Seen:
    """What callers and the status pollers saw, on the test's clock (time.monotonic): a call
    at the time it was sent, a poll at the time it was answered."""

    calls: list[tuple[float, int, int, str | None]] = field(default_factory=list)
    polls: list[tuple[float, Any, Any, str, str]] = field(default_factory=list)

    def mismatches(self) -> list[tuple[float, float]]:
        """(start, end) of each stretch of polls where the replicas applied different weights."""
        spans: list[tuple[float, float]] = []
        start: float | None = None
        for at, a, b, _, _ in self.polls:
            if a != b and start is None:
                start = at
            elif a == b and start is not None:
                spans.append((start, at))
                start = None
        if start is not None:
            spans.append((start, self.polls[-1][0]))
        return spans


@asynccontextmanager
async def watching(urls: list[str], seen: Seen, callers: int = 6) -> AsyncIterator[None]:
    """Callers sending inference to the replicas in turn, and a poller reading both replicas'
    rollout status at once, until the block ends."""
    stop = asyncio.Event()

    async def caller(n: int, client: httpx.AsyncClient) -> None:
        i = n
        while not stop.is_set():
            replica = i % len(urls)
            i += 1
            sent = time.monotonic()  # a call counts from when it was sent: one in flight
            response = await client.post(f"{urls[replica]}{INFER}", json=V2)  # at a switch
            version = response.headers.get("x-model-version")  # may still end on the old side
            seen.calls.append((sent, replica, response.status_code, version))

    async def poller(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            a, b = await asyncio.gather(
                *(client.get(f"{url}/admin/rollouts/linear", headers=ADMIN) for url in urls)
            )
            ja, jb = a.json(), b.json()
            seen.polls.append(
                (
                    time.monotonic(),
                    ja.get("applied_weights"),
                    jb.get("applied_weights"),
                    ja.get("status", "?"),
                    jb.get("status", "?"),
                )
            )
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(timeout=10) as client:
        tasks = [asyncio.create_task(caller(n, client)) for n in range(callers)]
        tasks.append(asyncio.create_task(poller(client)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def wait_until(seen: Seen, what: str, check: Any) -> float:
    """Bounded wait until ``check(last poll)``; when it held (test clock)."""
    deadline = time.monotonic() + WAIT
    while not (seen.polls and check(seen.polls[-1])):
        if time.monotonic() > deadline:
            tail = seen.polls[-3:]
            pytest.fail(f"the rollout never got to {what} within {WAIT} s; last polls: {tail}")
        await asyncio.sleep(0.02)
    return seen.polls[-1][0]


async def events(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/admin/rollouts/linear/events", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return list(reversed(found))


async def test_a_healthy_canary_advances_to_100_percent_alike_on_both_replicas(
    tmp_path: Path, redis_url: str, backend: FakeReplica
) -> None:
    canary = await FakeReplica(body=REPLY).start()
    rollout = {
        "canary": "2",
        "steps": [5, 25, 50, 100],
        "interval": "500ms",
        "gates": {"max_error_rate": "1%", "max_p99": "2s", "min_requests": 5},
    }
    try:
        text = routes(backend.url, canary.url, rollout)
        async with replicas(tmp_path, text, gateway_env(redis_url)) as running:
            urls = [r.url for r in running]
            seen = Seen()
            async with watching(urls, seen):
                done = await wait_until(
                    seen, "completed on both", lambda p: p[3] == p[4] == "completed"
                )
                await wait_until(  # the status is shared; each replica applies it next tick
                    seen, "100% canary applied on both", lambda p: p[1] == p[2] == {"2": 100}
                )
            figures = {
                "seconds_to_complete": round(done - seen.polls[0][0], 2),
                "calls": len(seen.calls),
                "polls": len(seen.polls),
                "mismatched_polls": sum(1 for _, a, b, _, _ in seen.polls if a != b),
                "longest_mismatch_s": round(
                    max((end - start for start, end in seen.mismatches()), default=0.0), 3
                ),
            }
            report(tmp_path, "healthy canary", figures)
            for start, end in seen.mismatches():
                assert end - start < 1.0, f"the replicas' weights differed for {end - start:.2f} s"
            applied_a = [a for _, a, _, _, _ in seen.polls]
            applied_b = [b for _, _, b, _, _ in seen.polls]
            expected = [{"1": 95, "2": 5}, {"1": 75, "2": 25}, {"1": 50, "2": 50}, {"2": 100}]
            for applied in (applied_a, applied_b):
                distinct = [w for i, w in enumerate(applied) if i == 0 or w != applied[i - 1]]
                assert distinct[-4:] == expected, distinct
            assert {c[3] for c in seen.calls} == {"1", "2"}
            assert all(status == 200 for _, _, status, _ in seen.calls)
            log = await events(urls[1])
            moves = [e for e in log if not e["reason"].startswith("waiting for traffic")]
            assert [e["to"] for e in moves] == ["running"] * 4 + ["completed"]
            assert moves[0]["reason"] == "started"
            assert all("gates passed" in e["reason"] for e in moves[1:]), moves
            async with httpx.AsyncClient(timeout=10) as client:
                states = [
                    (await client.get(f"{url}/admin/rollouts/linear", headers=ADMIN)).json()
                    for url in urls
                ]
                assert sum(s["driver"] for s in states) == 1  # one replica drives
                for url in urls:  # completed: every call goes to the canary
                    for _ in range(10):
                        response = await client.post(f"{url}{INFER}", json=V2)
                        assert response.headers["x-model-version"] == "2"
    finally:
        await canary.stop()


async def test_a_failing_canary_is_rolled_back_within_one_interval(
    tmp_path: Path, redis_url: str, backend: FakeReplica
) -> None:
    canary = await FailingInfer(body=REPLY).start()
    interval = 1.0
    rollout = {
        "canary": "2",
        "steps": [50, 100],
        "interval": f"{interval}s",
        "gates": {"max_error_rate": "10%", "min_requests": 5},
    }
    try:
        config = routes(backend.url, canary.url)  # no rollout yet: traffic flows first
        async with replicas(tmp_path, config, gateway_env(redis_url)) as running:
            urls = [r.url for r in running]
            path = next(tmp_path.glob("routes-*.yaml"))  # noqa: ASYNC240 - a tmp dir listing
            seen = Seen()
            async with watching(urls, seen), httpx.AsyncClient(timeout=10) as client:
                await wait_until(seen, "serving", lambda p: p[1] is None and len(seen.calls) > 20)
                path.write_text(routes(backend.url, canary.url, rollout))
                for url in urls:
                    reloaded = await client.post(f"{url}/admin/config/reload", headers=ADMIN)
                    assert reloaded.status_code == 200, reloaded.text
                # The status is the shared state; each replica applies it at its next tick.
                back = await wait_until(
                    seen, "rolled back on both", lambda p: p[3] == p[4] == "rolled_back"
                )
                applied = await wait_until(
                    seen, "stable 100% applied on both", lambda p: p[1] == p[2] == {"1": 100}
                )
                after = time.monotonic()
                await asyncio.sleep(0.5)  # callers keep calling: every call now goes to "1"
            errors = [c for c in seen.calls if c[2] != 200]
            assert errors, "the canary never answered a caller"
            first_error = errors[0][0]
            late = [c for c in seen.calls if c[0] > after and (c[2] != 200 or c[3] != "1")]
            assert not late, f"callers still reached the canary after the rollback: {late[:5]}"
            log = await events(urls[0])
            assert [(e["from"], e["to"]) for e in log] == [
                (None, "running"),
                ("running", "rolled_back"),
            ]
            assert log[1]["reason"].startswith("gate failed at 50%: error rate")
            on_driver = log[1]["at"] - log[0]["at"]  # the driver's clock: start → rollback
            figures = {
                "interval_s": interval,
                "start_to_rollback_on_driver_s": round(on_driver, 3),
                "first_error_to_rollback_seen_on_both_s": round(back - first_error, 3),
                "first_error_to_stable_applied_on_both_s": round(applied - first_error, 3),
                "errors_seen_by_callers": len(errors),
                "last_error_after_first_s": round(errors[-1][0] - first_error, 3),
            }
            report(tmp_path, "failing canary", figures)
            assert on_driver < interval, f"rolled back {on_driver:.2f} s into a {interval} s step"
    finally:
        await canary.stop()
