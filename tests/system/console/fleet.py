"""A small fleet for the console's browser tests and screenshots: the bundled demo model server
(KServe v2, versions 1 and 2) in a process of its own, and ``gateway serve`` replicas in front
of it on one store, every process started on a free loopback port and stopped by its PID."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port, routes_yaml
from tests.system.serving import Served, gateway_serve

SERVE_DEMO = (
    "import sys, uvicorn\n"
    "from gateway.demo import demo_model_app\n"
    "uvicorn.run(demo_model_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)


@contextmanager
def demo_model_server(folder: Path) -> Iterator[str]:
    """The demo model server's URL, once it answers ready."""
    port = free_port()
    log = folder / f"model-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE_DEMO, str(port)], stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo model server did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fleet_routes(model_url: str, **extra: Any) -> str:
    """Model ``linear`` (versions 1 and 2) behind API keys, with a canary rollout of version 2
    that waits for far more traffic than a test sends (it stays at its first step until an
    operator acts); ``charted`` (the demo's version 1) and ``broken`` (a backend that is not
    there: every call a 5xx) for traffic of known composition; and anything in ``extra``
    (routes.yaml sections, ``models`` merged)."""
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    linear: dict[str, Any] = {
        "default": "1",
        "versions": served,
        "rollout": {
            "canary": "2",
            "steps": [10, 50, 100],
            "interval": "1h",
            "gates": {"max_error_rate": "5%", "max_p99": "2s", "min_requests": 1_000_000},
        },
        **extra.pop("linear", {}),
    }
    charted = {"versions": {"1": {"backend": "demo", "name": "linear", "version": "1"}}}
    broken = {"versions": {"1": {"backend": "dead"}}}  # every call a 5xx
    models = {"linear": linear, "charted": charted, "broken": broken, **extra.pop("models", {})}
    return routes_yaml(
        {
            "demo": {"kind": "triton", "urls": [model_url], "timeout": "5s"},
            "dead": {"kind": "kserve", "urls": ["http://127.0.0.1:9"], "timeout": "1s"},
        },
        models,
        auth=extra.pop("auth", {"required": True, "api_keys": True}),
        **extra,
    )


@contextmanager
def fleet(
    folder: Path, routes: str, env: Mapping[str, str], count: int = 2
) -> Iterator[list[Served]]:
    """``count`` gateway replicas on ``routes`` with ``env`` (one store), ready."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(gateway_serve(folder, routes=routes, env=env)) for _ in range(count)
        ]


def shared_env(redis_url: str, admin_token: str) -> dict[str, str]:
    """The environment of replicas that share one Redis (a prefix of their own)."""
    return {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": f"gwtest:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_SECRET": "secret-" + uuid.uuid4().hex,
        "GATEWAY_ADMIN_TOKEN": admin_token,
        "GATEWAY_LOG_LEVEL": "warning",
    }
