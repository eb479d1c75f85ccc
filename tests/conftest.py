"""Shared fixtures: a real gateway on a loopback port, in this test's event loop."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.demo import demo_model_app
from gateway.settings import Settings
from tests.fakes import REPLY, FakeReplica
from tests.support import free_port

pytest_plugins = [
    "tests.servers.plugin",
    "tests.doubles.plugin",
    "tests.redis_plugin",
    "tests.oidc.plugin",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def backend() -> AsyncIterator[FakeReplica]:
    """A KServe-v2-shaped fake model server answering ``REPLY``, counting what reaches it."""
    fake = await FakeReplica(body=REPLY).start()
    yield fake
    await fake.stop()


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Gateway settings for each Store: the in-memory default and a real Redis (own prefix)."""
    if request.param == "memory":
        return {}
    url = request.getfixturevalue("redis_url")
    return {"redis_url": url, "redis_prefix": f"gwtest:{uuid.uuid4().hex[:8]}:"}


@dataclass
class RunningGateway:
    url: str
    routes: Path
    client: httpx.AsyncClient
    server: uvicorn.Server
    task: asyncio.Task[None] = field(repr=False)


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    """Start a gateway (uvicorn, real socket) on ``routes`` text; stopped at teardown."""
    running: list[RunningGateway] = []
    counter = itertools.count()

    async def start(routes: str, **settings: Any) -> RunningGateway:
        path = settings.pop("config", None) or tmp_path / f"routes-{next(counter)}.yaml"
        if not path.exists():
            path.write_text(routes, encoding="utf-8")
        port = settings.pop("port", None) or free_port()
        settings.setdefault("watch", False)
        config = Settings(config=path, port=port, log_level="warning", **settings)
        server = uvicorn.Server(uvicorn.Config(create_app(config), **config.uvicorn_options()))  # type: ignore[arg-type]
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway stopped while starting")
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=30)
        gateway = RunningGateway(url, path, client, server, task)
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        await gateway.client.aclose()
        gateway.server.should_exit = True
    for gateway in running:
        await asyncio.wait_for(gateway.task, 30)


@pytest.fixture
async def demo_backend() -> AsyncIterator[str]:
    """The bundled demo model server (KServe v2), on a loopback port in this loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(demo_model_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)
