"""The admin API's lists by name a page at a time (models, rollouts, the backends' status,
shadow traffic) and the CLI that reads them: ``limit`` and ``cursor`` in, ``next_cursor`` out,
the whole list in one answer when it is small (as before pagination)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gateway.cli.main import main
from tests.conftest import StartGateway
from tests.fakes import FakeReplica, dead_url
from tests.support import ADMIN, ADMIN_TOKEN, backend, eventually, model, routes_yaml, versions

pytestmark = pytest.mark.anyio

UP = [f"up{i:02d}" for i in range(12)]
DOWN = ["down0", "down1", "down2"]
ROLLED = ["up03", "up07", "up11"]  # models with a rollout
SHADOWED = ["up01", "up02"]  # models with a shadow version


def table(live: str) -> str:
    """Models on a replica that answers (``up..``) and on one where nothing listens
    (``down..``), some with a rollout or a shadow, and 3 backends."""
    rollout = {"canary": "2", "steps": [50, 100], "interval": "1h"}
    models: dict[str, Any] = {}
    for name in UP:
        options: dict[str, Any] = {"default": "1"}
        if name in ROLLED:
            options["rollout"] = rollout
        if name in SHADOWED:
            options["shadow"] = {"version": "2", "share": "1%"}
        models[name] = model(versions("up", "1", "2"), **options)
    for name in DOWN:
        models[name] = model(versions("down", "1"))
    fast = {"interval": "100ms", "unhealthy_after": 1}
    backends = {
        "up": backend("kserve", live, health=fast),
        "down": backend("kserve", dead_url(), health=fast),
        "spare": backend("kserve", live),
    }
    return routes_yaml(backends, models)


async def pages(client: httpx.AsyncClient, path: str, key: str, limit: int) -> list[Any]:
    """Every page of ``path`` at ``limit``, following next_cursor."""
    found: list[Any] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await client.get(path, params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        body = response.json()
        items = body[key]
        assert len(items) <= limit
        found.append(items)
        if body["next_cursor"] is None:
            return found
        params["cursor"] = body["next_cursor"]


async def test_models_rollouts_backends_and_shadows_come_a_page_at_a_time(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    gateway = await start_gateway(table(backend.url), admin_token=ADMIN_TOKEN)
    client = gateway.client
    assert (await client.get("/admin/models")).status_code == 401

    whole = (await client.get("/admin/models", headers=ADMIN)).json()
    assert whole["next_cursor"] is None  # small: the whole list in one answer
    assert [m["name"] for m in whole["models"]] == sorted(UP + DOWN)
    first = next(m for m in whole["models"] if m["name"] == "up00")
    assert first["default"] == "1"
    assert [(v["version"], v["backend"]) for v in first["versions"]] == [("1", "up"), ("2", "up")]

    async def down_is_not_ready() -> bool:
        listed = (await client.get("/admin/models", headers=ADMIN)).json()["models"]
        ready = {m["name"]: {v["ready"] for v in m["versions"]} for m in listed}
        assert all(ready[name] == {True} for name in UP)
        return all(ready[name] == {False} for name in DOWN)

    await eventually(down_is_not_ready)

    walked = await pages(client, "/admin/models", "models", 4)
    assert [len(p) for p in walked] == [4, 4, 4, 3]
    assert [m["name"] for p in walked for m in p] == sorted(UP + DOWN)

    rollouts = await pages(client, "/admin/rollouts", "rollouts", 2)
    assert [[r["model"] for r in p] for p in rollouts] == [ROLLED[:2], ROLLED[2:]]
    assert (await client.get("/admin/rollouts", headers=ADMIN)).json()["next_cursor"] is None

    backends = await pages(client, "/admin/config", "backends", 2)
    assert [list(p) for p in backends] == [["down", "spare"], ["up"]]
    config = (await client.get("/admin/config", params={"limit": 1}, headers=ADMIN)).json()
    assert config["status"]["last_ok"] is True  # the reload status comes with every page
    assert list(config["backends"]) == ["down"]

    shadows = await pages(client, "/admin/shadow", "configured", 1)
    assert [list(p) for p in shadows] == [[name] for name in SHADOWED]

    for path in ("/admin/models", "/admin/rollouts", "/admin/config", "/admin/shadow"):
        for limit in ("0", "10001", "x", "-1"):
            refused = await client.get(path, params={"limit": limit}, headers=ADMIN)
            assert refused.status_code == 400, (path, limit)
        past = await client.get(path, params={"cursor": "~"}, headers=ADMIN)  # after every name
        assert past.status_code == 200
        assert past.json()["next_cursor"] is None


async def test_the_cli_prints_a_page_or_follows_every_page(
    start_gateway: StartGateway,
    backend: FakeReplica,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = await start_gateway(table(backend.url), admin_token=ADMIN_TOKEN)
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)

    async def cli(*args: str) -> tuple[Any, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*args, "--admin-url", gateway.url])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out), err

    page, err = await cli("models", "list", "--limit", "5")
    assert [m["name"] for m in page["models"]] == sorted(UP + DOWN)[:5]
    assert page["next_cursor"] == "up01"
    assert "--cursor up01" in err
    page, err = await cli("models", "list", "--limit", "5", "--cursor", "up01")
    assert [m["name"] for m in page["models"]] == sorted(UP + DOWN)[5:10]
    every, err = await cli("models", "list", "--limit", "4", "--all")
    assert [m["name"] for m in every["models"]] == sorted(UP + DOWN)
    assert every["next_cursor"] is None
    assert err == ""
    default, _ = await cli("models", "list")  # the gateway's page size: all of these
    assert len(default["models"]) == len(UP + DOWN)

    rollouts, _ = await cli("rollout", "status", "--limit", "1", "--all")
    assert [r["model"] for r in rollouts["rollouts"]] == ROLLED
    one, _ = await cli("rollout", "status", "up07")
    assert one["model"] == "up07"

    config, _ = await cli("config", "status", "--limit", "2", "--all")
    assert sorted(config["backends"]) == ["down", "spare", "up"]
    assert config["status"]["last_ok"] is True

    jobs, _ = await cli("jobs", "list", "--all")
    assert jobs == {"jobs": [], "next_cursor": None}

    capsys.readouterr()
    code = await asyncio.to_thread(
        main, ["models", "list", "--limit", "0", "--admin-url", gateway.url]
    )
    assert code == 1
    assert "400" in capsys.readouterr().err
