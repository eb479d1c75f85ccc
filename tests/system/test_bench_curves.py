"""The cost curves (``python -m bench.curves``): a routes.yaml of N models that the gateway
accepts, the model server that counts the readiness probes it receives, the routes curve run
small with every column, and API keys written straight into Redis in the store's own format,
which the gateway's own verifier accepts."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from bench.curves import keys, probes, routes
from bench.procs import processes
from gateway.auth.keys import KeyVerifier
from gateway.errors import Unauthorized
from gateway.store.redis.store import RedisStore
from tests.support import REPO, run_bench

GATEWAY = str(Path(sys.executable).with_name("gateway"))


@pytest.mark.parametrize("count", [10, 1_000])
def test_a_table_of_n_models_passes_gateway_check(tmp_path: Path, count: int) -> None:
    path = tmp_path / "routes.yaml"
    for renamed in (None, count - 1):
        text = routes.routes_yaml("http://127.0.0.1:9", count, renamed)
        path.write_text(text)
        done = subprocess.run(
            [GATEWAY, "check", str(path)], capture_output=True, text=True, cwd=REPO, timeout=120
        )
        assert done.returncode == 0, done.stderr + done.stdout
        models = yaml.safe_load(text)["models"]
        assert len(models) == count
        last = "r" + routes.model_name(count - 1)[1:] if renamed else routes.model_name(count - 1)
        assert last in models
        assert routes.model_name(0) in models
        natives = [m["versions"]["1"]["name"] for m in models.values()]
        assert natives == [routes.model_name(i) for i in range(count)]  # one server model each
    # the rename is a one-line change
    before = routes.routes_yaml("http://127.0.0.1:9", count).splitlines()
    after = routes.routes_yaml("http://127.0.0.1:9", count, count - 1).splitlines()
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1


@pytest.mark.anyio
async def test_keys_written_straight_into_redis_verify(redis_url: str) -> None:
    prefix = f"test-curves-{secrets.token_hex(4)}:"
    client = redis.Redis.from_url(redis_url)
    try:
        keys.write_keys(redis_url, 25, prefix=prefix)
        keys.write_keys(redis_url, 31, start=25, prefix=prefix)
        store = RedisStore.from_url(redis_url, prefix=prefix)
        try:
            verifier = KeyVerifier(store, keys.SECRET, cache_size=8)
            for i in (0, 9, 10, 24, 25, 30):
                record, tenant = await verifier.verify(keys.key_text(i))
                assert record.key_id == keys.key_id(i)
                assert tenant is not None
                assert tenant.name == keys.tenant_name(i) == record.tenant
            wrong = keys.key_text(3)[:-1] + ("A" if keys.key_text(3)[-1] != "A" else "B")
            with pytest.raises(Unauthorized):
                await verifier.verify(wrong)
            with pytest.raises(Unauthorized):  # never written
                await verifier.verify(keys.key_text(31))
            assert len(await store.list_keys(keys.tenant_name(0))) == keys.KEYS_PER_TENANT
            assert len(await store.list_tenants()) == 4  # 31 keys, 10 a tenant
        finally:
            await store.close()
    finally:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)
        client.close()


def test_the_model_server_counts_the_readiness_probes_it_answers() -> None:
    with processes("test-probes") as procs:
        server = probes.start(procs, [0])
        server.serve(["m00000", "m00001"])
        with httpx.Client(base_url=server.url, timeout=5) as client:
            start = time.time()
            probed = [
                client.get("/v2/health/ready"),
                client.get("/v2/models/m00001/versions/1/ready"),
                client.get("/v2/models/m00000/ready"),
                client.post("/v2/repository/index", json={"ready": True}),
            ]
            others = [
                client.get("/v2/health/live"),
                client.get("/v2/models/m00001/versions/1"),
                client.post("/v2/models/m00001/versions/1/infer", json={}),
            ]
            end = time.time() + 0.01
        assert [r.status_code for r in probed + others] == [200] * 7
        assert [m["name"] for m in probed[3].json()] == ["m00000", "m00001"]
        assert {m["state"] for m in probed[3].json()} == {"READY"}
        assert others[1].json()["inputs"][0]["name"] == "INPUT0"
        assert server.per_second(start, end) * (end - start) == pytest.approx(4)
        assert server.per_second(end, end + 1) == 0
        assert len(server.times()) == 4


def test_the_routes_curve_gives_every_column(tmp_path: Path) -> None:
    """The whole routes curve, small: 3 models, a short health interval so the probes show."""
    results = tmp_path / "routes.json"
    output = run_bench(
        "bench.curves", "--json", str(results), "routes", "--models", "3",
        "--seconds", "0.5", "--warmup", "0", "--concurrency", "2",
        "--health-interval", "200ms", "--probe-seconds", "1",
    )  # fmt: skip
    assert "probes/s starting" in output
    assert "probes/s idle" in output
    data = json.loads(results.read_text())
    assert (data["health_interval"], data["probe_seconds"], data["replicas"]) == ("200ms", 1, 1)
    assert data["gateway"] == "dev"  # this venv's gateway (--runtime: as the Dockerfile installs)
    [row] = data["rows"]
    assert row["models"] == 3
    for column in ("check_s", "ready_s", "reload_s", "rss_kib", "rss_after_kib"):
        assert row[column] > 0, (column, output)
    assert row["probes_start_per_s"] >= 0
    assert row["probes_per_s"] > 0, output  # readiness is checked at least once a second
    for which in ("first", "last"):
        assert row[f"{which}_p50_ms"] > 0, output
        assert row[f"{which}_cpu_us"] > 0, output
        assert row[f"{which}_rps"] > 0, output
