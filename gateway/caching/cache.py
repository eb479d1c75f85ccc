"""The response cache of one route table: which calls it may answer, their keys, and the
store's cache operations. The cache is an optimisation: a store that does not answer is a miss,
never an error.

The cache policy (``policies/cache.py``) drives it; the rate-limit step asks :meth:`probe` for
the entry to read in its own store round trip (one round trip for the limit and the lookup).
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any

from gateway.caching.config import CacheSpec
from gateway.caching.entry import Entry
from gateway.caching.flight import SingleFlight
from gateway.caching.keys import cache_key, directives
from gateway.call import CacheProbe, Call
from gateway.errors import GatewayError
from gateway.store import Store


class ResponseCache:
    def __init__(self, specs: Mapping[str, CacheSpec], store: Store, flights: SingleFlight) -> None:
        self.specs = specs  # model -> its cache section, for the models that have one
        self.store = store
        self.flights = flights

    def spec_for(self, call: Call) -> CacheSpec | None:
        """The model's cache settings when this call may be answered from the cache."""
        if call.kind != "infer" or call.resolved is None or not self.specs:
            return None
        return self.specs.get(call.resolved.model)

    def probe(self, call: Call) -> Coroutine[Any, Any, CacheProbe] | None:
        """The entry to look up now (to await: :meth:`key`'s own coroutine, no coroutine of
        its own around it); None when none is wanted (an uncached model, or the client's
        ``no-cache`` or ``no-store``)."""
        spec = self.spec_for(call)
        if spec is None:
            return None
        asked = directives(call.headers)
        if "no-cache" in asked or "no-store" in asked:
            return None
        return self.key(call, spec)

    async def key(self, call: Call, spec: CacheSpec) -> CacheProbe:
        """The call's entry (decodes the tensors: a malformed body is a 400 here)."""
        resolved = call.resolved
        if resolved is None:
            raise RuntimeError("the cache needs the traffic step's version")  # a wiring bug
        request = await call.inference()
        group, key = cache_key(request, call.tenant, spec.shared, resolved.model, resolved.version)
        return CacheProbe(group, key, spec.lock)

    async def get(self, probe: CacheProbe) -> Entry | None:
        try:
            raw = await self.store.cache_get(probe.group, probe.key)
        except GatewayError:
            return None  # an outage is a miss
        return Entry.decode(raw) if raw is not None else None

    async def put(self, probe: CacheProbe, value: bytes, ttl: float, unlock: bool) -> bool:
        try:
            await self.store.cache_set(probe.group, probe.key, value, ttl, unlock=unlock)
        except GatewayError:
            return False
        return True

    async def lock(self, probe: CacheProbe) -> bool:
        try:
            return await self.store.cache_lock(probe.group, probe.key, probe.lock)
        except GatewayError:
            return True  # no store: behave as the only one

    async def unlock(self, probe: CacheProbe) -> None:
        with contextlib.suppress(GatewayError):  # the lock expires on its own
            await self.store.cache_unlock(probe.group, probe.key)
