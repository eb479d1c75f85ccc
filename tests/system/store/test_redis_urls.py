"""``RedisStore.from_url`` over ``rediss://`` and ``unix://``, with a password and a database:
both the redis-py pool (tenants) and the lane (limits and cache) connect as the URL says."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import redis.asyncio as aredis

from gateway.store import Limit, Tenant
from gateway.store.redis.store import RedisStore
from tests.redis_plugin import RedisServer, StartRedis, tls_options

pytestmark = pytest.mark.anyio

BOUND = 10.0


async def use(store: RedisStore) -> None:
    """A tenant through the pool, a take and a cache entry through the lane."""
    with anyio.fail_after(BOUND):
        await store.put_tenant(Tenant(name="acme", plan="free"))
        assert (await store.get_tenant("acme")) is not None
        bucket = [Limit("t:acme", "rate", "bucket", 10, rate=1)]
        verdict, value = await store.take(bucket, cache=("t:acme", "k"))
        assert verdict.admitted
        assert value is None
        await store.cache_set("t:acme", "k", b"entry", 60)
        assert await store.cache_get("t:acme", "k") == b"entry"


async def with_password(server: RedisServer, password: str) -> None:
    async with aredis.Redis(port=server.port) as setup:
        await setup.config_set("requirepass", password)


async def test_rediss_with_a_password(start_redis: StartRedis, tmp_path: Path) -> None:
    ca, port, options = tls_options(tmp_path / "pki")
    server = start_redis(*options)
    await with_password(server, "s3cret")
    store = RedisStore.from_url(f"rediss://:s3cret@127.0.0.1:{port}/2?ssl_ca_certs={ca.cert}")
    try:
        await use(store)
    finally:
        await store.close()
    async with aredis.Redis(port=server.port, password="s3cret", db=2) as plain:
        assert await plain.get("gw:{t:acme}:c:k") == b"entry"  # in database 2


async def test_unix_socket(start_redis: StartRedis, tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = start_redis("--unixsocket", str(path), "--unixsocketperm", "700")
    store = RedisStore.from_url(f"unix://{path}?db=3")
    try:
        await use(store)
    finally:
        await store.close()
    async with aredis.Redis(port=server.port, db=3) as plain:
        assert await plain.get("gw:{t:acme}:c:k") == b"entry"
