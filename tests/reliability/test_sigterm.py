"""SIGTERM with 20 slow requests in flight: every one of them completes with a 200, a new
connection is no longer served, and the process exits 0 within its graceful timeout (30 s)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.fakes import REPLY, FakeReplica, forwarded
from tests.reliability.load import report
from tests.support import (
    INPUT0,
    V2,
    backend,
    eventually,
    gateway_process,
    model,
    routes_yaml,
    versions,
)

pytestmark = [pytest.mark.anyio, pytest.mark.reliability]

IN_FLIGHT = 20
DELAY = 2.0  # seconds the backend takes to answer each
GRACEFUL = 30.0  # the gateway's graceful timeout (Settings.uvicorn_options)


async def served_on_a_new_connection(port: int) -> bytes | None:
    """What a new connection to ``port`` gets for a request: None if it is refused, else the
    bytes answered before the server closed it (b"" when it was closed without a word)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()


async def test_sigterm_finishes_the_requests_in_flight_and_takes_no_new_ones(
    tmp_path: Path,
) -> None:
    slow = await FakeReplica(body=REPLY, delay=DELAY).start()
    routes = routes_yaml(
        # its health probes are slow too: given the time to answer
        {"slow": backend("kserve", slow.url, timeout="10s", health={"timeout": "5s"})},
        {"linear": model(versions("slow", "1", inputs=[INPUT0]))},
    )
    try:
        async with gateway_process(tmp_path, routes) as gateway:
            port = int(gateway.url.rsplit(":", 1)[1])
            limits = httpx.Limits(max_connections=IN_FLIGHT)
            async with httpx.AsyncClient(base_url=gateway.url, timeout=20, limits=limits) as client:
                calls = [
                    asyncio.create_task(client.post("/v2/models/linear/infer", json=V2))
                    for _ in range(IN_FLIGHT)
                ]

                async def all_in_flight() -> bool:
                    return len(forwarded(slow)) == IN_FLIGHT

                await eventually(all_in_flight)  # every request is at the backend
                gateway.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(DELAY / 4)  # the requests are still in flight
                still_running = not any(call.done() for call in calls)
                newcomer = await served_on_a_new_connection(port)
                answers = await asyncio.gather(*calls, return_exceptions=True)
            try:
                code: int | None = await asyncio.to_thread(gateway.process.wait, GRACEFUL + 5)
            except subprocess.TimeoutExpired:
                code = None
    finally:
        await slow.stop()

    statuses = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
    report(
        "SIGTERM with requests in flight",
        {
            "in_flight": IN_FLIGHT,
            "completed_200": statuses.count(200),
            "new_connection": "refused" if newcomer is None else f"answered {newcomer[:40]!r}",
            "exit_code": code,
        },
    )
    assert still_running
    assert statuses == [200] * IN_FLIGHT
    assert newcomer is None or not newcomer.startswith(b"HTTP/")  # not served
    assert code == 0
