"""A real ``gateway serve`` process for the edge tests: started on a free loopback port, waited
for, and stopped by its PID (SIGINT, then SIGKILL if it lingers)."""

from __future__ import annotations

import os
import resource
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import free_port

GATEWAY = str(Path(sys.executable).with_name("gateway"))
ROUTES = "backends:\n  none: {kind: triton, urls: ['http://127.0.0.1:9']}\nmodels: {}\n"


@dataclass(frozen=True)
class Served:
    port: int
    url: str
    log: Path
    pid: int


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files to ``wanted`` (capped by the hard limit);
    the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@contextmanager
def gateway_serve(
    folder: Path,
    *flags: str,
    env: Mapping[str, str] | None = None,
    routes: str = ROUTES,
    https: ssl.SSLContext | None = None,
    fds: int = 8192,
    port: int | None = None,
) -> Iterator[Served]:
    """``gateway serve`` on ``routes`` with ``flags`` and ``env``; ``https``: the client
    context to wait for it with (it serves TLS); ``port``: this one, not a free one."""
    config = folder / "routes.yaml"
    config.write_text(routes, encoding="utf-8")
    port = port or free_port()
    log = folder / f"gateway-{port}.log"
    command = [GATEWAY, "serve", "--config", str(config), "--port", str(port), "--no-watch"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, *flags],
            env={**os.environ, "GATEWAY_LOG_LEVEL": "warning", **(env or {})},
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: raise_fd_limit(fds) and None,
        )
    url = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2, verify=https or True) as client:
            while True:
                assert process.poll() is None, log.read_text(errors="replace")
                try:
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)
        yield Served(port, url, log, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
