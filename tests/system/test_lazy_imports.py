"""gRPC, Redis and numpy are loaded where they are configured or needed, and only there
(``gateway.backends.grpc_wires``, ``gateway.store.open``, ``gateway.codecs.raw``): a real
``gateway serve`` process is read from the outside, through the shared objects mapped into it
(``/proc/PID/maps``): grpcio's native library, hiredis's (which redis-py loads) and numpy's
are mapped once the process imported them."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import free_port
from tests.system.serving import gateway_serve

HTTP_ONLY = """
backends:
  v2: {kind: kserve, urls: ["http://127.0.0.1:9"]}
models:
  m: {versions: {"1": {backend: v2}}}
"""
WITH_GRPC = """
backends:
  v2: {kind: kserve, urls: ["http://127.0.0.1:9"]}
  v2g: {kind: triton, protocol: grpc, urls: ["grpc://127.0.0.1:9"], timeout: 2s}
models:
  m: {versions: {"1": {backend: v2}}}
  g: {versions: {"1": {backend: v2g}}}
"""
CACHED = """
backends:
  v2: {kind: kserve, urls: ["http://127.0.0.1:9"]}
models:
  m: {versions: {"1": {backend: v2}}, deterministic: true, cache: {ttl: 60s}}
"""
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def mapped(pid: int, library: str) -> bool:
    """Whether a shared object whose path holds ``library`` is mapped into ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    return library in maps


def grpc_loaded(pid: int) -> bool:
    return mapped(pid, "cygrpc")  # grpc/_cython/cygrpc.*.so


def numpy_loaded(pid: int) -> bool:
    return mapped(pid, "_multiarray_umath")  # numpy/_core/_multiarray_umath.*.so


def binary_request() -> tuple[bytes, dict[str, str]]:
    """One FP32 input as binary tensor data (Triton's extension)."""
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        }
    )
    body = header + b"\x00\x00\x80\x3f"  # 1.0
    return body, {"Inference-Header-Content-Length": str(len(header))}


def test_numpy_loads_with_the_first_call_asking_for_binary_data_not_before(tmp_path: Path) -> None:
    with gateway_serve(tmp_path, routes=HTTP_ONLY) as served, httpx.Client(timeout=10) as client:
        answer = client.post(f"{served.url}/v2/models/m/infer", json=BODY)
        assert answer.status_code in (502, 503), answer.text
        assert not numpy_loaded(served.pid)  # JSON to a v2 server converts no tensor
        asks = {**BODY, "parameters": {"binary_data_output": True}}
        answer = client.post(f"{served.url}/v2/models/m/infer", json=asks)
        assert answer.status_code in (502, 503), answer.text
        assert numpy_loaded(served.pid)  # a binary answer asked for: loaded before the call


def test_numpy_loads_before_binary_tensor_data_is_decoded(tmp_path: Path) -> None:
    with gateway_serve(tmp_path, routes=HTTP_ONLY) as served, httpx.Client(timeout=10) as client:
        body, headers = binary_request()
        answer = client.post(f"{served.url}/v2/models/m/infer", content=body, headers=headers)
        assert answer.status_code in (502, 503), answer.text  # decoded, then the dead backend
        assert numpy_loaded(served.pid)
        bad, headers = binary_request()
        answer = client.post(f"{served.url}/v2/models/m/infer", content=bad[:-1], headers=headers)
        assert answer.status_code == 400, answer.text  # 3 bytes for one FP32: the codec ran
        assert isinstance(answer.json()["error"], str)


def test_a_table_with_a_cache_loads_numpy_with_it(tmp_path: Path) -> None:
    with gateway_serve(tmp_path, routes=CACHED) as served:
        assert numpy_loaded(served.pid)  # loaded by the reading thread, before any call


def test_an_http_only_gateway_loads_no_grpc_until_a_reload_names_a_grpc_backend(
    tmp_path: Path,
) -> None:
    with gateway_serve(tmp_path, routes=HTTP_ONLY) as served, httpx.Client(timeout=10) as client:
        answer = client.post(f"{served.url}/v2/models/m/infer", json=BODY)
        assert answer.status_code in (502, 503), answer.text  # the dead backend, answered
        assert not grpc_loaded(served.pid)
        assert not mapped(served.pid, "hiredis")  # the embedded default: no Redis

        (tmp_path / "routes.yaml").write_text(WITH_GRPC, encoding="utf-8")
        os.kill(served.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while client.get(f"{served.url}/v2/models/g").status_code == 404:
            assert time.monotonic() < deadline, "the reload did not add model g"
            time.sleep(0.05)
        assert grpc_loaded(served.pid)
        answer = client.post(f"{served.url}/v2/models/g/infer", json=BODY)
        assert answer.status_code in (502, 503, 504), answer.text  # through the gRPC wire
        assert isinstance(answer.json()["error"], str)
        still = client.post(f"{served.url}/v2/models/m/infer", json=BODY)
        assert still.status_code in (502, 503), still.text


def test_the_grpc_frontends_load_it_when_their_port_is_set(tmp_path: Path) -> None:
    port = free_port()
    env = {"GATEWAY_GRPC_PORT": str(port)}
    with gateway_serve(tmp_path, routes=HTTP_ONLY, env=env) as served:
        assert grpc_loaded(served.pid)
        assert numpy_loaded(served.pid)  # raw tensor contents: loaded as the frontends start
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)  # the stub is untyped
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_redis_store_loads_redis_py_when_a_url_names_it(tmp_path: Path, redis_url: str) -> None:
    prefix = f"gwtest:{uuid.uuid4().hex[:8]}:"
    env = {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_SECRET": "s" * 32,
    }
    with gateway_serve(tmp_path, routes=HTTP_ONLY, env=env) as served, httpx.Client() as client:
        assert mapped(served.pid, "hiredis")
        assert not grpc_loaded(served.pid)
        ready = client.get(f"{served.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["store"] == "ok"  # answered by the Redis store
