"""One replica's step as the store keeps it, and the sums replicas' steps merge into.

A step is one JSON text: the step's length and one row per model × version::

    {"step": 5, "rows": [["fraud", "2", 120, 3, 1, [31, 80, 32, 37, 40, 3]], ...]}

a row being model, version (``""``: answered before one was chosen), requests, 5xx, 4xx and
the latency histogram as ``[bucket, count, ...]`` (``histogram.BOUNDS``). Reading skips what
it cannot use (a step of another length, a malformed row from another gateway version) rather
than failing the whole view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from gateway.telemetry.series.histogram import BOUNDS, add_into, flatten, unflatten
from gateway.telemetry.series.recorder import Step


@dataclass(slots=True)
class Totals:
    """Counts summed over replicas (and, for a whole range, over steps)."""

    requests: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.errors_5xx += other.errors_5xx
        self.errors_4xx += other.errors_4xx
        add_into(self.buckets, other.buckets)


Row = tuple[str, str, Totals]


def encode_step(step: int, rows: Iterable[tuple[str, str, Step]]) -> str:
    """The JSON text of one step's rows, ``step`` seconds long."""
    out = [
        [model, version, s.requests, s.errors_5xx, s.errors_4xx, flatten(s.buckets)]
        for model, version, s in rows
    ]
    return orjson.dumps({"step": step, "rows": out}).decode()


def decode_step(text: str, step: int) -> list[Row]:
    """The rows of a step written by :func:`encode_step`; none when it is not a step of
    ``step`` seconds or not a step at all. Malformed rows are left out."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict) or data.get("step") != step:
        return []
    rows = data.get("rows")
    return [row for raw in rows if (row := _row(raw)) is not None] if isinstance(rows, list) else []


def _row(raw: object) -> Row | None:
    if not isinstance(raw, list) or len(raw) != 6:
        return None
    model, version, requests, errors_5xx, errors_4xx, pairs = raw
    if not (isinstance(model, str) and isinstance(version, str) and isinstance(pairs, list)):
        return None
    counts = (requests, errors_5xx, errors_4xx, *pairs)
    if not all(type(n) is int and n >= 0 for n in counts) or len(pairs) % 2:
        return None
    buckets = unflatten(pairs)
    if any(index > len(BOUNDS) for index in buckets):
        return None
    return model, version, Totals(requests, errors_5xx, errors_4xx, buckets)
