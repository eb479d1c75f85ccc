"""Per-request figures as plain counters bumped in place, folded into Prometheus at scrape.

A ``prometheus_client`` child takes a lock per observation (and a Histogram walks its bounds
in Python); the observer runs once per request. Here a request adds to plain ints and floats
on the event loop thread, and :class:`Folded` copies them into the real children whenever the
registry is collected (``/metrics``, ``get_sample_value``). The values are kept cumulative and
*set* on the children, so a histogram's sum is added in the same order as ``observe`` would
have: the exposition is the same, bit for bit.

With several workers (``PROMETHEUS_MULTIPROC_DIR``) ``/metrics`` reads every worker's files,
never this worker's memory: there each figure goes to its child as it is counted
(:func:`direct`), as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def direct() -> bool:
    """Whether figures must reach the children as they are counted (multiprocess mode)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Count:
    """One Counter child's count."""

    __slots__ = ("child", "n")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.n = 0

    def fold(self) -> None:
        self.child._value.set(self.n)


class Buckets:
    """One Histogram child's observations: a count per bucket (not cumulative) and the sum.

    An observation of ``x`` is ``counts[bisect_left(bounds, x)] += 1; sum += x`` (the first
    bucket whose bound is at least ``x``, as ``Histogram.observe``), written out where it is
    counted (``RequestMetrics.observe``: a method call would be a third of its cost)."""

    __slots__ = ("child", "counts", "sum")

    def __init__(self, child: Any, bounds: Sequence[float]) -> None:
        self.child = child
        self.counts = [0] * (len(bounds) + 1)  # the last, +Inf's
        self.sum = 0.0

    def fold(self) -> None:
        child = self.child
        child._sum.set(self.sum)
        for value, count in zip(child._buckets, self.counts, strict=True):
            value.set(count)


Tally = Count | Buckets


class Folded(Collector):
    """Collects ``metrics`` (in this order) after folding every tally made by :meth:`count` and
    :meth:`buckets` into its child. Registered in place of the metrics, so the exposition's
    order is theirs."""

    def __init__(self, registry: CollectorRegistry | None, metrics: Iterable[MetricWrapperBase]):
        self.metrics = tuple(metrics)
        self.direct = direct()  # count straight into the children: nothing folds
        self._tallies: list[Tally] = []
        if registry is not None:
            registry.register(self)

    def count(self, child: Any) -> Count:
        tally = Count(child)
        self._tallies.append(tally)
        return tally

    def buckets(self, child: Any, bounds: Sequence[float]) -> Buckets:
        tally = Buckets(child, bounds)
        self._tallies.append(tally)
        return tally

    def fold(self) -> None:
        if self.direct:  # the children hold the figures already
            return
        for tally in self._tallies:
            tally.fold()

    def describe(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Any]:
        self.fold()
        for metric in self.metrics:
            yield from metric.collect()


class ByLabel:
    """A Counter with one label, counted by its value (a few fixed values: cache results,
    rate-limit decisions, auth failure reasons)."""

    __slots__ = ("_counts", "_folded", "_metric")

    def __init__(self, folded: Folded, metric: Any) -> None:
        self._folded = folded
        self._metric = metric
        self._counts: dict[str, Count] = {}

    def inc(self, value: str) -> None:
        tally = self._counts.get(value)
        if tally is None:
            tally = self._counts[value] = self._folded.count(self._metric.labels(value))
        if self._folded.direct:
            tally.child.inc()
        else:
            tally.n += 1
