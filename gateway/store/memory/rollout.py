"""Rollout state, events, figures and the driver's lease, in this process's memory."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence


class MemoryRollouts:
    """The rollout part of :class:`~gateway.store.memory.MemoryStore` (a mixin)."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, monotonic deadline)
        self._states: dict[str, tuple[int, str]] = {}  # model -> (revision, state JSON)
        self._events: dict[str, deque[str]] = {}
        # (model, step) -> (monotonic deadline, version -> field -> total)
        self._figures: dict[tuple[str, str], tuple[float, defaultdict[str, dict[str, int]]]] = {}

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        if ttl <= 0:
            raise ValueError(f"lease: ttl must be positive, got {ttl}")
        now = time.monotonic()
        held = self._leases.get(name)
        if held is not None and held[0] != holder and held[1] > now:
            return False
        self._leases[name] = (holder, now + ttl)
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        held = self._leases.get(name)
        if held is not None and held[0] == holder:
            del self._leases[name]

    async def rollout_state(self, model: str) -> tuple[int, str | None]:
        rev, state = self._states.get(model, (0, None))
        return rev, state

    async def rollout_swap(self, model: str, rev: int, state: str) -> bool:
        if self._states.get(model, (0, ""))[0] != rev:
            return False
        self._states[model] = (rev + 1, state)
        return True

    async def rollout_models(self) -> list[str]:
        return sorted(self._states)

    async def rollout_event(self, model: str, event: str, cap: int) -> None:
        events = self._events.get(model)
        if events is None or events.maxlen != cap:
            events = self._events[model] = deque(events or (), maxlen=cap)
        events.append(event)

    async def rollout_events(self, model: str, limit: int) -> list[str]:
        newest = reversed(self._events.get(model, ()))
        return [event for _, event in zip(range(max(limit, 0)), newest, strict=False)]

    async def rollout_count(
        self, model: str, step: str, counts: Mapping[str, Mapping[str, int]], ttl: float
    ) -> None:
        now = time.monotonic()
        for key in [k for k, (deadline, _) in self._figures.items() if deadline <= now]:
            del self._figures[key]
        _, totals = self._figures.get((model, step), (0.0, defaultdict(dict)))
        for version, fields in counts.items():
            row = totals[version]
            for name, value in fields.items():
                row[name] = row.get(name, 0) + value
        self._figures[(model, step)] = (now + ttl, totals)

    async def rollout_figures(
        self, model: str, step: str, versions: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        deadline, totals = self._figures.get((model, step), (0.0, defaultdict(dict)))
        live = deadline > time.monotonic()
        return {v: dict(totals.get(v, {})) if live else {} for v in versions}
