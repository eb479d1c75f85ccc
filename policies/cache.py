"""The response cache, for models declared deterministic with a ``cache:`` section.

Hits come from the lookup the rate-limit step already made (one store round trip for both).
Misses are collapsed: one backend call per key within a process (a shared future) and across
replicas (a short store lock; the others poll for the entry). Only whole 200 answers up to
``max_entry_bytes`` are stored. Client ``Cache-Control: no-cache`` skips the lookup but stores
the fresh answer; ``no-store`` does neither. Every cacheable answer says what happened in
``Cache-Status`` (RFC 9211): ``hit``, ``fwd=miss``, ``fwd=stale``, ``fwd=request``,
``collapsed``, ``stored``. With ``stale_if_error``, an expired entry answers when the backend
fails.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from gateway.caching.cache import ResponseCache
from gateway.caching.config import CacheSpec
from gateway.caching.entry import Entry
from gateway.caching.flight import wait_for_entry
from gateway.caching.keys import directives
from gateway.call import CacheProbe, Call, CallKind, Next, Reply
from gateway.config.live import Runtime
from gateway.errors import GatewayError, InternalError

NAME = "model-gateway"
_KEPT_HEADERS = ("x-model-version",)
_NONE: frozenset[str] = frozenset()


def _status(*params: str) -> str:
    return "; ".join((NAME, *params))


def _from_entry(entry: Entry, status: str, age: float | None = None) -> Reply:
    """The answer from ``entry`` (``age``: its age, when the caller has just read it)."""
    seconds = math.floor(entry.age() if age is None else age)
    headers = [*entry.headers.items(), ("Cache-Status", status), ("Age", str(seconds))]
    return Reply(v2_json=entry.body, headers=headers)


class CachePolicy:
    name: ClassVar[str] = "cache"
    kinds: ClassVar[frozenset[CallKind]] = frozenset({"infer"})

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        return cls(runtime.cache) if runtime.cache.specs else None

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        cache = self.cache
        spec = cache.spec_for(call)
        if spec is None:
            return await call_next(call)
        probe = call.probe
        if probe is not None and probe.filling:
            # This process holds the fill lock from the limit step's round trip: say so before
            # anything awaits, so identical misses of this process join rather than poll.
            cache.flights.hold(probe.flight, spec.lock)
        # a probe from the rate-limit step was made only without no-cache and no-store
        asked = directives(call.headers) if probe is None else _NONE
        if "no-store" in asked:
            call.cache = "bypass"
            reply = await call_next(call)
            reply.set_header("Cache-Status", _status("fwd=request"))
            return reply
        if probe is None:
            probe = call.probe = await cache.key(call, spec)
        flights = cache.flights
        entry: Entry | None = None
        if "no-cache" not in asked:
            if probe.read:
                entry = Entry.decode(probe.found) if probe.found is not None else None
            else:
                entry = await cache.get(probe)
            age = entry.age() if entry is not None else 0.0
            if entry is not None and age < spec.ttl:
                call.cache = "hit"
                return _from_entry(entry, _status("hit", f"ttl={math.floor(spec.ttl - age)}"), age)
        fwd = "fwd=request" if "no-cache" in asked else "fwd=stale" if entry else "fwd=miss"
        call.cache = "bypass" if "no-cache" in asked else "stale" if entry else "miss"
        flight = probe.flight
        try:
            filled, collapsed = await flights.run(
                flight, self._fill, call, call_next, probe, flight, spec, asked
            )
        except GatewayError as exc:
            stale = spec.stale_if_error
            if entry is not None and stale and exc.status >= 500 and entry.age() < spec.ttl + stale:
                call.cache = "stale"
                return _from_entry(
                    entry, _status("fwd=stale", f"fwd-status={exc.status}", "detail=stale-if-error")
                )
            raise
        return _answer(call, filled, collapsed, fwd)

    async def _fill(
        self,
        call: Call,
        call_next: Next,
        probe: CacheProbe,
        flight: str,
        spec: CacheSpec,
        asked: frozenset[str],
    ) -> _Filled:
        """The flight's work: wait for another replica's entry, or call the backend and store."""
        cache = self.cache
        flights = cache.flights
        # the rate-limit step's round trip may have tried the lock already, for this call
        # or for one that will join this flight (see SingleFlight)
        if probe.filling is None:
            locked = await cache.lock(probe)
        else:
            locked = flights.holds(flight)
        if not locked and "no-cache" not in asked:
            # The holder may be a call of this process whose store reply came back after
            # ours: it registers the lock and joins this flight, so stop waiting and fill
            # for it as soon as the lock shows up here.
            raw = await wait_for_entry(
                lambda: cache.store.cache_get(probe.group, probe.key),
                spec.lock,
                lambda: flights.holds(flight),
            )
            fresh = Entry.decode(raw) if raw is not None else None
            if fresh is not None and fresh.age() < spec.ttl:
                return _Filled("collapsed", fresh, None)
            locked = flights.holds(flight)
        try:
            reply = await call_next(call)
            response = reply.response
            if reply.status != 200 or response is None:
                return _Filled("reply", None, reply)  # not stored
            kept = {k: v for k, v in reply.headers if k.lower() in _KEPT_HEADERS}
            resolved = call.resolved
            model = resolved.model if resolved is not None else ""
            produced = Entry.of(response, model, call.version or "", kept)
            value = produced.encode()
            stored = len(value) <= spec.max_entry_bytes
            if stored:
                ttl = spec.ttl + (spec.stale_if_error or 0.0)
                stored = await cache.put(probe, value, ttl, locked)
                locked = locked and not stored  # a stored entry's lock went with it
            return _Filled("stored" if stored else "fresh", produced, reply)
        finally:
            flights.drop(flight)
            if locked:
                await cache.unlock(probe)


@dataclass(slots=True)
class _Filled:
    """What one flight produced. ``reply`` is the leader's own answer: a caller that joined
    the flight gets its own Reply, from the entry or a copy, never the leader's object."""

    kind: Literal["stored", "fresh", "collapsed", "reply"]
    entry: Entry | None
    reply: Reply | None


def _answer(call: Call, filled: _Filled, joined: bool, fwd: str) -> Reply:
    entry, reply = filled.entry, filled.reply
    if entry is None or reply is None or joined or filled.kind == "collapsed":
        if entry is not None:  # another caller's answer, from the store or this process
            call.cache = "collapsed"
            return _from_entry(entry, _status(fwd, "collapsed"))
        if reply is None:  # cannot happen: a flight without an entry has the leader's reply
            raise InternalError("a cache flight produced nothing")
        if joined:  # not stored: a copy of the leader's answer, headers its own
            call.cache = "collapsed"
            reply = dataclasses.replace(reply, headers=list(reply.headers))
            reply.set_header(
                "Cache-Status", _status(fwd, f"fwd-status={reply.status}", "collapsed")
            )
            return reply
        reply.set_header("Cache-Status", _status(fwd, f"fwd-status={reply.status}"))
        return reply
    # The leader's own reply (headers set nearer the backend kept), answered as the cache will.
    reply.v2_json = entry.body
    reply.set_header(
        "Cache-Status", _status(fwd, "stored") if filled.kind == "stored" else _status(fwd)
    )
    reply.set_header("Age", "0")
    return reply
