"""Stores of every kind for the store tests: in memory, on Redis, on a three-node Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aredis

from gateway.store import MemoryStore, Store
from gateway.store.redis.store import RedisStore

MakeStore = Callable[..., Awaitable[Store]]
WAIT = 10.0  # bound on any single wait for a message; a hang fails instead of stalling the run


@pytest.fixture(params=["memory", "redis", "cluster"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrized kind (keyword options pass through); closed after.
    Redis stores of one test share their keys, as gateway replicas do."""
    async with _stores(request) as make:
        yield make


@pytest.fixture(params=["redis", "cluster"])
async def make_redis_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Like :func:`make_store`, Redis and Redis Cluster only."""
    async with _stores(request) as make:
        yield make


@asynccontextmanager
async def _stores(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    kind: str = request.param
    made: list[Store] = []
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
    elif kind == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        prefix = f"gwtest:{uuid.uuid4().hex[:8]}:"  # the cluster is thrown away with the session

    async def make(**options: Any) -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(**options)
        elif kind == "redis":
            store = RedisStore.from_url(url, prefix=prefix, **options)
        else:
            client = aredis.RedisCluster.from_url(url, decode_responses=True)
            await client.initialize()  # redis-py 8.1 races if 50 first calls initialize it
            store = RedisStore(client, prefix=prefix, **options)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    yield store
    await store.close()
