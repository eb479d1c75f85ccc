"""The replicas' live series in this process's memory: only this process's own steps."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence


class MemorySeries:
    """The live-series part of :class:`~gateway.store.memory.MemoryStore` (a mixin)."""

    def __init__(self) -> None:
        # replica -> (monotonic deadline, step start -> text)
        self._series: dict[str, tuple[float, dict[int, str]]] = {}
        self._summaries: dict[str, str] = {}  # replica -> its summary text

    async def series_publish(
        self,
        replica: str,
        steps: Mapping[int, str],
        *,
        keep_from: int,
        ttl: float,
        summary: str = "",
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"series_publish: ttl must be positive, got {ttl}")
        now = time.monotonic()
        for gone in [r for r, (deadline, _) in self._series.items() if deadline <= now]:
            del self._series[gone]
            self._summaries.pop(gone, None)
        _, held = self._series.get(replica, (0.0, {}))
        held.update(steps)
        for start in [s for s in held if s < keep_from]:
            del held[start]
        self._series[replica] = (now + ttl, held)
        self._summaries[replica] = summary

    async def series_read(self, steps: Sequence[int]) -> dict[str, dict[int, str]]:
        now = time.monotonic()
        return {
            replica: {s: held[s] for s in steps if s in held}
            for replica, (deadline, held) in self._series.items()
            if deadline > now
        }

    async def series_summaries(self) -> dict[str, str]:
        now = time.monotonic()
        return {
            replica: self._summaries.get(replica, "")
            for replica, (deadline, _) in self._series.items()
            if deadline > now
        }
