"""Real Redis for the tests: a throwaway ``redis-server`` (or ``GATEWAY_REDIS_URL``), a key prefix
per test, and a throwaway three-node Redis Cluster. Servers run on free loopback ports and are
stopped by PID. A missing ``redis-server`` fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.certs import CA
from tests.support import free_port

STARTUP_TIMEOUT = 20.0


@dataclass
class RedisServer:
    """A ``redis-server`` process this test session started."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


StartRedis = Callable[..., RedisServer]


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(directory: Path, *options: str, port: int | None = None) -> RedisServer:
    """Start ``redis-server`` without persistence and wait (bounded) until it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: install Redis 7 or set GATEWAY_REDIS_URL")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"redis-{port}.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    command += ["no", "--dir", str(directory), "--logfile", str(log), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"redis-server on port {port} did not start:\n{tail}")
        time.sleep(0.02)
    return server


def tls_options(folder: Path) -> tuple[CA, int, list[str]]:
    """For a ``redis-server`` serving TLS: a test CA under ``folder``, a free TLS port, and the
    options that serve it there with a certificate for 127.0.0.1 (no client certificates)."""
    ca = CA(folder)
    issued = ca.server("127.0.0.1")
    port = free_port()
    options = ["--tls-port", str(port), "--tls-cert-file", str(issued.cert)]
    options += ["--tls-key-file", str(issued.key), "--tls-ca-cert-file", str(ca.cert)]
    return ca, port, [*options, "--tls-auth-clients", "no"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``GATEWAY_REDIS_URL`` if set, else a throwaway ``redis-server`` for the session."""
    if url := os.environ.get("GATEWAY_REDIS_URL"):
        yield url
        return
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"gwtest:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """Start throwaway servers of this test's own (``start(port=...)`` restarts on a port)."""
    started: list[RedisServer] = []

    def start(*options: str, port: int | None = None) -> RedisServer:
        server = start_redis_server(tmp_path / "redis", *options, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Redis Cluster of three masters (slots split evenly, formed with
    ``CLUSTER ADDSLOTSRANGE`` + ``CLUSTER MEET``); the URL of its first node."""
    base = tmp_path_factory.mktemp("redis-cluster")
    servers: list[RedisServer] = []
    try:
        buses = [free_port() for _ in range(3)]
        for bus in buses:
            node = base / str(bus)
            options = ["--cluster-enabled", "yes", "--cluster-port", str(bus)]
            options += ["--cluster-config-file", str(node / "nodes.conf")]
            options += ["--cluster-node-timeout", "2000"]
            servers.append(start_redis_server(node, *options))
        _form_cluster([s.port for s in servers], buses)
        yield servers[0].url
    finally:
        for server in servers:
            server.stop()


def _form_cluster(ports: list[int], buses: list[int]) -> None:
    clients = [redis.Redis(port=port, decode_responses=True) for port in ports]
    try:
        per = 16384 // len(ports)
        for i, client in enumerate(clients):
            high = 16383 if i == len(ports) - 1 else (i + 1) * per - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, high)  # type: ignore[no-untyped-call]
        for port, bus in zip(ports[1:], buses[1:], strict=True):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients):
            if time.monotonic() > deadline:
                pytest.fail(f"the Redis Cluster on ports {ports} did not reach cluster_state:ok")
            time.sleep(0.02)
    finally:
        for client in clients:
            client.close()
