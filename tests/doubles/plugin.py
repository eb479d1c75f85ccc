"""pytest plugin: the TensorFlow Serving REST double (``tests/doubles/tfserving.py``) as a process.

Fixtures:

* ``tfserving_server`` (session): one double shared by the session. Do not change its knobs in
  tests that may run alongside others; use ``start_tfserving`` for fault tests.
* ``start_tfserving`` (function): a callable ``start(*, timeout_ms=None, enable_cors=False,
  tensor_content=False)`` that starts a fresh, independent double and returns its handle; every
  double it started is stopped when the test ends. ``tensor_content`` makes gRPC Predict answer
  in ``tensor_content`` (``--enable_serialization_as_tensor_content``).

A handle has ``kind`` ("tfserving"), ``url`` ("http://127.0.0.1:PORT", the REST port),
``grpc_url`` ("127.0.0.1:PORT", the gRPC port of the same process, see ``tfserving_grpc.py``),
``grpc_port``, ``management_url`` (None), ``pid``, ``log_path``, ``alive`` (a property), ``stop()``,
``kill()`` and ``log_tail()``. A double that is not ready (``GET /v1/models/linear`` answering
200 with every version AVAILABLE; the gRPC port is serving before the REST one answers) within
``READY_TIMEOUT`` seconds fails the test with its log tail. Once ready, a double's stats are
reset, so they count only the test's own requests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from tests.support import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_START_ATTEMPTS = 3


@dataclass(frozen=True)
class TFServingHandle:
    """A running double; the same shape as the handles of the real servers."""

    url: str
    pid: int
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    grpc_port: int = 0
    kind: str = "tfserving"
    management_url: str | None = None

    @property
    def grpc_url(self) -> str:
        """host:port of the gRPC face (what grpc.aio.insecure_channel takes)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM by PID, wait, then SIGKILL if it has not exited."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL by PID, and reap it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])


class StartTFServing(Protocol):
    def __call__(
        self,
        *,
        timeout_ms: int | None = None,
        enable_cors: bool = False,
        tensor_content: bool = False,
    ) -> TFServingHandle: ...


def _ready(client: httpx.Client, url: str) -> bool:
    try:
        reply = client.get(f"{url}/v1/models/linear")
    except httpx.HTTPError:
        return False
    if reply.status_code != 200:
        return False
    statuses = reply.json().get("model_version_status", [])
    return bool(statuses) and all(s.get("state") == "AVAILABLE" for s in statuses)


def start_tfserving_double(
    log_dir: Path,
    *,
    timeout_ms: int | None = None,
    enable_cors: bool = False,
    tensor_content: bool = False,
    ready_timeout: float = READY_TIMEOUT,
) -> TFServingHandle:
    """Start the double on a free loopback port and wait until it is ready, or fail the test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    for attempt in range(1, _START_ATTEMPTS + 1):
        port, grpc_port = free_ports(2)
        argv = [sys.executable, "-m", "tests.doubles.tfserving", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--grpc-port", str(grpc_port)]
        argv += ["--parent-pid", str(os.getpid())]
        if timeout_ms is not None:
            argv += ["--rest-api-timeout-ms", str(timeout_ms)]
        if enable_cors:
            argv.append("--enable-cors")
        if tensor_content:
            argv.append("--enable-serialization-as-tensor-content")
        log_path = log_dir / f"tfserving-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        handle = TFServingHandle(
            url=f"http://127.0.0.1:{port}",
            pid=process.pid,
            log_path=log_path,
            process=process,
            grpc_port=grpc_port,
        )
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline and handle.alive:
                if _ready(client, handle.url):
                    client.post(f"{handle.url}/__double__/reset")  # stats without the probes
                    return handle
                time.sleep(0.05)
        exited = not handle.alive
        handle.kill()
        tail = handle.log_tail()
        if exited and "address already in use" in tail.lower() and attempt < _START_ATTEMPTS:
            continue  # lost the race for the port; try another
        why = (
            f"exited with code {process.returncode}"
            if exited
            else f"was not ready within {ready_timeout:.0f}s"
        )
        pytest.fail(
            f"TF Serving double (pid {handle.pid}, {handle.url}) {why}; log tail:\n{tail}",
            pytrace=False,
        )
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture(scope="session")
def tfserving_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TFServingHandle]:
    handle = start_tfserving_double(tmp_path_factory.mktemp("tfserving"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def start_tfserving(tmp_path: Path) -> Iterator[StartTFServing]:
    started: list[TFServingHandle] = []

    def start(
        *, timeout_ms: int | None = None, enable_cors: bool = False, tensor_content: bool = False
    ) -> TFServingHandle:
        handle = start_tfserving_double(
            tmp_path, timeout_ms=timeout_ms, enable_cors=enable_cors, tensor_content=tensor_content
        )
        started.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in started:
            handle.stop()
