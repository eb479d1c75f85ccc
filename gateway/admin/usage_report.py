"""What ``GET /admin/usage`` reports: the range read, the buckets that cover it, the rows summed
``by`` model, version or day, and each tenant's quota consumption against its plan.

**The range.** ``from`` and ``to`` are unix seconds or ISO 8601 (no zone: UTC); the default is
the last 24 hours. Buckets are whole UTC minutes, hours and days, so ``from`` is rounded down
and ``to`` up to the finest bucket still kept at that age (minutes for 2 days, hours for 35,
days for 400: ``USAGE_RETENTION``). The answer's ``from`` and ``to`` are the range counted.

**The buckets.** The range is covered exactly by the coarsest buckets that fit: whole days
inside it, then whole hours at its edges, then minutes, e.g. 10:17 on day D to 14:34 on D+1
reads the minutes 10:17–11:00, the hours 11:00–24:00 of D and 00:00–14:00 of D+1 and the
minutes 14:00–14:34: at most 2 × 59 minute, 2 × 23 hour and one day bucket per day. Every
granularity holds the same counts (each minute is added to its hour and day at once), so the
sum is the same whichever buckets are read; the coarsest keep the reads few and reach back
furthest.

**Quota.** A plan's ``quota`` windows are read from the rate limiter's own store, where every
admitted call of the tenant spent one (on every replica): ``used`` is exactly what the limiter
will compare with ``limit`` in the current window (fixed windows aligned to UTC), not a sum of
the usage counters, whose ``requests`` also count refused calls.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, Literal

from gateway.config.live import Runtime
from gateway.errors import BadRequest
from gateway.limits.limiter import Subject
from gateway.store import Store
from gateway.store.usage import (
    GRANULARITIES,
    USAGE_FIELDS,
    USAGE_RETENTION,
    Granularity,
    UsageRow,
)

By = Literal["model", "version", "day"]
BY: Final[tuple[By, ...]] = ("model", "version", "day")
COLUMNS: Final[dict[By, tuple[str, ...]]] = {
    "model": ("tenant", "model"),
    "version": ("tenant", "model", "version"),
    "day": ("tenant", "model", "day"),
}
"""The columns naming a row, per ``by`` (the counters follow, in ``USAGE_FIELDS`` order)."""

DEFAULT_RANGE: Final = 86400
MAX_RANGE: Final = USAGE_RETENTION["day"]  # 400 days: no bucket older is kept
_LAST_SECOND: Final = 253402300799  # 9999-12-31T23:59:59Z
_NUMBER = re.compile(r"[0-9]{1,12}(?:\.[0-9]{0,9})?")
_COARSEST_FIRST: Final[tuple[Granularity, ...]] = ("day", "hour", "minute")
_QUOTA_READS: Final = 16  # tenants' quotas read at once

Row = dict[str, str | int | float]


def parse_time(name: str, text: str) -> float:
    """``text`` as unix seconds (``1767225600``, ``1767225600.5``) or ISO 8601
    (``2026-01-01``, ``2026-01-01T10:00:00Z``, ``...+02:00``; without a zone: UTC); 400
    naming ``name`` otherwise."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        value = float(text)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise BadRequest(
                f"{name} must be unix seconds or an ISO 8601 time, got {text[:64]!r}"
            ) from None
        value = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if not 0 <= value <= _LAST_SECOND:
        raise BadRequest(f"{name} must be between 1970 and 9999")
    return value


def precision(at: float, now: float) -> int:
    """The length of the finest buckets kept all around ``at``: minutes while the minutes up
    to an hour before it are kept, then hours (up to a day before), then days."""
    age = now - at
    if age + GRANULARITIES["hour"] < USAGE_RETENTION["minute"]:
        return GRANULARITIES["minute"]
    if age + GRANULARITIES["day"] < USAGE_RETENTION["hour"]:
        return GRANULARITIES["hour"]
    return GRANULARITIES["day"]


def covered(start: float, end: float, now: float) -> tuple[int, int]:
    """The range counted for ``[start, end)``: ``start`` rounded down, ``end`` up, each to
    the finest buckets kept at its age."""
    low, high = precision(start, now), precision(end, now)
    return math.floor(start / low) * low, math.ceil(end / high) * high


def buckets(start: int, end: int) -> dict[Granularity, list[int]]:
    """The coarsest buckets covering ``[start, end)`` exactly (both multiples of a minute)."""
    out: dict[Granularity, list[int]] = {granularity: [] for granularity in GRANULARITIES}
    at = start
    while at < end:
        for granularity in _COARSEST_FIRST:
            length = GRANULARITIES[granularity]
            if at % length == 0 and at + length <= end:
                out[granularity].append(at)
                at += length
                break
        else:
            raise ValueError(f"range {start}..{end} is not in whole minutes")
    return out


def day_of(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def summed(found: Iterable[UsageRow], by: By, model: str | None = None) -> list[Row]:
    """The rows of ``found`` (only ``model``'s, when given) summed per tenant, model and
    ``by``, sorted by those columns."""
    table: dict[tuple[str, ...], list[int]] = {}
    for row in found:
        if model is not None and row.model != model:
            continue
        third = () if by == "model" else (row.version if by == "version" else day_of(row.start),)
        totals = table.setdefault((row.tenant, row.model, *third), [0] * len(USAGE_FIELDS))
        for i, name in enumerate(USAGE_FIELDS):
            totals[i] += row.counts.get(name, 0)
    columns = COLUMNS[by]
    return [
        {**dict(zip(columns, key, strict=True)), **dict(zip(USAGE_FIELDS, counts, strict=True))}
        for key, counts in sorted(table.items())
    ]


async def read_rows(store: Store, span: tuple[int, int], tenant: str | None) -> list[UsageRow]:
    """Every stored row of the buckets covering ``span`` (one store call per granularity)."""
    found: list[UsageRow] = []
    for granularity, starts in buckets(*span).items():
        if starts:
            found += await store.usage_read(granularity, starts, tenant)
    return found


async def quota(runtime: Runtime, plans: Mapping[str, str | None]) -> list[Row]:
    """The quota windows of each tenant in ``plans`` (tenant → the plan its record names;
    None: the default plan applies): limit, window (seconds), used and remaining in the
    current window, seconds until it resets. Read from the limiter's store without spending;
    a tenant whose plan has no quota has no row."""
    limiter = runtime.limiter
    gate = asyncio.Semaphore(_QUOTA_READS)

    async def one(tenant: str, plan: str | None) -> list[Row]:
        subject = Subject(tenant=tenant, plan=plan, key_id=None, client_ip=None, model=None)
        windows = [x for x in limiter.limits_for(subject) if x.kind == "window"]
        if not windows:
            return []
        async with gate:
            verdict, _ = await limiter.store.take(windows, cost=0.0)
        return [
            {
                "tenant": tenant,
                "plan": plan or limiter.config.default_plan or "",
                "name": state.name,
                "limit": _number(limit.limit),
                "window": _number(limit.window),
                "used": _number(max(0.0, limit.limit - state.remaining)),
                "remaining": _number(max(0.0, state.remaining)),
                "resets_in": math.ceil(state.reset),
            }
            for limit, state in zip(windows, verdict.states, strict=True)
        ]

    found = await asyncio.gather(*(one(tenant, plan) for tenant, plan in sorted(plans.items())))
    return [row for rows in found for row in rows]


def _number(value: float) -> int | float:
    """A whole number as an integer (quotas count calls)."""
    return int(value) if value == int(value) else value
