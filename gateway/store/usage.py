"""What the store keeps of per-tenant usage: counters per tenant × model × version, rolled up
per minute, hour and day (``gateway.telemetry.usage`` adds to them, written behind; the admin
API reads them).

A bucket is named by its granularity and its start (unix seconds, UTC, a multiple of its
length); its counts are kept :data:`USAGE_RETENTION` seconds past its end, then they are gone.
Adding is an increment (Redis ``HINCRBY``), so what several gateway processes add sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

UsageField = Literal[
    "requests", "errors_4xx", "errors_5xx", "cache_hits", "rate_limited", "bytes_in", "bytes_out"
]
USAGE_FIELDS: Final[tuple[UsageField, ...]] = (
    "requests", "errors_4xx", "errors_5xx", "cache_hits", "rate_limited", "bytes_in", "bytes_out"
)  # fmt: skip
"""The counters, in the order the admin API and its CSV show them."""

Granularity = Literal["minute", "hour", "day"]
GRANULARITIES: Final[dict[Granularity, int]] = {"minute": 60, "hour": 3600, "day": 86400}
"""Each bucket's length in seconds, finest first."""

USAGE_RETENTION: Final[dict[Granularity, int]] = {
    "minute": 2 * 86400,
    "hour": 35 * 86400,
    "day": 400 * 86400,
}
"""How long a bucket is kept after it ends (seconds): minute buckets 2 days, hour buckets 35
days, day buckets 400 days (Redis: ``EXPIREAT`` on the bucket's keys; memory: swept)."""


@dataclass(frozen=True, slots=True)
class UsageKey:
    """Whose counts, and the minute they fell in (its start, unix seconds)."""

    minute: int
    tenant: str  # "" for calls without a tenant (anonymous, refused before auth)
    model: str  # "" for a call that named no model served here
    version: str  # "" before a version was chosen


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One bucket's counts for one tenant, model and version."""

    start: int  # the bucket's start, unix seconds
    tenant: str
    model: str
    version: str
    counts: Mapping[str, int] = field(default_factory=dict)  # USAGE_FIELDS → count


def bucket_start(granularity: Granularity, at: int) -> int:
    """The start of the ``granularity`` bucket that holds ``at`` (unix seconds)."""
    length = GRANULARITIES[granularity]
    return at - at % length


def bucket_expiry(granularity: Granularity, start: int) -> int:
    """When a bucket's counts are dropped (unix seconds)."""
    return start + GRANULARITIES[granularity] + USAGE_RETENTION[granularity]


def rolled_up(
    counts: Mapping[UsageKey, Mapping[str, int]],
) -> dict[tuple[Granularity, int, str], dict[tuple[str, str], dict[str, int]]]:
    """``counts`` summed into the minute, hour and day buckets that hold each minute:
    (granularity, bucket start, tenant) → (model, version) → field → increment (zeros left
    out). Both stores add these."""
    out: dict[tuple[Granularity, int, str], dict[tuple[str, str], dict[str, int]]] = {}
    for key, fields in counts.items():
        if not any(fields.values()):
            continue
        for granularity in GRANULARITIES:
            bucket = (granularity, bucket_start(granularity, key.minute), key.tenant)
            row = out.setdefault(bucket, {}).setdefault((key.model, key.version), {})
            for name, value in fields.items():
                if value:
                    row[name] = row.get(name, 0) + value
    return out


class UsageStore(Protocol):
    """Usage counters, implemented for Redis (a hash per bucket and tenant, and a set of the
    bucket's tenants, with ``EXPIREAT``; every command touches one key, so Redis Cluster
    too) and memory."""

    async def usage_add(self, counts: Mapping[UsageKey, Mapping[str, int]]) -> None:
        """Add each key's increments (field → number) to the minute, hour and day buckets
        that hold its minute, in one round trip. Concurrent adds (other replicas) sum."""

    async def usage_read(
        self, granularity: Granularity, starts: Sequence[int], tenant: str | None = None
    ) -> list[UsageRow]:
        """The counts of the ``granularity`` buckets starting at ``starts``: one row per
        bucket, tenant, model and version that has any (``tenant`` given: that tenant's
        only), in no particular order. Buckets past their retention read as empty."""
        ...
