"""Memory stays flat over 20,000 requests, half of them errors (400 bad JSON, 404 unknown model,
422 a tensor that does not fit): the gateway's RSS after a warm-up of 2,000 and at the end."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import aiohttp
import pytest

from tests.fakes import REPLY, FakeReplica
from tests.reliability.load import BODY, JSON, report
from tests.support import INPUT0, backend, gateway_process, model, routes_yaml, versions

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

TOTAL, WARM_UP, SAMPLE_EVERY = 20_000, 2_000, 2_000
CONCURRENCY = 16
GROWTH_BOUND_KB = 5 * 1024  # 5 MB: a leak of 300 bytes a request over the 18,000 crosses it
MISFIT = {"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}

# (path, body, expected status): every other request valid, the others each kind of error
REQUESTS = [
    ("/v2/models/linear/infer", BODY, 200),
    ("/v2/models/linear/infer", b'{"inputs": [', 400),
    ("/v2/models/linear/infer", BODY, 200),
    ("/v2/models/nope/infer", BODY, 404),
    ("/v2/models/linear/infer", BODY, 200),
    ("/v2/models/linear/infer", json.dumps(MISFIT).encode(), 422),
]


def rss_kb(pid: int) -> int:
    """VmRSS of process ``pid``, in kB (/proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_memory_is_flat_over_20000_requests_half_of_them_errors(tmp_path: Path) -> None:
    fake = await FakeReplica(body=REPLY).start()
    routes = routes_yaml(
        {"fake": backend("kserve", fake.url)},
        {"linear": model(versions("fake", "1", inputs=[INPUT0]))},
    )
    statuses: dict[int, int] = {}
    unexpected: list[tuple[str, int, int]] = []
    samples: dict[int, int] = {}  # requests answered -> RSS in kB
    try:
        async with gateway_process(tmp_path, routes, {"GATEWAY_LOG_LEVEL": "warning"}) as gateway:
            pid = gateway.process.pid
            samples[0] = rss_kb(pid)
            numbers = itertools.count()
            answered = 0
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                timeout=aiohttp.ClientTimeout(total=10),
                headers=JSON,
            )

            async def worker() -> None:
                nonlocal answered
                while (n := next(numbers)) < TOTAL:
                    path, body, expected = REQUESTS[n % len(REQUESTS)]
                    async with session.post(gateway.url + path, data=body) as response:
                        await response.read()
                        status = response.status
                    statuses[status] = statuses.get(status, 0) + 1
                    if status != expected:
                        unexpected.append((path, expected, status))
                    answered += 1
                    if answered % SAMPLE_EVERY == 0:
                        samples[answered] = rss_kb(pid)

            try:
                await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), 240)
            finally:
                await session.close()
            samples[TOTAL] = rss_kb(pid)
    finally:
        await fake.stop()

    growth = samples[TOTAL] - samples[WARM_UP]
    report(
        "memory over 20,000 requests, half errors",
        {
            "statuses": dict(sorted(statuses.items())),
            "rss_start_kb": samples[0],
            "rss_after_warm_up_kb": samples[WARM_UP],
            "rss_end_kb": samples[TOTAL],
            "growth_kb": growth,
            "growth_pct": round(100 * growth / samples[WARM_UP], 2),
            "samples_kb": [samples[k] for k in sorted(samples)],
        },
    )
    assert not unexpected, unexpected[:10]
    assert sum(statuses.values()) == TOTAL
    assert statuses[200] == TOTAL // 2
    assert growth < GROWTH_BOUND_KB
