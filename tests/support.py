"""What tests at every level share: free loopback ports, the routes.yaml builder, the shape of an
error answer, the request and admin token most gateway tests use, `gateway serve` as a
process of its own, and a bench tool run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent  # the repository's root

# The input the models in front of a fake declare, and a KServe v2 request for it.
INPUT0 = {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}
V2 = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}

# For gateways started with ``admin_token=ADMIN_TOKEN`` (or GATEWAY_ADMIN_TOKEN).
ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (all held open together, then released)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port(host: str = "127.0.0.1") -> int:
    [port] = free_ports(1, host)
    return port


# ---------------------------------------------------------------------------------------------
# routes.yaml, for tests that need a valid route table (tests of the parser write their YAML)


def routes_yaml(
    backends: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, Mapping[str, Any]] | None = None,
    **sections: Any,
) -> str:
    """A routes.yaml of ``backends`` and ``models`` (by name), then the other top-level
    sections (``routes``, ``plans``, ``rate_limits``, ``auth``...) in the order given; a
    section that is None is left out."""
    table: dict[str, Any] = {"backends": dict(backends)}
    if models is not None:
        table["models"] = dict(models)
    table.update(_given(sections))
    return yaml.dump(table, Dumper=_Dumper, sort_keys=False, default_flow_style=None)


class _Dumper(yaml.SafeDumper):
    """Writes a value used twice in full each time, not as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def backend(kind: str, *urls: str, **options: Any) -> dict[str, Any]:
    """A backend of ``kind`` on ``urls``, with its other keys (``timeout``, ``health``...);
    an option that is None is left out, as in the two helpers below."""
    return {"kind": kind, "urls": list(urls), **_given(options)}


def versions(backend: str, *names: str, **options: Any) -> dict[str, dict[str, Any]]:
    """Versions ``names`` of a model, each served by ``backend`` with the same other keys
    (``inputs``, ``name``, ``version``)."""
    return {name: {"backend": backend, **_given(options)} for name in names}


def model(served: Mapping[str, Mapping[str, Any]], **options: Any) -> dict[str, Any]:
    """A model of the versions ``served``, with its other keys (``default``, ``traffic``...)."""
    return {"versions": dict(served), **_given(options)}


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def demo_routes(
    url: str, name: str = "linear", timeout: str = "5s", traffic: dict[str, int] | None = None
) -> str:
    """The bundled demo server (``demo_backend``) at ``url`` as backend ``demo``, its model
    ``linear`` (versions "1" and "2") served as model ``name``: version "1" by default, or
    the split of ``traffic``."""
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    linear = model(served, default=None if traffic else "1", traffic=traffic)
    return routes_yaml({"demo": backend("triton", url, timeout=timeout)}, {name: linear})


def auth_routes(url: str, **auth: Any) -> str:
    """The table of the authentication tests: models ``linear`` (versions "1" and "2") and
    ``other`` on a counting fake at ``url``, the passthrough route ``/raw/`` to it, a plan
    ``free``, and ``auth`` (its keys as given)."""
    on_fake = versions("fake", "1", "2", inputs=[INPUT0])
    return routes_yaml(
        {"fake": backend("kserve", url), "raw": backend("http", url)},
        {"linear": model(on_fake, default="1"), "other": model({"1": on_fake["1"]})},
        routes=[{"path": "/raw/", "backend": "raw"}],
        plans={"free": {}},
        auth=auth,
    )


# ---------------------------------------------------------------------------------------------
# answers and waits


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an error answer, after checking it has its endpoint's shape: on the
    v1/v2 inference endpoints the protocols' ``{"error": "<message>", "code", "request_id"}``
    (a string, as KServe v2 and TF Serving define it), elsewhere the gateway's
    ``{"error": {"code", "message"}, "request_id"}``."""
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"], body
    if response.request.url.path.startswith(("/v1/", "/v2/")):
        assert isinstance(body["error"], str), body
        return body["code"], body["error"]
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"], body["error"]["message"]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    """Poll ``check`` until it holds (bounded): for what the gateway does asynchronously."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def sleep_losing_a_cancel(seconds: float) -> bool:
    """Sleep, and if cancelled meanwhile, swallow the cancel for good (as redis-py can while a
    command is in flight, redis/redis-py#2028); True when one was swallowed."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        return True
    return False


async def kserve_calls(mode: str, url: str, model: str, calls: list[dict[str, Any]]) -> Any:
    """kserve's own client (``rest`` or ``grpc``) making ``calls`` against ``url``, in a process
    of its own (tests/clients/kserve_calls.py says why); its JSON results."""
    command = [sys.executable, "-m", "tests.clients.kserve_calls", mode, url, model]
    done = await asyncio.to_thread(
        subprocess.run,
        [*command, json.dumps(calls)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------------------------
# `gateway serve` as a process of its own, for tests that signal or measure it

GATEWAY = str(Path(sys.executable).with_name("gateway"))  # the venv's console script


@dataclass
class GatewayProcess:
    """A `gateway serve` process a test started: its base URL, the process and its log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, seconds: float = 10) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL after ``seconds``; by PID."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


@asynccontextmanager
async def gateway_process(
    folder: Path, routes: str, env: Mapping[str, str] | None = None, *options: str
) -> AsyncIterator[GatewayProcess]:
    """`gateway serve` on ``routes`` (written to ``folder``), a free port and the environment
    plus ``env``, its output in a log file; yielded once /healthz answers (bounded: 30 s), and
    stopped by PID afterwards however the test ended. ``options`` go to the command line."""
    config = folder / f"routes-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(routes, encoding="utf-8")
    port = free_port()
    log = folder / f"gateway-{port}.log"
    command = [GATEWAY, "serve", "--config", str(config), "--port", str(port), *options]
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            command, env={**os.environ, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT
        )
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                try:
                    if (await client.get(f"{gateway.url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or loop.time() > deadline:
                    raise AssertionError(f"the gateway did not start:\n{gateway.log_tail()}")
                await asyncio.sleep(0.05)
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)


def run_bench(module: str, *args: str, timeout: float = 120.0) -> str:
    """``python -m <module> args`` (``bench.run``, ``bench.servers``) from the repository, as a
    user runs it: its output. A run not done in ``timeout`` seconds is stopped the way Ctrl-C
    stops it (the tool then stops every process it started) and fails, as a non-zero exit
    does."""
    command = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        raise AssertionError(f"{module} did not finish in {timeout:g} s:\n{output}") from None
    assert process.returncode == 0, output
    return output
