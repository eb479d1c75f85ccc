"""The cost curves' helpers (``python -m bench.curves``): a routes.yaml of N models that the
gateway accepts, and API keys written straight into Redis in the store's own format, which
the gateway's own verifier accepts."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from bench.curves import keys, routes
from gateway.auth.keys import KeyVerifier
from gateway.errors import Unauthorized
from gateway.store import RedisStore
from tests.support import REPO

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
