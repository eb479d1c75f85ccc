"""Usage counters in this process's memory, rolled up and expired as on Redis."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gateway.store.usage import Granularity, UsageKey, UsageRow, bucket_expiry, rolled_up

_Bucket = tuple[Granularity, int, str]  # granularity, start, tenant


class MemoryUsage:
    """The usage part of :class:`~gateway.store.memory.MemoryStore` (a mixin)."""

    def __init__(self) -> None:
        # bucket → (model, version) → field → count
        self._usage: dict[_Bucket, dict[tuple[str, str], dict[str, int]]] = {}
        self._usage_swept = 0.0

    async def usage_add(self, counts: Mapping[UsageKey, Mapping[str, int]]) -> None:
        now = time.time()
        self._sweep_usage(now)
        for bucket, rows in rolled_up(counts).items():
            if bucket_expiry(bucket[0], bucket[1]) <= now:
                continue  # already past its retention: Redis would drop it at once too
            stored = self._usage.setdefault(bucket, {})
            for pair, fields in rows.items():
                row = stored.setdefault(pair, {})
                for name, value in fields.items():
                    row[name] = row.get(name, 0) + value

    async def usage_read(
        self, granularity: Granularity, starts: Sequence[int], tenant: str | None = None
    ) -> list[UsageRow]:
        now = time.time()
        wanted = set(starts)
        out = []
        for (kind, start, name), rows in self._usage.items():
            if kind != granularity or start not in wanted or bucket_expiry(kind, start) <= now:
                continue
            if tenant is not None and name != tenant:
                continue
            for (model, version), fields in rows.items():
                out.append(UsageRow(start, name, model, version, dict(fields)))
        return out

    def _sweep_usage(self, now: float) -> None:
        """Drop buckets past their retention, at most once a minute."""
        if now - self._usage_swept < 60:
            return
        self._usage_swept = now
        for bucket in [b for b in self._usage if bucket_expiry(b[0], b[1]) <= now]:
            del self._usage[bucket]
