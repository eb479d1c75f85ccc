"""The latency buckets every replica's series share, and quantiles from them.

Bucket ``i`` holds the latencies in ``(BOUNDS[i-1], BOUNDS[i]]`` (bucket 0 everything up to
0.1 ms; bucket ``len(BOUNDS)`` everything above the top bound, about 10 minutes). The bounds
are fixed and log-spaced (×1.15), so the histograms of any replicas and steps merge exactly by
adding their buckets, and a quantile read from a merged histogram is the upper bound of the
bucket that holds it: never below the true value, and at most 15 % above it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Final

GROWTH: Final = 1.15
BOUNDS: Final = tuple(0.0001 * GROWTH**i for i in range(113))
"""Upper bounds in seconds: 0.1 ms × 1.15^i, up to about 630 s."""


def bucket_of(seconds: float) -> int:
    """The index of the bucket ``seconds`` falls in."""
    return bisect.bisect_left(BOUNDS, seconds)


def add_into(total: MutableMapping[int, int], buckets: Mapping[int, int]) -> None:
    """Add ``buckets`` (index → count) into ``total``."""
    for index, count in buckets.items():
        total[index] = total.get(index, 0) + count


def quantile(buckets: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 < q ≤ 1) in seconds: the upper bound of the first bucket at which
    the running count reaches ``q`` × the total; None for an empty histogram. A quantile in
    the overflow bucket is reported as the top bound."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return BOUNDS[min(index, len(BOUNDS) - 1)]
    return BOUNDS[-1]


def flatten(buckets: Mapping[int, int]) -> list[int]:
    """``[index, count, index, count, ...]`` in index order (the wire form)."""
    return [n for index in sorted(buckets) for n in (index, buckets[index])]


def unflatten(pairs: Iterable[int]) -> dict[int, int]:
    """The inverse of :func:`flatten`."""
    items = iter(pairs)
    return dict(zip(items, items, strict=True))
