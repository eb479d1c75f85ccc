"""A controllable HTTP server (aiohttp.web, in the test's loop) for pool and proxy edge cases."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from tests.support import free_port

# A KServe v2 reply with one output, for tests whose backend is a fake.
REPLY = b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [1], "data": [7]}]}'


@dataclass
class FakeReplica:
    """Answers every request with ``status``/``body`` after ``delay`` seconds; records requests."""

    status: int = 200
    body: bytes = b'{"outputs": []}'
    delay: float = 0.0
    calls: int = 0
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.seen.append(request)
        self.bodies.append(await request.read())
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")

    async def start(self) -> FakeReplica:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
