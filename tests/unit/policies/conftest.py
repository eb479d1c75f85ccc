"""Fixtures of the policy tests: the toy backend kind registered, the services of one
worker on the in-memory store, and route tables made live from routes.yaml text, without a
socket (the toy adapter's probe answers at once; the health loop is stopped after build)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.auth.keys import KeyVerifier
from gateway.backends.registry import ADAPTERS
from gateway.backends.specs import SPECS
from gateway.config.file import parse_config
from gateway.config.live import Runtime, Services, build_runtime
from gateway.store import MemoryStore
from tests.unit.policies.support import SECRET
from tests.unit.policies.toys import ToyBackend, ToySpec

MakeRuntime = Callable[..., Awaitable[Runtime]]


@pytest.fixture
def toy_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kind: toy`` known to routes.yaml and the runtime: one line in the registry of specs,
    one in the adapter registry."""
    monkeypatch.setitem(SPECS, "toy", ToySpec)
    monkeypatch.setitem(ADAPTERS, "toy", ToyBackend)


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    """A worker's services on a fresh MemoryStore; the clients open no socket unless used."""
    store = MemoryStore()
    session = aiohttp.ClientSession()
    http = httpx.AsyncClient()
    yield Services(session, http, store, KeyVerifier(store, SECRET), SECRET)
    await http.aclose()
    await session.close()


@pytest.fixture
def make_runtime(toy_kind: None, services: Services) -> MakeRuntime:
    """``await make_runtime(routes, **services_changes)``: the live route table of ``routes``
    (its chains left empty: each test builds what it exercises)."""

    async def make(routes: str, **changes: Any) -> Runtime:
        used = dataclasses.replace(services, **changes) if changes else services
        runtime, _ = build_runtime(parse_config(routes), used, None, lambda _: {})
        for live in runtime.backends.values():
            await live.pool.close()  # stops the health loop: the tests set readiness themselves
        return runtime

    return make
