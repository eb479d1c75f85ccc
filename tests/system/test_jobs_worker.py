"""``gateway worker`` runs the jobs a ``gateway serve`` without workers accepted (both real
processes on one real Redis), and ``gateway jobs ...`` reads and cancels them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_TOKEN, GATEWAY, V2, demo_routes, gateway_process

pytestmark = pytest.mark.anyio
ASYNC = {"Prefer": "respond-async"}


def cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [GATEWAY, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    return done.returncode, done.stdout


async def test_gateway_worker_runs_the_jobs_and_the_cli_shows_them(
    tmp_path: Path, demo_backend: str, redis_url: str, redis_prefix: str
) -> None:
    routes = demo_routes(demo_backend)
    env = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": redis_prefix,
        "GATEWAY_SECRET": "s-" + uuid.uuid4().hex,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_LEVEL": "warning",
    }
    front = {**env, "GATEWAY_JOB_WORKERS": "false"}
    async with (
        gateway_process(tmp_path, routes, front) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
    ):
        first = (await client.post("/v2/models/linear/infer", json=V2, headers=ASYNC)).json()
        second = (await client.post("/v2/models/linear/infer", json=V2, headers=ASYNC)).json()
        await asyncio.sleep(0.5)  # no worker here: they stay queued
        assert (await client.get(f"/jobs/{first['id']}")).json()["status"] == "queued"
        admin = {**os.environ, **env, "GATEWAY_ADMIN_URL": gateway.url}
        code, out = await asyncio.to_thread(cli, "jobs", "cancel", second["id"], env=admin)
        assert code == 0
        assert json.loads(out)["status"] == "cancelled"

        config = tmp_path / "worker-routes.yaml"
        config.write_text(routes, encoding="utf-8")
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [GATEWAY, "worker", "--config", str(config)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(30):
                while (await client.get(f"/jobs/{first['id']}")).json()["status"] != "succeeded":
                    assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                    await asyncio.sleep(0.1)
            live = await client.post("/v2/models/linear/infer", json=V2)
            assert (await client.get(f"/jobs/{first['id']}")).json()["result"] == live.json()
        finally:
            worker.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(worker.wait, 15)
            log.close()
        assert exit_code == 0

        code, out = await asyncio.to_thread(cli, "jobs", "list", "--status", "succeeded", env=admin)
        assert code == 0
        assert [j["id"] for j in json.loads(out)["jobs"]] == [first["id"]]
        code, out = await asyncio.to_thread(cli, "jobs", "show", first["id"], env=admin)
        assert json.loads(out)["result"] == live.json()
        code, out = await asyncio.to_thread(cli, "jobs", "dead", env=admin)
        assert (code, json.loads(out)) == (0, {"dead": []})
        code, _ = await asyncio.to_thread(cli, "jobs", "show", "j-nope", env=admin)
        assert code == 1
