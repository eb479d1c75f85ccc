"""Limits and the response cache on Redis: :meth:`RedisStore.take` and friends, on the Lua of
:mod:`gateway.store.redis.scripts`.

Key layout (under the store's prefix ``P``; ``{group}`` is the hash tag, so the keys of one
group share a slot and one Lua call decides them all)::

    P{<group>}:l:<name>            hash    a bucket: tokens, ts (server time), PEXPIRE ~ refill
    P{<group>}:l:<name>:<index>    string  a window's count in window <index>, PEXPIRE past its end
    P{<group>}:l:<name>            zset    a concurrency limit: lease ids scored by expiry
    P{<group>}:c:<key>             string  a cache entry (bytes), PX
    P{<group>}:c:<key>:lock        string  its fill lock, NX PX

Values travel undecoded (``NEVER_DECODE``): cache entries are bytes, whatever the client's
``decode_responses``.

The hot commands (take's Lua call, the cache's GET, SET and FILL) go on a
:class:`~gateway.store.redis.lane.Lane` of their own on one Redis server, and through redis-py
on a Redis Cluster. The rarer steps stay on redis-py everywhere: the refund and peeks after a
refusal, a cache entry of another slot read beside a take, release, lock, unlock and purge.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import groupby
from typing import Any, Final

from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster
from redis.client import NEVER_DECODE

from gateway.store.base import Limit, LimitState, Verdict, check_cache_key, check_take
from gateway.store.redis.keys import UNAVAILABLE, KeyLayout, mapped, unavailable
from gateway.store.redis.lane import Lane
from gateway.store.redis.lane import pack_command as _pack
from gateway.store.redis.scripts import FILL as FILL  # re-exported: bench/floor.py
from gateway.store.redis.scripts import LIMITS as LIMITS

_DELETE_BATCH: Final = 500
_SPECS: Final = 10_000  # memoised limit specs (see RedisLimits._spec)
# plans known by a tuple's identity: few (the callers of the moment), so that callers passing a
# fresh tuple per take do not keep thousands of them alive (and tracked by the GC) in between
_SEEN: Final = 1024


@dataclass(frozen=True, slots=True)
class _Decision:
    """One Lua call's answer for the limits of one group."""

    admitted: bool
    retry_after: float
    states: list[LimitState]
    marks: list[str]
    cache: bytes | None
    filling: bool | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A set of limits prepared for :meth:`RedisLimits.take`: grouped (sorted by group); with
    one group, its keys and script arguments (six per limit, no marks), and the Lua call's
    command already packed around what changes per call (:class:`_Wire`), one per shape:
    without a cache entry, with one, with one and its fill lock."""

    groups: list[list[Limit]]
    first: str | None  # the first group
    held: bool  # a concurrency limit among them: a take needs a lease
    keys: list[str]
    specs: list[str]
    wires: tuple[_Wire, _Wire, _Wire] | None  # by shape: 0, 1 (cache), 2 (cache and lock)


@dataclass(frozen=True, slots=True)
class _Wire:
    """A one-group take's command in RESP, but for its middle: ``sha`` (or ``script``, for a
    server that lost it) then the middle, packed per call (the cache entry's keys, ``take``,
    cost, lease and lock time), then ``tail`` (the limits' arguments)."""

    sha: bytes  # *<count>, EVALSHA, the sha, the number of keys, the limits' keys
    script: bytes  # the same with EVAL and the script
    tail: bytes


@dataclass(frozen=True, slots=True)
class _Call:
    """One Lua call: a mode on the limits of one group (and maybe a cache entry to read)."""

    mode: str
    limits: list[Limit]
    marks: list[str] | None = None
    cache_key: str | None = None
    lock: tuple[str, int] | None = None  # the fill lock's key and ms, with cache_key


class RedisLimits:
    """The limits and cache half of :class:`~gateway.store.redis.RedisStore` (see there)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._client = client
        self._keys = keys
        self._script = client.register_script(LIMITS)
        self._fill = client.register_script(FILL)
        self._cluster = isinstance(client, RedisCluster)
        # the hot commands (take's Lua, the cache's GET, SET and FILL) on a lane of their own;
        # on a RedisCluster (or a pool the lane cannot copy), through redis-py
        self._lane = (
            None if isinstance(client, RedisCluster) else Lane.from_pool(client.connection_pool)
        )
        self._specs: dict[Limit, tuple[str, list[str]]] = {}
        self._plans: dict[tuple[Limit, ...], _Plan] = {}
        self._seen: dict[int, tuple[tuple[Limit, ...], _Plan]] = {}  # _plan by identity

    async def close(self) -> None:
        if self._lane is not None:
            await self._lane.close()

    def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> Coroutine[Any, Any, tuple[Verdict, bytes | None]]:
        """Checks the call (a bad one raises here), then hands back the coroutine that decides
        it: for the limits of one group, :meth:`_take_one`'s own (no coroutine around it)."""
        plan = self._plan(limits, cost, lease)
        if (plan.held and not lease) or not (math.isfinite(cost) and cost >= 0):
            check_take(limits, cost, lease)  # raises
        fill = None
        if cache is not None:
            check_cache_key(*cache)
            if lock is not None:
                fill = (self._keys.cache_lock(*cache), _milliseconds(lock))
        if limits and len(plan.groups) == 1 and (cache is None or cache[0] == plan.first):
            return self._take_one(plan, cost, lease, cache, fill)
        return self._take_groups(limits, plan.groups, cost, lease, cache, fill)

    async def _take_groups(
        self,
        limits: Sequence[Limit],
        groups: list[list[Limit]],
        cost: float,
        lease: str | None,
        cache: tuple[str, str] | None,
        fill: tuple[str, int] | None,
    ) -> tuple[Verdict, bytes | None]:
        """:meth:`take` on no limits, or several groups, or a cache entry of another slot."""
        if not limits:
            if fill is None:
                admit = Verdict(admitted=True, states=(), retry_after=0.0)
                return admit, await self._cache(cache)
            assert cache is not None
            with mapped("take"):
                only = await self._decide(
                    _Call("take", [], cache_key=self._keys.cache(*cache), lock=fill), 1.0, ""
                )
            return Verdict(True, (), 0.0, filling=only.filling), only.cache
        args = (cost, lease or "")
        inline = cache is not None and cache[0] == groups[0][0].group
        decided: list[_Decision] = []
        value: bytes | None = None
        with mapped("take"):
            for i, group in enumerate(groups):
                if decided and not decided[-1].admitted:
                    break
                if i == 0 and cache is not None and not inline:  # another slot: same pipeline
                    answers, value = await self._pipeline([_Call("take", group)], *args, cache)
                    decided += answers
                    continue
                cache_key = self._keys.cache(*cache) if cache is not None and i == 0 else None
                # the lock only when this call decides alone: a later group could still refuse
                alone = cache_key is not None and len(groups) == 1
                call = _Call("take", group, cache_key=cache_key, lock=fill if alone else None)
                decided.append(await self._decide(call, *args))
                value = decided[0].cache if cache_key is not None else value
            rejected = len(decided) - 1
            if not decided[rejected].admitted:  # give back what earlier groups took; see the rest
                calls = [
                    _Call("refund", g, d.marks)
                    for g, d in zip(groups, decided[:rejected], strict=False)
                ]
                calls += [_Call("peek", group) for group in groups[rejected + 1 :]]
                if calls:
                    answers, _ = await self._pipeline(calls, *args)
                    decided = [*answers[:rejected], decided[rejected], *answers[rejected:]]
        return _verdict(limits, decided, lease), value

    async def _take_one(
        self,
        plan: _Plan,
        cost: float,
        lease: str | None,
        cache: tuple[str, str] | None,
        fill: tuple[str, int] | None,
    ) -> tuple[Verdict, bytes | None]:
        """:meth:`take` on the limits of one group (and maybe a cache entry of its slot): one
        Lua call, its command from the plan's prepared keys and arguments (on the lane: the
        plan's packed command around this call's middle)."""
        limits = plan.groups[0]
        lane, wires, amount, leased = self._lane, plan.wires, repr(float(cost)), lease or ""
        try:  # mapped("take"), without a context manager per take
            if lane is not None and wires is not None:
                if cache is None:
                    wire, middle = wires[0], _pack(("take", amount, leased, ""))
                elif fill is None:
                    entry = self._keys.cache(*cache)
                    wire, middle = wires[1], _pack((entry, "take", amount, leased, ""))
                else:
                    entry, (lock, ms) = self._keys.cache(*cache), fill
                    wire = wires[2]
                    middle = _pack((entry, lock, "take", amount, leased, str(ms)))
                # middle[4:]: without its own "*<n>\r\n" (n < 10), the wire's count has it
                try:
                    reply = await lane.call_packed(b"".join((wire.sha, middle[4:], wire.tail)))
                except rx.NoScriptError:
                    reply = await lane.call_packed(b"".join((wire.script, middle[4:], wire.tail)))
            else:
                keys, args = plan.keys, [amount, leased, ""]
                if cache is not None:
                    keys = [*keys, self._keys.cache(*cache)]
                    if fill is not None:
                        keys.append(fill[0])
                        args[2] = str(fill[1])
                reply = await self._eval(
                    self._script, str(len(keys)), *keys, "take", *args, *plan.specs
                )
        except UNAVAILABLE as exc:
            raise unavailable("take", exc) from exc
        admitted = int(reply[0]) == 1
        states = tuple(  # a list first: no generator to resume per limit
            [
                LimitState(x.group, x.name, x.limit, float(reply[at]), float(reply[at + 1]))
                for at, x in zip(range(2, 2 + 3 * len(limits), 3), limits, strict=True)
            ]
        )
        value = reply[2 + 3 * len(limits)] if cache is not None else None
        filling = None
        if fill is not None and value is None and admitted:
            filling = int(reply[3 + 3 * len(limits)]) == 1
        verdict = Verdict(
            admitted,
            states,
            0.0 if admitted else float(reply[1]),
            lease if admitted and plan.held else None,
            filling,
        )
        return verdict, None if value is None else bytes(value)

    def _plan(self, limits: Sequence[Limit], cost: float, lease: str | None) -> _Plan:
        """What :meth:`take` prepares once per set of limits (a caller's are the same on every
        request): checked, grouped, their keys and script arguments; the memo is bounded."""
        if type(limits) is tuple:  # immutable: known by identity, no hash of its limits
            seen = self._seen.get(id(limits))
            if seen is not None and seen[0] is limits:
                return seen[1]
        known = self._plans.get(tuple(limits))
        if known is None:
            check_take(limits, cost, lease)  # once per set; then what changes per call
            groups = [list(g) for _, g in groupby(sorted(limits, key=_group), _group)]
            specs: list[str] = []
            for limit in groups[0] if len(groups) == 1 else ():
                specs += [*self._spec(limit)[1], ""]
            keys = [self._spec(x)[0] for x in groups[0]] if len(groups) == 1 else []
            known = _Plan(
                groups,
                groups[0][0].group if groups else None,
                any(x.kind == "concurrency" for x in limits),
                keys,
                specs,
                self._wires(keys, specs) if keys else None,
            )
            if len(self._plans) >= _SPECS:
                self._plans.clear()
            self._plans[tuple(limits)] = known
        if type(limits) is tuple:
            if len(self._seen) >= _SEEN:
                self._seen.clear()
            self._seen[id(limits)] = (limits, known)  # held: its id is not reused meanwhile
        return known

    def _wires(self, keys: list[str], specs: list[str]) -> tuple[_Wire, _Wire, _Wire]:
        """The packed parts of a one-group take's command, for each shape (see :class:`_Wire`):
        the same bytes ``pack_command`` makes of the whole command."""

        text = self._script.script
        text = text if isinstance(text, str | bytes) else bytes(text)

        def wire(extra: int) -> _Wire:
            count = 3 + len(keys) + extra + 4 + len(specs)  # the middle: extra keys + 4 args
            number = str(len(keys) + extra)
            sha = _pack(("EVALSHA", self._script.sha, number, *keys))
            script = _pack(("EVAL", text, number, *keys))
            tail = _pack(tuple(specs)) if specs else b""
            start = b"*%d\r\n" % count
            return _Wire(start + _body(sha), start + _body(script), _body(tail))

        return wire(0), wire(1), wire(2)

    async def release(self, limits: Sequence[Limit], lease: str) -> None:
        held = [x for x in limits if x.kind == "concurrency"]
        if not held:
            return
        with mapped("release"):
            async with self._client.pipeline(transaction=False) as pipe:
                for limit in held:
                    pipe.zrem(self._keys.limit(limit.group, limit.name), lease)
                await pipe.execute()

    async def cache_get(self, group: str, key: str) -> bytes | None:
        check_cache_key(group, key)
        return await self._cache((group, key))

    async def cache_set(
        self, group: str, key: str, value: bytes, ttl: float, *, unlock: bool = False
    ) -> None:
        check_cache_key(group, key)
        entry, ms = self._keys.cache(group, key), _milliseconds(ttl)
        try:  # mapped("cache_set"), without a context manager per call
            if not unlock:
                await self._send("SET", entry, value, "PX", str(ms))
                return
            lock = self._keys.cache_lock(group, key)  # the same slot: one call, one trip
            await self._eval(self._fill, "2", entry, lock, value, str(ms))
        except UNAVAILABLE as exc:
            raise unavailable("cache_set", exc) from exc

    async def cache_lock(self, group: str, key: str, ttl: float) -> bool:
        check_cache_key(group, key)
        lock = self._keys.cache_lock(group, key)
        with mapped("cache_lock"):
            return bool(await self._client.set(lock, b"1", nx=True, px=_milliseconds(ttl)))

    async def cache_unlock(self, group: str, key: str) -> None:
        check_cache_key(group, key)
        with mapped("cache_unlock"):
            await self._client.delete(self._keys.cache_lock(group, key))

    async def cache_purge(self, pattern: str) -> int:
        # a literal group narrows the scan to its keys (group names hold no '|'); the glob
        # itself is matched here
        head, bar, _ = pattern.partition("|")
        group = head if bar and not any(c in head for c in "*?[") else None
        doomed: dict[str, None] = {}  # SCAN may return a key twice
        with mapped("cache_purge"):
            # SCAN on a RedisCluster client visits every master
            async for name in self._client.scan_iter(self._keys.cache_match(group), 1000):
                entry = self._keys.cache_entry(str(name), group)
                if entry is not None and fnmatchcase(f"{entry[0]}|{entry[1]}", pattern):
                    doomed[str(name)] = None
            deleted = 0
            names = list(doomed)
            for start in range(0, len(names), _DELETE_BATCH):
                async with self._client.pipeline(transaction=False) as pipe:
                    for name in names[start : start + _DELETE_BATCH]:
                        pipe.delete(name)
                    deleted += sum(await pipe.execute())
        return deleted

    async def _cache(self, cache: tuple[str, str] | None) -> bytes | None:
        if cache is None:
            return None
        try:  # mapped("cache_get"), without a context manager per call
            value = await self._send("GET", self._keys.cache(*cache))
        except UNAVAILABLE as exc:
            raise unavailable("cache_get", exc) from exc
        return None if value is None else bytes(value)

    def _command(self, call: _Call, cost: float, lease: str) -> list[Any]:
        keys, args = [], [call.mode, repr(float(cost)), lease, ""]
        if call.lock is not None:
            args[3] = str(call.lock[1])
        for i, limit in enumerate(call.limits):
            key, spec = self._spec(limit)
            keys.append(key)
            args += spec
            args.append(call.marks[i] if call.marks is not None else "")
        if call.cache_key is not None:
            keys.append(call.cache_key)
        if call.lock is not None:
            keys.append(call.lock[0])
        # all strings: hiredis packs them (the lane, PackedConnection)
        return [str(len(keys)), *keys, *args]

    def _spec(self, limit: Limit) -> tuple[str, list[str]]:
        """A limit's key and its five script arguments, built once per limit (a limit is the
        same on every request of its caller)."""
        known = self._specs.get(limit)
        if known is None:
            if len(self._specs) >= _SPECS:
                self._specs.clear()
            spec = [limit.kind, repr(limit.limit), repr(limit.rate), repr(limit.window)]
            spec.append(repr(limit.lease_ttl))
            known = self._specs[limit] = (self._keys.limit(limit.group, limit.name), spec)
        return known

    async def _decide(self, call: _Call, cost: float, lease: str) -> _Decision:
        """One Lua call: EVALSHA, or EVAL when the server lost the script (SCRIPT FLUSH,
        restart, failover); EVAL caches it again."""
        return _decision(call, await self._eval(self._script, *self._command(call, cost, lease)))

    async def _eval(self, script: Any, *command: Any) -> Any:
        try:
            return await self._send("EVALSHA", script.sha, *command)
        except rx.NoScriptError:
            return await self._send("EVAL", script.script, *command)

    def _send(self, *command: Any) -> Awaitable[Any]:
        """One hot-path command, undecoded: on the lane (pipelined with the commands of the
        same loop turn) when there is one. Its reply's awaitable: no coroutine of its own."""
        if self._lane is not None:
            return self._lane.call(*command)
        return self._client.execute_command(*command, **{NEVER_DECODE: True})

    async def _pipeline(
        self, calls: list[_Call], cost: float, lease: str, cache: tuple[str, str] | None = None
    ) -> tuple[list[_Decision], bytes | None]:
        """Several Lua calls (and a cache GET) in one round trip per node. A RedisCluster
        pipeline refuses EVALSHA, so it carries the script; elsewhere a call that found no
        script is run again alone."""
        verb, body = (
            ("EVAL", self._script.script) if self._cluster else ("EVALSHA", self._script.sha)
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.execute_command(
                    verb, body, *self._command(call, cost, lease), **{NEVER_DECODE: True}
                )
            if cache is not None:
                pipe.execute_command("GET", self._keys.cache(*cache), **{NEVER_DECODE: True})
            replies = await pipe.execute(raise_on_error=False)
        decisions = []
        for call, reply in zip(calls, replies, strict=False):  # then the GET
            if isinstance(reply, rx.NoScriptError):
                decisions.append(await self._decide(call, cost, lease))
            elif isinstance(reply, Exception):
                raise reply
            else:
                decisions.append(_decision(call, reply))
        value = replies[-1] if cache is not None else None
        if isinstance(value, Exception):
            raise value
        return decisions, None if value is None else bytes(value)


def _group(limit: Limit) -> str:
    return limit.group


def _body(packed: bytes) -> bytes:
    """A packed command's arguments without its ``*<count>`` line."""
    return packed[packed.index(b"\n") + 1 :] if packed else b""


def _milliseconds(ttl: float) -> int:
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"cache: ttl must be positive, got {ttl}")
    return max(1, math.ceil(ttl * 1000))


def _decision(call: _Call, reply: list[Any]) -> _Decision:
    states, marks = [], []
    for i, limit in enumerate(call.limits):
        remaining, reset, mark = reply[2 + 3 * i : 5 + 3 * i]
        states.append(
            LimitState(limit.group, limit.name, limit.limit, float(remaining), float(reset))
        )
        marks.append(bytes(mark).decode())
    end = 2 + 3 * len(call.limits)
    cache = reply[end] if call.cache_key is not None else None
    admitted = int(reply[0]) == 1
    filling = None
    if call.lock is not None and cache is None and admitted:
        filling = int(reply[end + 1]) == 1
    return _Decision(
        admitted=admitted,
        retry_after=float(reply[1]),
        states=states,
        marks=marks,
        cache=None if cache is None else bytes(cache),
        filling=filling,
    )


def _verdict(limits: Sequence[Limit], decided: list[_Decision], lease: str | None) -> Verdict:
    admitted = all(d.admitted for d in decided)
    by_name = {(s.group, s.name): s for decision in decided for s in decision.states}
    retry = 0.0 if admitted else max(d.retry_after for d in decided if not d.admitted)
    held = admitted and any(x.kind == "concurrency" for x in limits)
    return Verdict(
        admitted=admitted,
        states=tuple(by_name[(x.group, x.name)] for x in limits),
        retry_after=retry,
        lease=lease if held else None,
    )
