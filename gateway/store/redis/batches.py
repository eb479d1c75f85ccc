"""Batch files on Redis (standalone or Cluster).

Keys, under the store's prefix ``P``; one batch's keys share the hash tag ``{b:<id>}``::

    P{b:<id>}:meta     hash    spec (immutable JSON), total, owner, status, fed, finished_at,
                               succeeded, failed, cancelled (settled jobs), finished
    P{b:<id>}:lines    list    the lines (BatchLine JSON), dropped when the batch finishes
    P{b:<id>}:ids      list    the custom ids, in input order
    P{b:<id>}:jobs     hash    line index -> job id, once fed
    P{b:<id>}:open     set     fed jobs not yet settled
    P{batches}:active  set     batches with lines to feed or jobs open
    P{batches}:i:all | i:o:<owner>  zset (all scores 0, ids sorted by time)

A finished batch's keys expire after the results' time to live; index entries of expired
batches are dropped when a listing finds them gone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from redis.asyncio import Redis, RedisCluster

from gateway.batches.model import Batch, BatchLine
from gateway.jobs.model import Job, JobStatus
from gateway.store.redis.batches_lua import CANCEL, FED, FINISH, READ, SETTLE
from gateway.store.redis.keys import KeyLayout, mapped

_CHUNK: Final = 1000  # lines per RPUSH when a batch is stored
_SCAN_MOST: Final = 1000


class RedisBatches:
    """The batch part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._batch_client = client
        self._bk = keys
        self._fed = client.register_script(FED)
        self._settle = client.register_script(SETTLE)
        self._cancel_batch = client.register_script(CANCEL)
        self._finish_batch = client.register_script(FINISH)
        self._read_batch = client.register_script(READ)

    def _b(self, batch_id: str, name: str) -> str:
        return self._bk.batch(batch_id, name)

    async def batch_create(self, batch: Batch, lines: Sequence[BatchLine]) -> None:
        bid, client = batch.id, self._batch_client
        with mapped("batch_create"):
            for start in range(0, len(lines), _CHUNK):
                chunk = lines[start : start + _CHUNK]
                async with client.pipeline(transaction=False) as pipe:
                    pipe.rpush(self._b(bid, "lines"), *[line.to_json() for line in chunk])
                    pipe.rpush(self._b(bid, "ids"), *[line.custom_id for line in chunk])
                    await pipe.execute()
            fields: dict[Any, Any] = {
                "spec": batch.spec_json(),
                "total": str(batch.total),
                "owner": batch.owner,
                **batch.state_fields(),
            }
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(self._b(bid, "meta"), mapping=fields)  # last: the batch exists now
                pipe.sadd(self._bk.batches("active"), bid)
                pipe.zadd(self._bk.batches("i:all"), {bid: 0})
                pipe.zadd(self._bk.batches(f"i:o:{batch.owner}"), {bid: 0})
                await pipe.execute()

    async def _read(self, ids: Sequence[str]) -> list[Batch | None]:
        return list(await asyncio.gather(*(self._read_one(bid) for bid in ids)))

    async def _read_one(self, batch_id: str) -> Batch | None:
        keys = [self._b(batch_id, "meta"), self._b(batch_id, "open")]
        flat, open_ = await self._read_batch(keys=keys)
        meta = {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
        spec = meta.get("spec")
        return Batch.from_parts(spec, meta, tuple(str(j) for j in open_)) if spec else None

    async def batch_get(self, batch_id: str) -> Batch | None:
        with mapped("batch_get"):
            [batch] = await self._read([batch_id])
        return batch

    async def batch_list(
        self, owner: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Batch], str | None]:
        index = self._bk.batches(f"i:o:{owner}" if owner is not None else "i:all")
        client = self._batch_client
        found: list[Batch] = []
        upper = f"({cursor}" if cursor is not None else "+"
        looked = 0
        with mapped("batch_list"):
            while looked < _SCAN_MOST:
                page = min(max(limit * 2, 20), _SCAN_MOST - looked)
                ids = [str(i) for i in await client.zrevrangebylex(index, upper, "-", 0, page)]
                if not ids:
                    return found, None
                looked += len(ids)
                gone = []
                for bid, batch in zip(ids, await self._read(ids), strict=True):
                    if batch is None:
                        gone.append(bid)
                        continue
                    if len(found) == limit:
                        return found, found[-1].id
                    found.append(batch)
                if gone:
                    await client.zrem(index, *gone)
                upper = f"({ids[-1]}"
            return found, (found[-1].id if found else ids[-1])

    async def batch_active(self) -> list[Batch]:
        active = self._bk.batches("active")
        with mapped("batch_active"):
            ids = sorted(str(i) for i in await self._batch_client.smembers(active))
            batches = await self._read(ids)
            gone = [bid for bid, batch in zip(ids, batches, strict=True) if batch is None]
            if gone:
                await self._batch_client.srem(active, *gone)
        return [batch for batch in batches if batch is not None]

    async def batch_lines(self, batch_id: str, start: int, count: int) -> list[BatchLine]:
        if count <= 0:
            return []
        with mapped("batch_lines"):
            rows = await self._batch_client.lrange(
                self._b(batch_id, "lines"), start, start + count - 1
            )
        return [BatchLine.from_json(row) for row in rows]

    async def batch_entries(
        self, batch_id: str, start: int, count: int
    ) -> list[tuple[str, str | None]]:
        if count <= 0:
            return []
        with mapped("batch_entries"):
            ids: list[Any] = await self._batch_client.lrange(
                self._b(batch_id, "ids"), start, start + count - 1
            )
            if not ids:
                return []
            fields = [str(i) for i in range(start, start + len(ids))]
            jobs: list[Any] = await self._batch_client.hmget(self._b(batch_id, "jobs"), fields)
        return [(str(i), None if j is None else str(j)) for i, j in zip(ids, jobs, strict=True)]

    async def batch_fed(self, batch_id: str, index: int, job_id: str) -> bool:
        keys = [self._b(batch_id, n) for n in ("meta", "jobs", "open")]
        with mapped("batch_fed"):
            return bool(await self._fed(keys=keys, args=[index, job_id]))

    async def batch_settle(self, batch_id: str, done: Mapping[str, JobStatus]) -> None:
        if not done:
            return
        args: list[str] = []
        for job_id, status in done.items():
            args += [job_id, status]
        keys = [self._b(batch_id, "meta"), self._b(batch_id, "open")]
        with mapped("batch_settle"):
            await self._settle(keys=keys, args=args)

    async def batch_cancel(self, batch_id: str, now: float) -> Batch | None:
        with mapped("batch_cancel"):
            before = await self._cancel_batch(keys=[self._b(batch_id, "meta")], args=[repr(now)])
        return None if not before else await self.batch_get(batch_id)

    async def batch_finish(self, batch_id: str, now: float, ttl: float) -> Batch | None:
        keys = [self._b(batch_id, n) for n in ("meta", "open", "lines", "ids", "jobs")]
        with mapped("batch_finish"):
            done = await self._finish_batch(keys=keys, args=[repr(now), _ms(ttl)])
            if not done:
                return None
            await self._batch_client.srem(self._bk.batches("active"), batch_id)
        return await self.batch_get(batch_id)

    async def batch_jobs(self, job_ids: Sequence[str]) -> list[Job | None]:
        if not job_ids:
            return []
        with mapped("batch_jobs"):
            async with self._batch_client.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hgetall(self._bk.jobs(f"j:{job_id}"))
                rows: list[Any] = await pipe.execute()
        return [Job.from_parts(row["spec"], row) if row.get("spec") else None for row in rows]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
