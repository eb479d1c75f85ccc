"""The fleet's series as ``GET /admin/series`` answers them: one entry per model × version with
traffic in the range, every array aligned to its ``t`` (the start of each step, unix seconds;
a step with no traffic is a point of zeros, its rates and quantiles ``null``).

``error_rate`` is the 5xx share (what a rollout's gate judges); 4xx are counted beside it.
``p50_ms``/``p99_ms`` are read from the histogram summed over the replicas (and, for
``total``, over the range): the upper bound of the bucket that holds the quantile, never below
the true value and at most 15 % above it (``histogram``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from gateway.telemetry.series.histogram import quantile
from gateway.telemetry.series.wire import Totals


class Summary(TypedDict):
    requests: int
    rps: float
    errors_5xx: int
    errors_4xx: int
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None


class Line(TypedDict):
    model: str
    version: str | None  # None: answered before a version was chosen (401, 403, 400 ...)
    t: list[int]
    requests: list[int]
    rps: list[float]
    errors_5xx: list[int]
    errors_4xx: list[int]
    error_rate: list[float | None]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    total: Summary


class SeriesView(TypedDict):
    step: int  # seconds per point
    now: float  # the answering replica's clock, unix seconds
    start: int  # the range: from the first step's start ...
    end: int  # ... to the last step's end (unix seconds)
    replicas: int  # live replicas whose steps were read
    series: list[Line]


def lay_out(
    step: int,
    now: float,
    indices: range,
    merged: Mapping[tuple[str, str], Mapping[int, Totals]],
    replicas: int,
) -> SeriesView:
    """The view of ``merged`` (model × version → step index → summed counts) over the steps
    ``indices``, sorted by model and version."""
    times = [i * step for i in indices]
    lines = [
        _line(model, version, step, times, indices, cells)
        for (model, version), cells in sorted(merged.items())
    ]
    return {
        "step": step,
        "now": round(now, 3),
        "start": indices.start * step,
        "end": indices.stop * step,
        "replicas": replicas,
        "series": lines,
    }


def _line(
    model: str,
    version: str,
    step: int,
    times: list[int],
    indices: range,
    cells: Mapping[int, Totals],
) -> Line:
    empty = Totals()
    points = [cells.get(i, empty) for i in indices]
    total = Totals()
    for cell in cells.values():
        total.add(cell)
    return {
        "model": model,
        "version": version or None,
        "t": times,
        "requests": [p.requests for p in points],
        "rps": [p.requests / step for p in points],
        "errors_5xx": [p.errors_5xx for p in points],
        "errors_4xx": [p.errors_4xx for p in points],
        "error_rate": [_rate(p) for p in points],
        "p50_ms": [_ms(p, 0.5) for p in points],
        "p99_ms": [_ms(p, 0.99) for p in points],
        "total": {
            "requests": total.requests,
            "rps": total.requests / (step * len(indices)),
            "errors_5xx": total.errors_5xx,
            "errors_4xx": total.errors_4xx,
            "error_rate": _rate(total),
            "p50_ms": _ms(total, 0.5),
            "p99_ms": _ms(total, 0.99),
        },
    }


def _rate(totals: Totals) -> float | None:
    return totals.errors_5xx / totals.requests if totals.requests else None


def _ms(totals: Totals, q: float) -> float | None:
    seconds = quantile(totals.buckets, q)
    return None if seconds is None else round(seconds * 1000, 3)
