"""Usage counters on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``; ``<g>`` is ``minute``, ``hour`` or ``day`` and ``<start>``
the bucket's start in unix seconds::

    P usage:<g>:<start>:h:<tenant>   hash  ["<model>","<version>","<counter>"] (JSON) → count
    P usage:<g>:<start>:tenants      set   the tenants with counts in that bucket

Both expire at the bucket's end plus its retention (``EXPIREAT``), the module constants
:data:`~gateway.store.usage.USAGE_RETENTION`: minute buckets 2 days, hour buckets 35 days, day
buckets 400 days.

One flush is one non-transactional pipeline of ``HINCRBY``, ``SADD`` and ``EXPIREAT``, each on
one key (so on Redis Cluster the pipeline is split per node, and no key needs a hash tag): an
increment is atomic on its key, so what any number of replicas add sums exactly. A pipeline
Redis refuses (connection refused, timed out before it was sent) changes nothing and the
recorder sends it again with its next flush; one whose reply is lost after Redis ran it can be
counted twice, the one case where a count is not exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis, RedisCluster

from gateway.store.redis.keys import KeyLayout, mapped
from gateway.store.usage import (
    USAGE_FIELDS,
    Granularity,
    UsageKey,
    UsageRow,
    bucket_expiry,
    rolled_up,
)

_KNOWN = frozenset(USAGE_FIELDS)


class RedisUsage:
    """The usage part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._usage_client = client
        self._usage_keys = keys

    async def usage_add(self, counts: Mapping[UsageKey, Mapping[str, int]]) -> None:
        rolled = rolled_up(counts)
        keys = self._usage_keys
        indexes: dict[str, int] = {}
        with mapped("usage_add"):
            async with self._usage_client.pipeline(transaction=False) as pipe:
                for (granularity, start, tenant), rows in rolled.items():
                    key = keys.usage(granularity, start, tenant)
                    added = False
                    for (model, version), fields in rows.items():
                        for name, value in fields.items():
                            pipe.hincrby(key, _field(model, version, name), value)
                            added = True
                    if added:
                        expiry = bucket_expiry(granularity, start)
                        pipe.expireat(key, expiry)
                        index = keys.usage_tenants(granularity, start)
                        pipe.sadd(index, tenant)
                        indexes[index] = expiry
                for index, expiry in indexes.items():
                    pipe.expireat(index, expiry)
                if len(pipe):
                    await pipe.execute()

    async def usage_read(
        self, granularity: Granularity, starts: Sequence[int], tenant: str | None = None
    ) -> list[UsageRow]:
        keys = self._usage_keys
        buckets = list(dict.fromkeys(starts))
        with mapped("usage_read"):
            if tenant is None:
                members = await self._usage_pipeline(
                    [("smembers", keys.usage_tenants(granularity, s)) for s in buckets]
                )
                pairs = [
                    (s, str(t)) for s, names in zip(buckets, members, strict=True) for t in names
                ]
            else:
                pairs = [(s, tenant) for s in buckets]
            hashes = await self._usage_pipeline(
                [("hgetall", keys.usage(granularity, s, t)) for s, t in pairs]
            )
        rows: dict[tuple[int, str, str, str], dict[str, int]] = {}
        for (start, name), stored in zip(pairs, hashes, strict=True):
            for text, value in stored.items():
                parsed = _parse(str(text))
                if parsed is None:
                    continue  # a counter a newer gateway writes: not read here
                model, version, counter = parsed
                rows.setdefault((start, name, model, version), {})[counter] = int(value)
        return [UsageRow(s, t, m, v, counts) for (s, t, m, v), counts in rows.items()]

    async def _usage_pipeline(self, commands: list[tuple[str, str]]) -> list[Any]:
        """Single-key read commands in one non-transactional pipeline (per node on Cluster)."""
        if not commands:
            return []
        async with self._usage_client.pipeline(transaction=False) as pipe:
            for verb, key in commands:
                getattr(pipe, verb)(key)
            return list(await pipe.execute())


def _field(model: str, version: str, counter: str) -> str:
    """A hash field: JSON, so any model or version name (colons, bars...) reads back."""
    return orjson.dumps([model, version, counter]).decode()


def _parse(text: str) -> tuple[str, str, str] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(part, str) for part in value)
        and value[2] in _KNOWN
    ):
        return value[0], value[1], value[2]
    return None
