"""What the store keeps of the live series (``gateway.telemetry.series``): each replica's
recent steps, as opaque texts, for as long as the replica keeps publishing.

Every replica publishes its finished steps every step, in one call, under its own id; a
replica that stops publishing drops out of :meth:`SeriesStore.series_read` when its time to
live runs out (a few steps). The store never reads the texts: summing replicas is the
reader's work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class SeriesStore(Protocol):
    """The live-series part of :class:`~gateway.store.base.Store`."""

    async def series_publish(
        self,
        replica: str,
        steps: Mapping[int, str],
        *,
        keep_from: int,
        ttl: float,
        summary: str = "",
    ) -> None:
        """Store ``replica``'s ``steps`` (step start in unix seconds → text; a step already
        stored is replaced), forget its steps that start before ``keep_from``, and keep the
        replica live for ``ttl`` seconds (``ttl > 0``) on the store's clock, steps or none.
        ``summary`` replaces the replica's one summary text (its running totals of what no
        step holds: shadow traffic's). One round trip (on Redis one Lua call, one hash
        slot)."""

    async def series_read(self, steps: Sequence[int]) -> dict[str, dict[int, str]]:
        """The live replicas' texts of ``steps``: replica → step start → text (a live replica
        that stored none of them maps to an empty dict)."""
        ...

    async def series_summaries(self) -> dict[str, str]:
        """The live replicas' summary texts: replica → its last ``summary`` ("" for none)."""
        ...
