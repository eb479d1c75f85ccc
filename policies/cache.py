"""The response cache, for models declared deterministic with a ``cache:`` section.

Hits come from the lookup the rate-limit step already made (one store round trip for both).
Misses are collapsed: one backend call per key within a process (a shared future) and across
replicas (a short store lock; the others poll for the entry). Only 200 responses up to
``max_entry_bytes`` are stored. Client ``Cache-Control: no-cache`` skips the lookup but stores
the fresh answer; ``no-store`` does neither. Every cacheable response says what happened in
``Cache-Status`` (RFC 9211): ``hit``, ``fwd=miss``, ``fwd=stale``, ``fwd=request``, ``collapsed``,
``stored``. With ``stale_if_error``, an expired entry answers when the backend fails.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.caching import Entry, cache_spec, directives, entry_key, wait_for_entry
from gateway.chain import Context, Next
from gateway.errors import GatewayError

NAME = "model-gateway"
_KEPT_HEADERS = ("x-model-version",)


def _status(*params: str) -> str:
    return "; ".join((NAME, *params))


def _from_entry(entry: Entry, status: str) -> Response:
    headers = {**entry.headers, "Cache-Status": status, "Age": str(math.floor(entry.age()))}
    return Response(entry.body, status_code=200, headers=headers, media_type=entry.content_type)


class CachePolicy:
    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response:
        spec = cache_spec(request, ctx)
        if spec is None:
            return await call_next(request, ctx)
        asked = directives(request)
        key = await entry_key(request, ctx)
        if key is None:  # no-store
            response = await call_next(request, ctx)
            response.headers["Cache-Status"] = _status("fwd=request")
            return response
        store = request.app.state.gateway.services.store
        flights = request.app.state.gateway.services.flights
        group, name = key
        flight = f"{group}|{name}"
        entry: Entry | None = None
        if "no-cache" not in asked:
            if "cache_lookup" in ctx.extra:
                raw = ctx.extra["cache_lookup"]
            else:
                raw = await _get(store, group, name)
            entry = Entry.decode(raw) if raw is not None else None
            if entry is not None and entry.age() < spec.ttl:
                return _from_entry(
                    entry, _status("hit", f"ttl={math.floor(spec.ttl - entry.age())}")
                )
        fwd = "fwd=request" if "no-cache" in asked else "fwd=stale" if entry else "fwd=miss"

        async def fill() -> tuple[str, Any]:
            # the rate-limit step's round trip may have tried the lock already, for this
            # request or for one that will join this flight (see SingleFlight)
            if ctx.extra.pop("cache_filling", None) is None:
                locked = await _lock(store, group, name, spec.lock)
            else:
                locked = flights.holds(flight)
            if not locked and "no-cache" not in asked:
                # The holder may be a request of this process whose store reply came back
                # after ours: it registers the lock and joins this flight, so stop waiting
                # and fill for it as soon as the lock shows up here.
                raw = await wait_for_entry(
                    lambda: _get(store, group, name), spec.lock, lambda: flights.holds(flight)
                )
                fresh = Entry.decode(raw) if raw is not None else None
                if fresh is not None and fresh.age() < spec.ttl:
                    return "collapsed", fresh
                locked = flights.holds(flight)
            try:
                response = await call_next(request, ctx)
                body = getattr(response, "body", None)
                if response.status_code != 200 or not isinstance(body, bytes):
                    return "response", response  # not stored: nothing to share either
                kept = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
                media = response.headers.get("content-type", "application/json")
                produced = Entry(time.time(), media, kept, body)
                stored = len(body) <= spec.max_entry_bytes
                if stored:
                    ttl = spec.ttl + (spec.stale_if_error or 0.0)
                    stored = await _set(store, group, name, produced.encode(), ttl, locked)
                    locked = locked and not stored  # a stored entry's lock went with it
                return ("stored" if stored else "fresh"), produced
            finally:
                flights.drop(flight)
                if locked:
                    await _unlock(store, group, name)

        try:
            (kind, value), collapsed = await flights.run(flight, fill)
        except GatewayError as exc:
            stale = spec.stale_if_error
            if entry is not None and stale and exc.status >= 500 and entry.age() < spec.ttl + stale:
                return _from_entry(
                    entry, _status("fwd=stale", f"fwd-status={exc.status}", "detail=stale-if-error")
                )
            raise
        if kind == "response":
            value.headers["Cache-Status"] = _status(fwd, f"fwd-status={value.status_code}")
            return value  # type: ignore[no-any-return]
        if kind == "collapsed" or collapsed:
            return _from_entry(value, _status(fwd, "collapsed"))
        return _from_entry(value, _status(fwd, "stored") if kind == "stored" else _status(fwd))


async def _get(store: Any, group: str, name: str) -> bytes | None:
    try:
        raw: bytes | None = await store.cache_get(group, name)
        return raw
    except GatewayError:
        return None  # the cache is an optimisation: an outage is a miss


async def _set(store: Any, group: str, name: str, value: bytes, ttl: float, unlock: bool) -> bool:
    try:
        await store.cache_set(group, name, value, ttl, unlock=unlock)
        return True
    except GatewayError:
        return False


async def _lock(store: Any, group: str, name: str, ttl: float) -> bool:
    try:
        locked: bool = await store.cache_lock(group, name, ttl)
        return locked
    except GatewayError:
        return True  # no store: behave as the only one


async def _unlock(store: Any, group: str, name: str) -> None:
    with contextlib.suppress(GatewayError):  # the lock expires on its own
        await store.cache_unlock(group, name)
