"""The job queue in this process's memory: the Redis stream's state machine (deliveries,
idle times, reclaim, dead letters) without Redis. Jobs die with the process. A blocked claim
waits on an event that a new or promoted job sets, as a blocked XREADGROUP does on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gateway.jobs.model import DEAD_LETTER_ERROR, Claimed, DeadLetter, Job, JobStatus, SubmitOutcome

DEAD_CAP = 10_000


@dataclass(slots=True)
class _Delivery:
    job_id: str
    consumer: str
    since: float  # monotonic: last delivery or touch
    count: int


class MemoryJobs:
    """The job part of :class:`~gateway.store.memory.MemoryStore` (a mixin)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._expires: dict[str, float] = {}  # job id -> monotonic deadline (finished jobs)
        self._idem: dict[tuple[str, str], str] = {}
        self._queued: Counter[str] = Counter()  # owner -> queued jobs
        self._depth: Counter[str] = Counter()  # model -> queued jobs
        self._fresh: deque[tuple[str, str]] = deque()  # (entry, job id) not yet delivered
        self._pending: dict[str, _Delivery] = {}
        self._delayed: dict[str, float] = {}  # job id -> due (unix seconds)
        self._jobs_dead: deque[DeadLetter] = deque(maxlen=DEAD_CAP)
        self._entry_seq = 0
        self._arrived = asyncio.Event()  # set when an entry joins _fresh; made outside a loop ok

    def _entry(self) -> str:
        self._entry_seq += 1
        return f"{self._entry_seq}-0"

    def _enqueue(self, job_id: str) -> None:
        self._fresh.append((self._entry(), job_id))
        self._arrived.set()

    def _live(self, job_id: str) -> Job | None:
        deadline = self._expires.get(job_id)
        if deadline is not None and deadline <= time.monotonic():
            job = self._jobs.pop(job_id, None)
            del self._expires[job_id]
            if job is not None and job.idempotency_key is not None:
                self._idem.pop((job.owner, job.idempotency_key), None)
            return None
        return self._jobs.get(job_id)

    def _keep(self, job: Job, ttl: float) -> None:
        self._jobs[job.id] = job
        self._expires[job.id] = time.monotonic() + ttl

    async def job_submit(self, job: Job, *, max_queued: int) -> tuple[SubmitOutcome, Job | None]:
        if job.idempotency_key is not None:
            known = self._idem.get((job.owner, job.idempotency_key))
            existing = self._live(known) if known is not None else None
            if existing is not None:
                return "existing", existing
        if self._queued[job.owner] >= max_queued:
            return "full", None
        job = replace(job, status="queued", attempts=0)
        self._jobs[job.id] = job
        self._queued[job.owner] += 1
        self._depth[job.model] += 1
        self._enqueue(job.id)
        if job.idempotency_key is not None:
            self._idem[(job.owner, job.idempotency_key)] = job.id
        return "created", job

    async def job_get(self, job_id: str) -> Job | None:
        return self._live(job_id)

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
        found: list[Job] = []
        for job_id in sorted(self._jobs, reverse=True):
            if cursor is not None and job_id >= cursor:
                continue
            job = self._live(job_id)
            if job is None or (owner is not None and job.owner != owner):
                continue
            if status is not None and job.status != status:
                continue
            if (model is not None and job.model != model) or (
                batch_id is not None and job.batch_id != batch_id
            ):
                continue
            if len(found) == limit:
                return found, found[-1].id
            found.append(job)
        return found, None

    async def job_cancel(self, job_id: str, now: float, ttl: float) -> Job | None:
        job = self._live(job_id)
        if job is None or job.status != "queued":
            return job
        job = replace(job, status="cancelled", finished_at=now)
        self._keep(job, ttl)
        self._queued[job.owner] -= 1
        self._depth[job.model] -= 1
        self._delayed.pop(job_id, None)
        return job

    def _start(self, job: Job, now: float) -> Job:
        if job.status == "queued":
            self._queued[job.owner] -= 1
            self._depth[job.model] -= 1
        job = replace(job, status="running", attempts=job.attempts + 1, started_at=now)
        self._jobs[job.id] = job
        return job

    async def job_claim(
        self, consumer: str, count: int, now: float, *, block: float = 0.0
    ) -> list[Claimed]:
        if count <= 0:
            return []
        if block > 0 and not self._fresh:
            waited = time.monotonic()
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(block):
                    await self._arrived.wait()
            now += time.monotonic() - waited  # started when it arrived
        claimed: list[Claimed] = []
        while self._fresh and len(claimed) < count:
            entry, job_id = self._fresh.popleft()
            job = self._live(job_id)
            if job is None or job.status != "queued":
                continue  # cancelled while queued: acknowledged at once
            self._pending[entry] = _Delivery(job_id, consumer, time.monotonic(), 1)
            claimed.append(Claimed(self._start(job, now), entry, 1))
        return claimed

    async def job_reclaim(
        self, consumer: str, idle: float, max_deliveries: int, count: int, now: float, ttl: float
    ) -> tuple[list[Claimed], list[str]]:
        claimed: list[Claimed] = []
        dead: list[str] = []
        moment = time.monotonic()
        for entry, delivery in list(self._pending.items()):
            if len(claimed) >= count:
                break
            if moment - delivery.since < idle:
                continue
            delivery.count += 1
            delivery.consumer, delivery.since = consumer, moment
            job = self._live(delivery.job_id)
            if job is None or job.done:
                del self._pending[entry]
                continue
            if delivery.count > max_deliveries:
                del self._pending[entry]
                self._jobs_dead.append(
                    DeadLetter(job.id, job.owner, job.model, delivery.count, now)
                )
                if job.status == "queued":
                    self._queued[job.owner] -= 1
                    self._depth[job.model] -= 1
                failed = replace(
                    job, status="failed", finished_at=now, error=DEAD_LETTER_ERROR, error_status=500
                )
                self._keep(failed, ttl)
                dead.append(job.id)
                continue
            claimed.append(Claimed(self._start(job, now), entry, delivery.count))
        return claimed, dead

    async def job_touch(self, consumer: str, entries: Sequence[str]) -> None:
        moment = time.monotonic()
        for entry in entries:
            delivery = self._pending.get(entry)
            if delivery is not None:
                delivery.consumer, delivery.since = consumer, moment

    async def job_release(
        self, claimed: Claimed, delay: float, now: float, *, attempt: bool
    ) -> bool:
        self._pending.pop(claimed.entry, None)
        job = self._live(claimed.job.id)
        if job is None or job.status != "running":
            return False
        attempts = job.attempts if attempt else max(0, job.attempts - 1)
        self._jobs[job.id] = replace(job, status="queued", attempts=attempts)
        self._queued[job.owner] += 1
        self._depth[job.model] += 1
        self._delayed[job.id] = now + delay
        return True

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
        self._pending.pop(claimed.entry, None)
        job = self._live(claimed.job.id)
        if job is None or job.status != "running":
            return None
        job = replace(
            job,
            status=status,
            finished_at=now,
            result=result,
            error=error,
            error_status=error_status,
            version=version,
        )
        self._keep(job, ttl)
        return job

    async def job_promote(self, now: float) -> int:
        return (await self.job_schedule(now))[0]

    async def job_schedule(self, now: float) -> tuple[int, float | None]:
        due = [job_id for job_id, at in self._delayed.items() if at <= now]
        for job_id in due:
            del self._delayed[job_id]
            self._enqueue(job_id)
        return len(due), min(self._delayed.values(), default=None)

    async def job_forsake(self, consumer: str, keep: Sequence[str]) -> int:
        kept = set(keep)
        forsaken = [
            (entry, d.job_id)
            for entry, d in self._pending.items()
            if d.consumer == consumer and entry not in kept and self._queued_job(d.job_id)
        ]
        for entry, job_id in forsaken:
            del self._pending[entry]
            self._enqueue(job_id)
        return len(forsaken)

    def _queued_job(self, job_id: str) -> bool:
        job = self._live(job_id)
        return job is not None and job.status == "queued"

    async def job_depth(self) -> dict[str, int]:
        return {model: n for model, n in self._depth.items() if n > 0}

    async def job_dead(self, limit: int = 100) -> list[DeadLetter]:
        newest = reversed(self._jobs_dead)
        return [letter for _, letter in zip(range(max(limit, 0)), newest, strict=False)]
