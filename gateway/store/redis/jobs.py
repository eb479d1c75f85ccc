"""The job queue on Redis Streams (standalone or Cluster).

Keys, under the store's prefix ``P``, all with the hash tag ``{jobs}`` (one slot)::

    P{jobs}:queue              stream  one entry per queued run: job=<id>; group "workers"
    P{jobs}:dead               stream  dead letters: job, owner, model, deliveries, at
    P{jobs}:delayed            zset    put-back job ids, scored by when they may run again
    P{jobs}:queued             hash    owner -> queued jobs (the per-tenant queue limit)
    P{jobs}:depth              hash    model -> queued jobs (the queue-depth gauge)
    P{jobs}:j:<id>             hash    spec (immutable JSON), status, attempts, timings,
                                       result, error, error_status, owner, model, idem
    P{jobs}:idem:<n>:<owner>:<key>  string  the job id an Idempotency-Key names
    P{jobs}:i:all | i:o:<owner> | i:b:<batch>  zset (all scores 0, ids sorted by time)

A worker reads new entries with XREADGROUP (an idle one blocks in it, ``BLOCK``, on a
connection of its own: a new entry wakes it at once, on any replica), starts them (Lua:
queued -> running), and acknowledges and deletes its entry when the job finishes or is put
back. A worker that dies leaves its entries pending: after the visibility timeout another
takes them over with XAUTOCLAIM, and an entry delivered more than N times goes to the
dead-letter stream instead.
A finished job (and its idempotency key) expires after the result's time to live; the index
entries of expired jobs are dropped when a listing finds them gone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from redis import exceptions as rx
from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from gateway.jobs.model import DEAD_LETTER_ERROR, Claimed, DeadLetter, Job, JobStatus, SubmitOutcome
from gateway.store.base import JOB_GROUP
from gateway.store.redis.jobs_lua import (
    CANCEL,
    FINISH,
    FORSAKE,
    RECLAIM,
    RELEASE,
    SCHEDULE,
    START,
    SUBMIT,
)
from gateway.store.redis.keys import KeyLayout, mapped

_SCAN_MOST: Final = 1000  # index entries one listing looks at (filters may skip many)
_BLOCK_MARGIN: Final = 1.0  # a blocked read's socket waits this much longer than the block
_BLOCK_MOST: Final = 30.0  # the longest block on a connection of its own


class RedisJobs:
    """The job part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._jobs_client = client
        self._jk = keys
        self._submit = client.register_script(SUBMIT)
        self._start = client.register_script(START)
        self._reclaim = client.register_script(RECLAIM)
        self._finish_job = client.register_script(FINISH)
        self._release_job = client.register_script(RELEASE)
        self._cancel = client.register_script(CANCEL)
        self._schedule = client.register_script(SCHEDULE)
        self._forsake = client.register_script(FORSAKE)
        self._group_ready = False
        self._blocking: Redis | RedisCluster | None = None  # job_claim(block=...)'s connection
        self._block_most = 0.0

    def _blocking_client(self) -> tuple[Redis | RedisCluster, float]:
        """The client a blocked XREADGROUP waits on, and the longest block it allows: on one
        server a pool of its own (one connection per blocked worker, never one of the shared
        pool's, whose socket timeout is shorter than a block); on a Cluster (or a Sentinel
        pool, which cannot be copied) the shared client, a block kept under its socket
        timeout."""
        if self._blocking is None:
            client = self._jobs_client
            if isinstance(client, RedisCluster):
                node = client.get_default_node()
                self._blocking, self._block_most = client, _under(node.connection_kwargs)
            elif isinstance(client.connection_pool, SentinelConnectionPool):
                kwargs = client.connection_pool.connection_kwargs
                self._blocking, self._block_most = client, _under(kwargs)
            else:
                shared = client.connection_pool
                kwargs = dict(shared.connection_kwargs)
                timeout = kwargs.get("socket_timeout")
                self._block_most = _BLOCK_MOST
                if timeout is not None:
                    kwargs["socket_timeout"] = float(timeout) + _BLOCK_MOST + _BLOCK_MARGIN
                pool = ConnectionPool(connection_class=shared.connection_class, **kwargs)
                self._blocking = Redis.from_pool(pool)
        return self._blocking, self._block_most

    async def _close_jobs(self) -> None:
        if self._blocking is not None and self._blocking is not self._jobs_client:
            await self._blocking.aclose()
        self._blocking = None

    def _job_key(self, job_id: str) -> str:
        return self._jk.jobs(f"j:{job_id}")

    def _idem_key(self, owner: str, key: str) -> str:
        return self._jk.jobs(f"idem:{len(owner)}:{owner}:{key}")

    async def job_submit(self, job: Job, *, max_queued: int) -> tuple[SubmitOutcome, Job | None]:
        k = self._jk
        idem = job.idempotency_key
        keys = [
            self._job_key(job.id),
            self._idem_key(job.owner, idem or ""),
            k.jobs("queued"),
            k.jobs("depth"),
            k.jobs("queue"),
            k.jobs("i:all"),
            k.jobs(f"i:o:{job.owner}"),
            k.jobs(f"i:b:{job.batch_id or ''}"),
        ]
        args: list[str | int] = [
            job.spec_json(),
            job.owner,
            job.model,
            job.id,
            max_queued,
            "1" if idem is not None else "0",
            "1" if job.batch_id is not None else "0",
            self._job_key(""),
        ]
        with mapped("job_submit"):
            outcome, job_id = await self._submit(keys=keys, args=args)
        if outcome == "full":
            return "full", None
        if outcome == "existing":
            return "existing", await self.job_get(str(job_id))
        # the job as accepted (queued), as the script wrote it: not read back, since a worker
        # blocked on the queue may have started it already
        return "created", replace(job, status="queued", attempts=0)

    async def job_get(self, job_id: str) -> Job | None:
        with mapped("job_get"):
            row: dict[str, str] = await self._jobs_client.hgetall(self._job_key(job_id))  # type: ignore[assignment]
        return _job(row)

    async def job_list(
        self,
        *,
        owner: str | None = None,
        status: JobStatus | None = None,
        model: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        if batch_id is not None:
            index = self._jk.jobs(f"i:b:{batch_id}")
        elif owner is not None:
            index = self._jk.jobs(f"i:o:{owner}")
        else:
            index = self._jk.jobs("i:all")
        found: list[Job] = []
        upper = f"({cursor}" if cursor is not None else "+"
        looked = 0
        client = self._jobs_client
        with mapped("job_list"):
            while looked < _SCAN_MOST:
                page = min(max(limit * 2, 20), _SCAN_MOST - looked)
                ids = [str(i) for i in await client.zrevrangebylex(index, upper, "-", 0, page)]
                if not ids:
                    return found, None
                looked += len(ids)
                async with client.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.hgetall(self._job_key(job_id))
                    rows: list[Any] = await pipe.execute()
                gone = []
                for job_id, row in zip(ids, rows, strict=True):
                    job = _job(row)
                    if job is None:
                        gone.append(job_id)
                        continue
                    if not _matches(job, owner, status, model, batch_id):
                        continue
                    if len(found) == limit:
                        return found, found[-1].id
                    found.append(job)
                if gone:
                    await client.zrem(index, *gone)
                upper = f"({ids[-1]}"
            return found, ids[-1]  # the scan's budget is spent: go on after what it examined

    async def job_cancel(self, job_id: str, now: float, ttl: float) -> Job | None:
        k = self._jk
        keys = [self._job_key(job_id), k.jobs("queued"), k.jobs("depth"), k.jobs("delayed")]
        with mapped("job_cancel"):
            await self._cancel(keys=keys, args=[repr(now), _ms(ttl), job_id])
        return await self.job_get(job_id)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._jobs_client.xgroup_create(
                self._jk.jobs("queue"), JOB_GROUP, id="0", mkstream=True
            )
        except rx.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def job_claim(
        self, consumer: str, count: int, now: float, *, block: float = 0.0
    ) -> list[Claimed]:
        if count <= 0:
            return []
        k = self._jk
        queue = k.jobs("queue")
        with mapped("job_claim"):
            await self._ensure_group()
            try:
                if block > 0:
                    client, most = self._blocking_client()
                    block = min(block, most)
                if block > 0:
                    waited = time.monotonic()
                    read: Any = await client.xreadgroup(
                        JOB_GROUP, consumer, {queue: ">"}, count=count, block=_ms(block)
                    )
                    now += time.monotonic() - waited  # started when it was read
                else:
                    read = await self._jobs_client.xreadgroup(
                        JOB_GROUP, consumer, {queue: ">"}, count=count
                    )
            except rx.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # the stream was deleted: make the group again
                return []
            entries = [(str(e), str(f.get("job", ""))) for _, items in read for e, f in items]
            if not entries:
                return []
            args: list[str] = [JOB_GROUP, self._job_key(""), repr(now)]
            for entry, job_id in entries:
                args += [entry, job_id]
            started = await self._start(keys=[queue, k.jobs("queued"), k.jobs("depth")], args=args)
        ids = dict(entries)
        return await self._claimed([(str(e), ids[str(e)], 1) for e in started])

    async def _claimed(self, runs: Sequence[tuple[str, str, int]]) -> list[Claimed]:
        if not runs:
            return []
        async with self._jobs_client.pipeline(transaction=False) as pipe:
            for _, job_id, _ in runs:
                pipe.hgetall(self._job_key(job_id))
            rows: list[Any] = await pipe.execute()
        claimed = []
        for (entry, _, deliveries), row in zip(runs, rows, strict=True):
            job = _job(row)
            if job is not None:
                claimed.append(Claimed(job, entry, deliveries))
        return claimed

    async def job_reclaim(
        self, consumer: str, idle: float, max_deliveries: int, count: int, now: float, ttl: float
    ) -> tuple[list[Claimed], list[str]]:
        k = self._jk
        keys = [k.jobs("queue"), k.jobs("dead"), k.jobs("queued"), k.jobs("depth")]
        args: list[str | int] = [
            JOB_GROUP,
            consumer,
            _ms(idle),
            count,
            max_deliveries,
            self._job_key(""),
            repr(now),
            _ms(ttl),
            DEAD_LETTER_ERROR.decode(),
        ]
        with mapped("job_reclaim"):
            await self._ensure_group()
            try:
                out, dead = await self._reclaim(keys=keys, args=args)
            except rx.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # the stream was lost (a Redis restart): make it again
                return [], []
            runs = [(str(out[i]), str(out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)]
            return await self._claimed(runs), [str(d) for d in dead]

    async def job_touch(self, consumer: str, entries: Sequence[str]) -> None:
        if not entries:
            return
        with mapped("job_touch"):
            try:
                await self._jobs_client.xclaim(
                    self._jk.jobs("queue"), JOB_GROUP, consumer, 0, list(entries), justid=True
                )
            except rx.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise

    async def job_release(
        self, claimed: Claimed, delay: float, now: float, *, attempt: bool
    ) -> bool:
        k = self._jk
        job_id = claimed.job.id
        keys = [
            self._job_key(job_id),
            k.jobs("queue"),
            k.jobs("delayed"),
            k.jobs("queued"),
            k.jobs("depth"),
        ]
        args = [JOB_GROUP, claimed.entry, repr(now + delay), job_id, "1" if attempt else "0"]
        with mapped("job_release"):
            return bool(await self._release_job(keys=keys, args=args))

    async def job_finish(
        self,
        claimed: Claimed,
        status: JobStatus,
        now: float,
        ttl: float,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
        error_status: int | None = None,
        version: str | None = None,
    ) -> Job | None:
        job_id = claimed.job.id
        args: list[str | int] = [
            JOB_GROUP,
            claimed.entry,
            status,
            (result or b"").decode(),
            (error or b"").decode(),
            "" if error_status is None else str(error_status),
            repr(now),
            _ms(ttl),
            version or "",
        ]
        with mapped("job_finish"):
            done = await self._finish_job(
                keys=[self._job_key(job_id), self._jk.jobs("queue")], args=args
            )
        return await self.job_get(job_id) if done else None

    async def job_promote(self, now: float) -> int:
        return (await self.job_schedule(now))[0]  # one script: SCHEDULE promotes as well

    async def job_schedule(self, now: float) -> tuple[int, float | None]:
        keys = [self._jk.jobs("delayed"), self._jk.jobs("queue")]
        with mapped("job_schedule"):
            promoted, due = await self._schedule(keys=keys, args=[repr(now), 100])
        return int(promoted), (float(due) if due else None)

    async def job_forsake(self, consumer: str, keep: Sequence[str]) -> int:
        args = [JOB_GROUP, consumer, self._job_key(""), *keep]
        with mapped("job_forsake"):
            try:
                return int(await self._forsake(keys=[self._jk.jobs("queue")], args=args))
            except rx.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                return 0

    async def job_depth(self) -> dict[str, int]:
        with mapped("job_depth"):
            row: Any = await self._jobs_client.hgetall(self._jk.jobs("depth"))
        return {str(m): int(n) for m, n in row.items() if int(n) > 0}

    async def job_dead(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        with mapped("job_dead"):
            entries: Any = await self._jobs_client.xrevrange(self._jk.jobs("dead"), count=limit)
        return [
            DeadLetter(
                job_id=str(f.get("job", "")),
                owner=str(f.get("owner", "")),
                model=str(f.get("model", "")),
                deliveries=int(f.get("deliveries", 0)),
                at=float(f.get("at", 0.0)),
            )
            for _, f in entries
        ]


def _job(row: dict[str, str]) -> Job | None:
    spec = row.get("spec") if row else None
    return Job.from_parts(spec, row) if spec else None


def _matches(
    job: Job,
    owner: str | None,
    status: JobStatus | None,
    model: str | None,
    batch_id: str | None,
) -> bool:
    return (
        (owner is None or job.owner == owner)
        and (status is None or job.status == status)
        and (model is None or job.model == model)
        and (batch_id is None or job.batch_id == batch_id)
    )


def _under(connection: dict[str, Any]) -> float:
    """The longest block a shared connection allows: under its socket timeout."""
    timeout = connection.get("socket_timeout")
    if timeout is None:
        return _BLOCK_MOST
    return max(float(timeout) / 2, float(timeout) - _BLOCK_MARGIN)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
