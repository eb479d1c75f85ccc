"""Hot reload by admin call, file watch and SIGHUP; last-known-good; in-flight requests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica
from tests.support import backend, demo_routes, eventually, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
V1_BODY = {"instances": [[1, 2, 3, 4]]}


async def serves(gateway: RunningGateway, model: str) -> bool:
    response = await gateway.client.post(f"/v1/models/{model}:predict", json=V1_BODY)
    return response.status_code == 200


async def test_invalid_file_keeps_the_last_good_table(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), admin_token=ADMIN["Authorization"][7:])
    gateway.routes.write_text(demo_routes(demo_backend, timeout="soon"), encoding="utf-8")
    rejected = await gateway.client.post("/admin/config/reload", headers=ADMIN)
    assert rejected.status_code == 422
    status = rejected.json()
    assert status["last_ok"] is False
    assert status["last_errors"] == [
        "line 5: backends.demo.timeout: bad duration 'soon': use e.g. '250ms', '2s', '5m', '1h'"
    ]
    assert await serves(gateway, "linear")  # still on the good table
    metrics = (await gateway.client.get("/metrics")).text
    assert "gateway_config_last_reload_successful 0.0" in metrics
    assert 'gateway_config_reloads_total{result="failure"} 1.0' in metrics
    shown = (await gateway.client.get("/admin/config", headers=ADMIN)).json()
    assert shown["status"]["last_ok"] is False
    assert (await gateway.client.get("/readyz")).json()["last_reload_ok"] is False

    gateway.routes.write_text(demo_routes(demo_backend, "renamed"), encoding="utf-8")
    applied = await gateway.client.post("/admin/config/reload", headers=ADMIN)
    assert applied.status_code == 200
    assert "- model linear" in applied.json()["last_changes"]
    assert await serves(gateway, "renamed")
    assert not await serves(gateway, "linear")
    metrics = (await gateway.client.get("/metrics")).text
    assert "gateway_config_last_reload_successful 1.0" in metrics


async def test_file_changes_are_picked_up(start_gateway: StartGateway, demo_backend: str) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), watch=True)
    await asyncio.sleep(0.3)  # let the watcher start
    replacement = gateway.routes.with_suffix(".new")
    replacement.write_text(demo_routes(demo_backend, "watched"))
    os.replace(replacement, gateway.routes)  # as editors and config managers do
    await eventually(lambda: serves(gateway, "watched"))


async def test_sighup_reloads(start_gateway: StartGateway, demo_backend: str) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    gateway.routes.write_text(demo_routes(demo_backend, "hupped"))
    os.kill(os.getpid(), signal.SIGHUP)
    await eventually(lambda: serves(gateway, "hupped"))


async def test_in_flight_requests_finish_on_the_table_they_started_with(
    start_gateway: StartGateway,
) -> None:
    body = b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [%d]}]}'
    old = await FakeReplica(body=body % 1, delay=1.0).start()
    new = await FakeReplica(body=body % 2).start()

    def routes(url: str) -> str:
        x = {"name": "x", "datatype": "FP32", "shape": [-1]}
        return routes_yaml(
            {"b": backend("kserve", url)}, {"m": model(versions("b", "1", inputs=[x]))}
        )

    try:
        gateway = await start_gateway(routes(old.url), admin_token="t0ken")
        request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [0]}]}
        slow = asyncio.create_task(gateway.client.post("/v2/models/m/infer", json=request))
        # the slow call reached the old replica (its readiness probes aside)
        await eventually(
            lambda: asyncio.sleep(0, result=any(r.path.endswith("/infer") for r in old.seen))
        )
        gateway.routes.write_text(routes(new.url))
        reloaded = await gateway.client.post(
            "/admin/config/reload", headers={"Authorization": "Bearer t0ken"}
        )
        assert reloaded.json()["last_changes"]
        fresh = await gateway.client.post("/v2/models/m/infer", json=request)
        assert fresh.json()["outputs"][0]["data"] == [2]
        assert not slow.done()
        assert (await slow).json()["outputs"][0]["data"] == [1]
    finally:
        await old.stop()
        await new.stop()


async def test_configmap_symlink_swaps_are_picked_up_every_time(
    start_gateway: StartGateway, demo_backend: str, tmp_path: Path
) -> None:
    """The kubelet's update: a new timestamped folder, ``..data`` swapped to it, the old removed."""
    mount = tmp_path / "mount"
    mount.mkdir()

    def publish(generation: int, name: str) -> None:
        folder = mount / f"..gen_{generation}"
        folder.mkdir()
        (folder / "routes.yaml").write_text(demo_routes(demo_backend, name))
        (mount / "..data_tmp").symlink_to(folder.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        if generation > 0:
            shutil.rmtree(mount / f"..gen_{generation - 1}")

    publish(0, "first")
    (mount / "routes.yaml").symlink_to("..data/routes.yaml")
    gateway = await start_gateway(
        demo_routes(demo_backend), watch=True, config=mount / "routes.yaml"
    )
    assert await serves(gateway, "first")
    await asyncio.sleep(0.3)  # let the watcher start
    for generation, name in enumerate(["second", "third", "fourth"], start=1):
        publish(generation, name)
        await eventually(lambda name=name: serves(gateway, name))  # type: ignore[misc]
