"""A 10,000-model routes.yaml reloaded under steady load (issue 16): a real `gateway serve`
watching its file, the demo model server behind it; a one-line change (a model renamed) is
written while four clients call three unchanged models. No request fails, the new name
answers, the old one is gone, and the reload was one success. Bounded and loopback only: the
load stops once the change is live, or after 60 s."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.support import V2
from tests.system.test_reliability_logs_reload import _reloads, gateway_serve, send

pytestmark = pytest.mark.anyio
COUNT = 10_000


def routes(url: str, renamed: int | None = None) -> str:
    """``COUNT`` models on the demo server's ``linear``, one line each (as operators and
    generators write many models); ``renamed``: that model is ``r<number>``."""
    lines = [
        "backends:\n",
        f"  demo: {{kind: triton, urls: ['{url}'], health: {{interval: 60s}}}}\n",
        "models:\n",
    ]
    for i in range(COUNT):
        name = f"{'r' if i == renamed else 'm'}{i:05d}"
        lines.append(
            f'  {name}: {{versions: {{"1": {{backend: demo, name: linear, version: "1"}}}}}}\n'
        )
    return "".join(lines)


async def test_a_one_line_change_to_10000_models_under_load_loses_no_request(
    tmp_path: Path, demo_backend: str
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(routes(demo_backend), encoding="utf-8")
    unchanged = ["m00000", "m05000", "m09998"]
    requests = failures = 0
    stop = asyncio.Event()

    async def steady_load(base: str) -> None:
        nonlocal requests, failures
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                batch = [
                    send(client, f"{base}/v2/models/{unchanged[i % 3]}/infer") for i in range(4)
                ]
                ok = await asyncio.gather(*batch)
                requests += len(ok)
                failures += ok.count(False)

    with (tmp_path / "gateway.log").open("wb") as log:
        async with gateway_serve(config, log) as served:
            load = asyncio.create_task(steady_load(served.url))
            try:
                async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                    await asyncio.sleep(0.5)  # the load is running, the watcher too
                    before = _reloads((await client.get("/metrics")).text, "success")
                    fresh = tmp_path / "routes.new"
                    fresh.write_text(routes(demo_backend, renamed=COUNT - 1), encoding="utf-8")
                    written = time.monotonic()
                    os.replace(fresh, config)
                    while (
                        await client.post("/v2/models/r09999/infer", json=V2)
                    ).status_code != 200:
                        assert time.monotonic() < written + 60, "the change was not applied"
                        await asyncio.sleep(0.01)
                    applied = time.monotonic() - written
                    await asyncio.sleep(0.5)  # load after the change, on the new table
                    gone = await client.post("/v2/models/m09999/infer", json=V2)
                    metrics = (await client.get("/metrics")).text
            finally:
                stop.set()
                await load
    print(
        f"\n{COUNT} models, one line changed under load: applied {applied * 1000:.0f} ms after "
        f"the write (watcher included); {requests} requests, {failures} failed"
    )
    assert failures == 0
    assert requests > 0
    assert gone.status_code == 404
    assert _reloads(metrics, "success") == before + 1
