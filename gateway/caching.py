"""The response cache: keys, entries, and collapsing identical misses.

Key = scope (the tenant, unless the model's cache is ``shared``) + model + the *resolved* version
+ the request protocol + SHA-256 of the canonical body (parsed JSON re-written with sorted keys,
so semantically equal requests hit). Entries are stored with their time, so an expired one can
still be served when the backend fails (``stale_if_error``).

Identical concurrent misses make one backend call: within a process they wait on one future;
across replicas, one takes a short lock in the store and the others poll for its entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway.chain import Context
from gateway.http_body import read_body
from gateway.inference import loads
from gateway.limits_config import CacheSpec

_POLL = 0.02


def cache_key(
    tenant: str | None, shared: bool, model: str, version: str, protocol: str, body: bytes
) -> tuple[str, str]:
    """(group, key) for the store; raises BadRequest for a body that is not JSON."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:  # NaN or Infinity (orjson would write them as null)
        obj = loads(body)
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    group = f"m:{model}" if shared else f"t:{tenant or '-'}"
    return group, f"{model}:{version}:{protocol}:{digest}"


def purge_pattern(model: str | None, version: str | None, tenant: str | None) -> str:
    """The store glob (``<group>|<key>``) for a purge by model, version and/or tenant."""
    group = f"t:{tenant}" if tenant else "*"
    key = f"{model}:{version}:*" if model and version else f"{model}:*" if model else "*"
    return f"{group}|{key}"


@dataclass(frozen=True, slots=True)
class Entry:
    stored_at: float
    content_type: str
    headers: dict[str, str]
    body: bytes

    def encode(self) -> bytes:
        head = {"t": self.stored_at, "ct": self.content_type, "h": self.headers}
        return orjson.dumps(head) + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        head, sep, body = raw.partition(b"\n")
        try:
            meta: dict[str, Any] = orjson.loads(head) if sep else {}
            return cls(float(meta["t"]), str(meta["ct"]), dict(meta["h"]), body)
        except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError is a ValueError
            return None  # written by something else: a miss

    def age(self) -> float:
        return max(0.0, time.time() - self.stored_at)


class SingleFlight:
    """Within one process, identical misses wait for the first one's result.

    It also remembers which fill locks this process holds. The lock is taken by the rate-limit
    step's round trip for one request, but the request that leads the flight may be another
    one (their store replies can come back in either order): the leader fills and unlocks for
    the process, and the lock's taker simply joins the flight.
    """

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._held: dict[str, float] = {}  # flight key -> monotonic end of the store lock

    def hold(self, key: str, ttl: float) -> None:
        if len(self._held) >= self._PRUNE_AT:
            now = time.monotonic()
            self._held = {k: end for k, end in self._held.items() if end > now}
        self._held[key] = time.monotonic() + ttl

    def holds(self, key: str) -> bool:
        end = self._held.get(key)
        return end is not None and end > time.monotonic()

    def drop(self, key: str) -> None:
        self._held.pop(key, None)

    async def run(self, key: str, work: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """(result, collapsed): ``collapsed`` is True when another caller's result was reused."""
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), True
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            result = await work()
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._flights[key]
        flight.set_result(result)
        return result, False


async def wait_for_entry(
    get: Callable[[], Awaitable[bytes | None]],
    seconds: float,
    stop: Callable[[], bool] = lambda: False,
) -> bytes | None:
    """Poll the store for an entry another replica is producing (bounded by its lock), until
    ``stop()`` says to give up waiting."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = await get()
        if raw is not None or stop():
            return raw
        await asyncio.sleep(_POLL)
    return None


def cache_spec(request: Request, ctx: Context) -> CacheSpec | None:
    """The model's cache settings when this request may be answered from the cache."""
    if request.method != "POST" or ctx.model is None or not ctx.required:
        return None
    if not ctx.required[0].startswith("predict:"):
        return None
    model = request.state.runtime.table.models.get(ctx.model)
    spec: CacheSpec | None = model.cache if model is not None else None
    return spec


_NONE: frozenset[str] = frozenset()


def directives(request: Request) -> frozenset[str]:
    """The client's Cache-Control request directives (lower case, arguments dropped)."""
    value = request.headers.get("cache-control")
    if not value:
        return _NONE
    return frozenset(
        part.split("=", 1)[0].strip().lower() for part in value.split(",") if part.strip()
    )


async def entry_key(request: Request, ctx: Context) -> tuple[str, str] | None:
    """The request's cache key, or None when it may not be cached (``no-store``)."""
    spec = cache_spec(request, ctx)
    if spec is None or ctx.version is None or "no-store" in directives(request):
        return None
    known: tuple[str, str] | None = ctx.extra.get("cache_key")
    if known is not None:
        return known
    body = await read_body(request, request.app.state.gateway.settings.max_body_bytes)
    protocol = "v1" if request.scope["path"].startswith("/v1/") else "v2"
    key = cache_key(ctx.tenant, spec.shared, ctx.model or "", ctx.version, protocol, body)
    ctx.extra["cache_key"] = key
    return key


async def request_cache_key(request: Request, ctx: Context) -> tuple[str, str] | None:
    """The key to look up now, or None when no lookup is wanted (``no-cache``, ``no-store``)."""
    if "no-cache" in directives(request):
        return None
    return await entry_key(request, ctx)
