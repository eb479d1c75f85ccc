"""Reliability, on a real `gateway serve` process (bounded, loopback only; issue 12):

- a log sink that never reads (a pipe nobody drains) costs dropped log lines, never a request;
- 100 rewrites of routes.yaml under steady load, invalid files mixed in: no failed request,
  every invalid file counted, the last valid one live.

Each test prints its figures (for the README's reliability table).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.support import V2, backend, demo_routes, free_port, model, routes_yaml

pytestmark = pytest.mark.anyio
GATEWAY = str(Path(sys.executable).with_name("gateway"))


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]


@asynccontextmanager
async def gateway_serve(
    config: Path,
    output: int | IO[bytes],
    environment: dict[str, str] | None = None,
    unread: int | None = None,
) -> AsyncIterator[Served]:
    """`gateway serve` on ``config`` with stdout and stderr to ``output`` and ``environment``
    added, ready; stopped by PID afterwards (SIGTERM, and SIGKILL if it has not ended in 30 s)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [GATEWAY, "serve", "--config", str(config), "--port", str(port)],
        # faulthandler: a gateway that does not stop is sent SIGABRT, which prints every
        # thread's stack for the failure message
        env={**os.environ, "PYTHONFAULTHANDLER": "1", **(environment or {})},
        stdout=output,
        stderr=output,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get(f"{served.url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the gateway did not start")
                await asyncio.sleep(0.05)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        else:
            stacks = _stacks(process, unread)
            process.kill()
            process.wait()
            pytest.fail(f"the gateway did not stop within 30 s of SIGTERM; its stacks:\n{stacks}")


def _stacks(process: subprocess.Popen[bytes], unread: int | None) -> str:
    """The threads' stacks of a process that hangs (SIGABRT → faulthandler), read from the
    read end of its output pipe when the test holds it (else they went to its output)."""
    if unread is not None:
        os.set_blocking(unread, False)
        with contextlib.suppress(BlockingIOError):
            while os.read(unread, 1 << 16):  # make room: the pipe may be full of log lines
                pass
    process.send_signal(signal.SIGABRT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    if unread is None:
        return "(in the process's output)"
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(unread, 1 << 16):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")[-8000:]


async def send(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.post(url, json=V2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def metric(text: str, pattern: str) -> float:
    found = re.search("^" + pattern + r" (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_log_sink_nobody_reads_drops_lines_and_never_stalls_a_request(
    tmp_path: Path, demo_backend: str
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(demo_routes(demo_backend), encoding="utf-8")
    # A pipe whose read end stays open and unread: writes block once its buffer (64 KiB)
    # is full, as with a stuck log shipper or a paused `docker logs`; never EPIPE.
    unread, sink = os.pipe()
    total, concurrency, failed_at_most = 2000, 20, 10
    sent = failed = 0
    try:
        # Access log on (the default) at info: a line per request. A queue of 100 lines (the
        # default is 10,000) fills within the run, so lines are dropped and counted.
        environment = {"GATEWAY_LOG_LEVEL": "info", "GATEWAY_LOG_QUEUE_SIZE": "100"}
        async with gateway_serve(config, sink, environment, unread) as served:
            os.close(sink)
            sink = -1
            url = f"{served.url}/v2/models/linear/infer"
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(timeout=10, limits=limits) as client:
                # Bounded: 2,000 requests, 20 at a time, 10 s each; stop early once a few
                # failed (before the fix every request hung after about 145).
                while sent < total and failed <= failed_at_most:
                    batch = min(concurrency, total - sent)
                    results = await asyncio.gather(*(send(client, url) for _ in range(batch)))
                    sent += batch
                    failed += results.count(False)
                health = await client.get(f"{served.url}/healthz")
                metrics = (await client.get(f"{served.url}/metrics")).text
    finally:
        os.close(unread)
        if sink != -1:
            os.close(sink)
    dropped = metric(metrics, "gateway_log_dropped_total")
    print(f"\nblocked log sink: {sent} requests sent, {failed} failed, {dropped:.0f} lines dropped")
    assert failed == 0
    assert sent == total
    assert health.status_code == 200
    assert dropped > 0


def _invalid_files() -> list[Callable[[int], bytes]]:
    """Five kinds of invalid routes.yaml, each with something of its turn ``i`` in it."""
    bomb = b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(  # 10^6 nodes once expanded
        f"{name}: &{name} [{', '.join([f'*{below}'] * 10)}]\n".encode()
        for below, name in zip("abcde", "bcdef", strict=True)
    )
    return [
        lambda i: b"backends:\n  \xff\xfe garbage " + bytes([i]) + b"\n",  # not UTF-8
        lambda i: f"backends: [unclosed {i}\n".encode(),  # not YAML
        lambda i: b"",  # empty
        lambda i: bomb + f"# {i}\n".encode(),  # a billion laughs, smaller
        lambda i: f"backends: {{demo: {{kind: triton, urls: []}}}}\n# {i}\n".encode(),
    ]


def _valid(url: str, turn: int) -> bytes:
    """The demo table (model ``linear``, which the load calls) plus model ``extra-<turn>``."""
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    models = {"linear": model(served, default="1"), f"extra-{turn}": model(served, default="1")}
    return routes_yaml({"demo": backend("triton", url, timeout=f"{5 + turn}s")}, models).encode()


def _reloads(text: str, result: str) -> float:
    return metric(text, "gateway_config_reloads_total" + re.escape(f'{{result="{result}"}}'))


async def test_100_reloads_under_load_with_invalid_files_mixed_in(
    tmp_path: Path, demo_backend: str
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_bytes(_valid(demo_backend, -1))
    invalid = _invalid_files()
    requests = failures = valid = rejected = 0
    stop = asyncio.Event()

    async def steady_load(url: str) -> None:
        nonlocal requests, failures
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                ok = await asyncio.gather(*(send(client, url) for _ in range(4)))
                requests += len(ok)
                failures += ok.count(False)

    async def rewrite(client: httpx.AsyncClient, content: bytes, result: str) -> None:
        """Swap routes.yaml for ``content`` and wait (bounded) until the watcher has counted
        one more reload with ``result``: each rewrite is seen on its own."""
        before = _reloads((await client.get("/metrics")).text, result)
        fresh = tmp_path / "routes.new"
        fresh.write_bytes(content)
        os.replace(fresh, config)  # as editors and config managers do
        deadline = time.monotonic() + 20
        while _reloads((await client.get("/metrics")).text, result) <= before:
            assert time.monotonic() < deadline, f"no {result} reload seen in time"
            await asyncio.sleep(0.05)

    with (tmp_path / "gateway.log").open("wb") as log:
        async with gateway_serve(config, log) as served:
            load = asyncio.create_task(steady_load(f"{served.url}/v2/models/linear/infer"))
            try:
                async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                    for turn in range(100):  # even turns valid, odd ones invalid
                        if turn % 2 == 0:
                            await rewrite(client, _valid(demo_backend, turn), "success")
                            valid += 1
                        else:
                            await rewrite(
                                client, invalid[turn // 2 % len(invalid)](turn), "failure"
                            )
                            rejected += 1
                    metrics = (await client.get("/metrics")).text
                    ready = (await client.get("/readyz")).json()
                    last = await client.post("/v2/models/extra-98/infer", json=V2)
                    earlier = await client.post("/v2/models/extra-96/infer", json=V2)
            finally:
                stop.set()
                await load
    reloads_ok, reloads_failed = _reloads(metrics, "success"), _reloads(metrics, "failure")
    print(
        f"\n100 reloads under load: {requests} requests sent, {failures} failed; "
        f"{valid} valid and {rejected} invalid files written; reloads {reloads_ok:.0f} ok, "
        f"{reloads_failed:.0f} failed"
    )
    assert failures == 0
    assert requests > 0
    assert reloads_ok == valid
    assert reloads_failed == rejected
    assert ready["last_reload_ok"] is False  # the last file written was invalid
    assert last.status_code == 200  # the last valid table is the one live
    assert earlier.status_code == 404
