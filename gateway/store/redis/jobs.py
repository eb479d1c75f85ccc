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

A worker reads new entries with XREADGROUP, starts them (Lua: queued -> running), and
acknowledges and deletes its entry when the job finishes or is put back. A worker that dies
leaves its entries pending: after the visibility timeout another takes them over with
XAUTOCLAIM, and an entry delivered more than N times goes to the dead-letter stream instead.
A finished job (and its idempotency key) expires after the result's time to live; the index
entries of expired jobs are dropped when a listing finds them gone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from redis import exceptions as rx
from redis.asyncio import Redis, RedisCluster

from gateway.jobs.model import DEAD_LETTER_ERROR, Claimed, DeadLetter, Job, JobStatus, SubmitOutcome
from gateway.store.base import JOB_GROUP
from gateway.store.redis.keys import KeyLayout, mapped

SUBMIT: Final = """
-- KEYS[1] job hash  KEYS[2] idempotency key  KEYS[3] queued  KEYS[4] depth  KEYS[5] queue
-- KEYS[6] index all  KEYS[7] index owner  KEYS[8] index batch
-- ARGV[1] spec JSON  ARGV[2] owner  ARGV[3] model  ARGV[4] job id  ARGV[5] max queued
-- ARGV[6] '1' with an idempotency key  ARGV[7] '1' with a batch  ARGV[8] job key prefix
-- Returns {'existing', id} | {'full', ''} | {'created', id}.
if ARGV[6] == '1' then
  local known = redis.call('GET', KEYS[2])
  if known and redis.call('EXISTS', ARGV[8] .. known) == 1 then return {'existing', known} end
end
local queued = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if queued >= tonumber(ARGV[5]) then return {'full', ''} end
local idem = ''
if ARGV[6] == '1' then
  idem = KEYS[2]
  redis.call('SET', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'status', 'queued', 'attempts', '0',
  'owner', ARGV[2], 'model', ARGV[3], 'idem', idem)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
redis.call('XADD', KEYS[5], '*', 'job', ARGV[4])
redis.call('ZADD', KEYS[6], 0, ARGV[4])
redis.call('ZADD', KEYS[7], 0, ARGV[4])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[8], 0, ARGV[4]) end
return {'created', ARGV[4]}
"""

# Shared by START and RECLAIM: a delivered job starts a run (queued -> running, attempts + 1).
_START_RUN: Final = """
local function start_run(key, queued, depth, now)
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' then
    local row = redis.call('HMGET', key, 'owner', 'model')
    redis.call('HINCRBY', queued, row[1], -1)
    redis.call('HINCRBY', depth, row[2], -1)
  elseif status ~= 'running' then
    return false
  end
  redis.call('HSET', key, 'status', 'running', 'started_at', now)
  redis.call('HINCRBY', key, 'attempts', 1)
  return true
end
local function drop(queue, group, entry)
  redis.call('XACK', queue, group, entry)
  redis.call('XDEL', queue, entry)
end
"""

START: Final = (
    _START_RUN
    + """
-- KEYS[1] queue  KEYS[2] queued  KEYS[3] depth
-- ARGV[1] group  ARGV[2] job key prefix  ARGV[3] now  ARGV[4..] entry, job id pairs
-- Starts each delivered job; an entry whose job is gone or done is dropped. Returns the
-- entries started.
local started = {}
for i = 4, #ARGV, 2 do
  if start_run(ARGV[2] .. ARGV[i + 1], KEYS[2], KEYS[3], ARGV[3]) then
    table.insert(started, ARGV[i])
  else
    drop(KEYS[1], ARGV[1], ARGV[i])
  end
end
return started
"""
)

RECLAIM: Final = (
    _START_RUN
    + """
-- KEYS[1] queue  KEYS[2] dead  KEYS[3] queued  KEYS[4] depth
-- ARGV[1] group  ARGV[2] consumer  ARGV[3] min idle ms  ARGV[4] count  ARGV[5] max deliveries
-- ARGV[6] job key prefix  ARGV[7] now  ARGV[8] ttl ms  ARGV[9] the dead letter's error
-- Returns {entry, job id, deliveries, ...} of the deliveries taken over and started.
local taken = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
  'COUNT', ARGV[4])
local out = {}
for _, item in ipairs(taken[2]) do
  local entry, fields = item[1], item[2]
  local id = fields and fields[2]
  local key = ARGV[6] .. (id or '')
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  local deliveries = pending[1] and tonumber(pending[1][4]) or 1
  local status = id and redis.call('HGET', key, 'status')
  if status ~= 'queued' and status ~= 'running' then
    drop(KEYS[1], ARGV[1], entry)
  elseif deliveries > tonumber(ARGV[5]) then
    drop(KEYS[1], ARGV[1], entry)
    local row = redis.call('HMGET', key, 'owner', 'model', 'idem')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'job', id, 'owner', row[1],
      'model', row[2], 'deliveries', deliveries, 'at', ARGV[7])
    if status == 'queued' then
      redis.call('HINCRBY', KEYS[3], row[1], -1)
      redis.call('HINCRBY', KEYS[4], row[2], -1)
    end
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[7], 'error', ARGV[9],
      'error_status', '500')
    redis.call('PEXPIRE', key, ARGV[8])
    if row[3] and row[3] ~= '' then redis.call('PEXPIRE', row[3], ARGV[8]) end
  elseif start_run(key, KEYS[3], KEYS[4], ARGV[7]) then
    table.insert(out, entry)
    table.insert(out, id)
    table.insert(out, deliveries)
  else
    drop(KEYS[1], ARGV[1], entry)
  end
end
return out
"""
)

FINISH: Final = """
-- KEYS[1] job hash  KEYS[2] queue
-- ARGV[1] group  ARGV[2] entry  ARGV[3] status  ARGV[4] result  ARGV[5] error
-- ARGV[6] error status  ARGV[7] now  ARGV[8] ttl ms
-- Acknowledges the delivery; finishes the job if it is still running (1), else 0.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'result', ARGV[4], 'error', ARGV[5],
  'error_status', ARGV[6], 'finished_at', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local idem = redis.call('HGET', KEYS[1], 'idem')
if idem and idem ~= '' then redis.call('PEXPIRE', idem, ARGV[8]) end
return 1
"""

RELEASE: Final = """
-- KEYS[1] job hash  KEYS[2] queue  KEYS[3] delayed  KEYS[4] queued  KEYS[5] depth
-- ARGV[1] group  ARGV[2] entry  ARGV[3] due (unix seconds)  ARGV[4] job id
-- ARGV[5] '1' if the run counts as an attempt
-- Acknowledges the delivery and puts a running job back (1), else 0.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
if ARGV[5] ~= '1' then
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  if attempts > 0 then redis.call('HSET', KEYS[1], 'attempts', attempts - 1) end
end
local row = redis.call('HMGET', KEYS[1], 'owner', 'model')
redis.call('HINCRBY', KEYS[4], row[1], 1)
redis.call('HINCRBY', KEYS[5], row[2], 1)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""

PROMOTE: Final = """
-- KEYS[1] delayed  KEYS[2] queue  ARGV[1] now  ARGV[2] count
-- Moves the put-back jobs that are due into the queue; their number.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', id)
  redis.call('ZREM', KEYS[1], id)
end
return #due
"""

CANCEL: Final = """
-- KEYS[1] job hash  KEYS[2] queued  KEYS[3] depth  KEYS[4] delayed
-- ARGV[1] now  ARGV[2] ttl ms  ARGV[3] job id
-- Cancels a queued job; returns its status after (false when unknown).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'queued' then return status end
local row = redis.call('HMGET', KEYS[1], 'owner', 'model', 'idem')
redis.call('HINCRBY', KEYS[2], row[1], -1)
redis.call('HINCRBY', KEYS[3], row[2], -1)
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if row[3] and row[3] ~= '' then redis.call('PEXPIRE', row[3], ARGV[2]) end
return 'cancelled'
"""

_SCAN_MOST: Final = 1000  # index entries one listing looks at (filters may skip many)


class RedisJobs:
    """The job part of :class:`~gateway.store.redis.RedisStore` (a mixin)."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout) -> None:
        self._jobs_client = client
        self._jk = keys
        self._submit = client.register_script(SUBMIT)
        self._start = client.register_script(START)
        self._reclaim = client.register_script(RECLAIM)
        self._finish = client.register_script(FINISH)
        self._release_job = client.register_script(RELEASE)
        self._promote = client.register_script(PROMOTE)
        self._cancel = client.register_script(CANCEL)
        self._group_ready = False

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
        return "created", await self.job_get(job.id)

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
            return found, (found[-1].id if found else ids[-1])

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

    async def job_claim(self, consumer: str, count: int, now: float) -> list[Claimed]:
        if count <= 0:
            return []
        k = self._jk
        queue = k.jobs("queue")
        with mapped("job_claim"):
            await self._ensure_group()
            try:
                read: Any = await self._jobs_client.xreadgroup(
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
    ) -> list[Claimed]:
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
            out = await self._reclaim(keys=keys, args=args)
            runs = [(str(out[i]), str(out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)]
            return await self._claimed(runs)

    async def job_touch(self, consumer: str, entries: Sequence[str]) -> None:
        if not entries:
            return
        with mapped("job_touch"):
            await self._jobs_client.xclaim(
                self._jk.jobs("queue"), JOB_GROUP, consumer, 0, list(entries), justid=True
            )

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
        ]
        with mapped("job_finish"):
            done = await self._finish(
                keys=[self._job_key(job_id), self._jk.jobs("queue")], args=args
            )
        return await self.job_get(job_id) if done else None

    async def job_promote(self, now: float) -> int:
        keys = [self._jk.jobs("delayed"), self._jk.jobs("queue")]
        with mapped("job_promote"):
            return int(await self._promote(keys=keys, args=[repr(now), 100]))

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


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
