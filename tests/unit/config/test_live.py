"""A backend's pool follows its protocol, and a reload carries unchanged gRPC backends over
(channels, health state and metadata with them) and retires the changed ones; a TLS backend is
unchanged while its tls block and the bytes of its files are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from gateway.auth.keys import KeyVerifier
from gateway.backends.grpc_pool import GRPCPool
from gateway.backends.kserve import KServeBackend
from gateway.backends.kserve_grpc import V2GRPC
from gateway.backends.kserve_http import V2HTTP
from gateway.backends.pool import ReplicaPool
from gateway.codecs.tensors import InferenceRequest, Tensor
from gateway.config.file import parse_config
from gateway.config.live import Runtime, Services, build_runtime
from gateway.errors import ModelNotFound, NoHealthyReplica, VersionNotFound
from gateway.store import MemoryStore
from tests.certs import CA
from tests.support import backend, model, routes_yaml, versions
from tests.unit.policies.support import SECRET

pytestmark = pytest.mark.anyio
DEAD = "127.0.0.1:1"  # never dialled: the health loops are stopped before they run


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    """A worker's services; the clients open no socket unless used."""
    store = MemoryStore()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as http:
        yield Services(session, http, store, KeyVerifier(store, SECRET), SECRET)


def routes(timeout: str = "30s") -> str:
    slow = {"interval": "1h"}
    backends = {
        "over-http": backend("kserve", f"http://{DEAD}", health=slow),
        "over-grpc": backend("kserve", f"grpc://{DEAD}", protocol="grpc", timeout=timeout),
    }
    models = {name: model(versions(name, "1")) for name in backends}
    return routes_yaml(backends, models)


def build(text: str, services: Services, previous: Runtime | None = None) -> Runtime:
    runtime, _ = build_runtime(parse_config(text), services, previous, lambda _: {})
    return runtime


async def test_each_backend_gets_the_pool_and_wire_of_its_protocol(services: Services) -> None:
    runtime = build(routes(), services)
    by_grpc, by_http = runtime.backends["over-grpc"], runtime.backends["over-http"]
    try:
        assert isinstance(by_grpc.pool, GRPCPool)
        assert isinstance(by_http.pool, ReplicaPool)
        assert isinstance(by_grpc.adapter, KServeBackend)
        assert isinstance(by_grpc.adapter.wire, V2GRPC)
        assert isinstance(by_http.adapter, KServeBackend)
        assert isinstance(by_http.adapter.wire, V2HTTP)
        assert by_grpc.pool.state()["protocol"] == "grpc"
    finally:
        for live in runtime.backends.values():
            await live.pool.close()


async def test_a_reload_keeps_an_unchanged_grpc_backend_and_retires_a_changed_one(
    services: Services,
) -> None:
    first = build(routes(), services)
    same, retired = build_runtime(parse_config(routes()), services, first, lambda _: {})
    assert same.backends["over-grpc"] is first.backends["over-grpc"]
    assert retired == []
    changed, retired = build_runtime(parse_config(routes("5s")), services, same, lambda _: {})
    old = first.backends["over-grpc"]
    assert changed.backends["over-grpc"] is not old
    assert retired == [old]
    for live in [*retired, *changed.backends.values()]:
        await live.pool.close()
    request = InferenceRequest([Tensor("INPUT0", "FP32", [1], [1.0])])
    with pytest.raises(NoHealthyReplica, match="was replaced by a reload"):
        await old.adapter.infer(request, old.targets[0], None)  # a late call on the old table


async def test_a_reload_keeps_a_tls_backend_until_its_files_change(
    services: Services, tmp_path: Path
) -> None:
    ca = CA(tmp_path / "pki")
    client = ca.client()
    tls = {"ca_file": str(ca.cert), "cert_file": str(client.cert), "key_file": str(client.key)}
    slow = {"interval": "1h"}
    # (gRPC backends are carried over by the same comparison; no channel is opened here)
    backends = {"https": backend("kserve", f"https://{DEAD}", health=slow, tls=tls)}
    text = routes_yaml(backends, {name: model(versions(name, "1")) for name in backends})
    first = build(text, services)
    same, retired = build_runtime(parse_config(text), services, first, lambda _: {})
    assert retired == []
    https = same.backends["https"].pool
    assert https is first.backends["https"].pool  # the same pool, hence the same SSLContext
    assert isinstance(https, ReplicaPool)
    assert https._ssl is first.backends["https"].spec.tls.material.context  # type: ignore[union-attr]
    ca.client()  # renewed at the same paths (cert-manager): the next reload takes it
    renewed, retired = build_runtime(parse_config(text), services, same, lambda _: {})
    assert [live.name for live in retired] == ["https"]
    for live in [*retired, *renewed.backends.values()]:
        await live.pool.close()


async def test_a_backend_finds_each_version_it_serves_and_no_other(services: Services) -> None:
    slow = {"interval": "1h"}
    backends = {
        "a": backend("kserve", f"http://{DEAD}", health=slow),
        "b": backend("kserve", f"http://{DEAD}", health=slow),
    }
    both = {"1": {"backend": "a"}, "2": {"backend": "a", "name": "x"}, "3": {"backend": "b"}}
    models = {"one": model(versions("a", "1")), "both": model(both)}
    runtime = build(routes_yaml(backends, models), services)
    a, b = runtime.backends["a"], runtime.backends["b"]
    try:
        assert (a.target("one", "1").model, a.target("one", "1").version) == ("one", "1")
        assert a.target("both", "1").name == "both"
        assert a.target("both", "2").name == "x"
        assert b.target("both", "3").version == "3"
        for live, model_name, version in [
            (a, "one", "2"), (b, "one", "1"), (a, "both", "3"), (b, "both", "1"), (a, "x", "1")
        ]:  # fmt: skip
            with pytest.raises(KeyError):
                live.target(model_name, version)
        assert runtime.resolve("both", "2").target is a.target("both", "2")
        assert runtime.serving("one", "2") is False  # a version the table does not have
    finally:
        for live in runtime.backends.values():
            await live.pool.close()


async def test_each_version_is_resolved_once_per_route_table(services: Services) -> None:
    """The traffic step asks on every call: the same answer, worked out once; a name the
    table does not serve is a 404 each time, and kept nowhere."""
    slow = {"interval": "1h"}
    backends = {"a": backend("kserve", f"http://{DEAD}", health=slow)}
    both = {"1": {"backend": "a"}, "2": {"backend": "a"}}
    runtime = build(routes_yaml(backends, {"both": model(both, default="2")}), services)
    try:
        first = runtime.resolve("both", "1")
        assert runtime.resolve("both", "1") is first
        assert (first.model, first.version) == ("both", "1")
        default = runtime.resolve("both", None)
        assert default.version == "2"
        assert runtime.resolve("both", None) is default
        for _ in range(2):
            with pytest.raises(ModelNotFound):
                runtime.resolve("nope", "1")
            with pytest.raises(VersionNotFound):
                runtime.resolve("both", "9")
        assert len(runtime._resolved) == 2
    finally:
        for live in runtime.backends.values():
            await live.pool.close()
