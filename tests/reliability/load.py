"""Closed-loop load for the reliability cases: ``clients`` callers, each sending its next request
as soon as the last one is answered, for a bounded time; every outcome recorded, a transport
failure included (status 0), every request bounded by a timeout.

aiohttp rather than httpx: on two cores the client must not be what limits the offered load,
and aiohttp's client costs a fraction of httpx's per request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support import V2

BODY = json.dumps(V2).encode()
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered (time.monotonic()), its status (0: no
    answer: refused, reset or timed out), the error code of a refusal and what went wrong."""

    sent: float
    done: float
    status: int
    code: str | None = None
    failure: str | None = None


@dataclass
class Load:
    """What a run of :func:`hammer` saw."""

    outcomes: list[Outcome] = field(default_factory=list)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts

    def sent_between(self, start: float, end: float = float("inf")) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.sent < end]


async def hammer(
    url: str,
    seconds: float,
    clients: int = 20,
    headers: dict[str, str] | None = None,
    during: Callable[[], Coroutine[Any, Any, None]] | None = None,
    request_timeout: float = 10,
    at_least: int = 0,
    at_most: float = 30,
) -> Load:
    """``clients`` callers POSTing the v2 request to ``url`` for ``seconds``; ``during`` (if
    given) runs beside them (a fault to inject) and is awaited before this returns; each
    request is given ``request_timeout`` seconds. With ``at_least``, the load goes on past
    ``seconds`` until that many requests were answered, but never past ``at_most`` seconds:
    for a ratio that needs a large enough count on a slow machine."""
    load = Load()
    sent_headers = {**JSON, **(headers or {})}
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients),
        timeout=aiohttp.ClientTimeout(total=request_timeout),
    )

    def going(now: float) -> bool:
        if now < deadline:
            return True
        return len(load.outcomes) < at_least and now < began + at_most

    async def caller() -> None:
        while going(sent := time.monotonic()):
            try:
                async with session.post(url, data=BODY, headers=sent_headers) as response:
                    body = await response.read()
                    code = None
                    if response.status != 200:
                        code = json.loads(body).get("code")  # v2: the error itself is text
                    load.outcomes.append(Outcome(sent, time.monotonic(), response.status, code))
            except (aiohttp.ClientError, TimeoutError) as exc:
                load.outcomes.append(Outcome(sent, time.monotonic(), 0, failure=repr(exc)))

    began = time.monotonic()
    deadline = began + seconds
    fault = asyncio.create_task(during()) if during is not None else None
    try:
        await asyncio.gather(*(caller() for _ in range(clients)))
        if fault is not None:
            await asyncio.wait_for(fault, 60)
    finally:
        if fault is not None and not fault.done():  # the load failed: no fault left running
            fault.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fault
        await session.close()
    return load


def report(name: str, figures: dict[str, object]) -> None:
    """Print the figures of a case (seen with ``pytest -s``, or in a failure's output)."""
    print(f"\n[reliability: {name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))
