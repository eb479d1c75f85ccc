"""The batch feeder: submits the lines of batch files as jobs, a few at a time per tenant.

Every process that runs job workers runs one. Each round it reads the active batches, and
for each owner (tenant) whose lease it holds (``Store.lease("batch-feed:<owner>")``, renewed
each round, so one replica feeds a tenant's batches at a time and another takes over
``jobs.visibility_timeout`` after one dies) it:

1. settles the open jobs that ended (the batch's counters, once each);
2. feeds lines, oldest batch first, until the owner has ``jobs.batch_concurrency`` batch
   jobs open (queued or running): the rest wait with the batch, not in the job queue, so a
   50,000-line batch never floods the queue ahead of other tenants;
3. finishes the batches with every line fed and no job open.

While batches are active it goes round every ``jobs.poll_interval``. With none, it waits: a
new batch's id published on :data:`~gateway.batches.model.WAKE_CHANNEL` (by the replica that
stored it) wakes it, and it looks on its own only every ``_IDLE_EVERY`` seconds (in case a
publish was lost).

A line is fed with the job ``Idempotency-Key`` ``batch:<id>:<custom_id>`` and then recorded:
a feeder that dies in between leaves the line to be fed again, which finds the same job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

from gateway.batches.metrics import BatchFileMetrics
from gateway.batches.model import WAKE_CHANNEL, Batch, idempotency_key
from gateway.errors import Conflict, GatewayError, JobQueueFull, NotFound
from gateway.jobs.config import JobsConfig
from gateway.jobs.model import DONE, JobStatus
from gateway.jobs.service import JobService
from gateway.jobs.worker import consumer_name
from gateway.store import Store

logger = logging.getLogger("gateway.batches")

_STORE_BACKOFF = 1.0
_IDLE_EVERY = 10.0  # seconds between an idle feeder's own looks (wakes are at most once)
_PIN = "x-model-version"


class BatchFeeder:
    """Feeds batch files in this process until :meth:`close`."""

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        config: Callable[[], JobsConfig],
        metrics: BatchFileMetrics,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.config = config
        self.metrics = metrics
        self.holder = holder or consumer_name()
        self._held: set[str] = set()  # owners whose lease this feeder holds
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="batch-feeder-wake")
        self._task = asyncio.create_task(self._loop(), name="batch-feeder")

    def wake(self) -> None:
        """Look at the active batches now."""
        self._wake.set()

    async def _listen(self) -> None:
        """Wake on every new batch (and after a resubscription, when one may have been
        missed); the subscription reconnects by itself."""
        while True:
            try:
                async for _ in self.store.subscribe(WAKE_CHANNEL):
                    self._wake.set()
            except GatewayError as exc:
                logger.warning("batch feeder: wake channel: %s", exc.message)
                self._wake.set()
                await asyncio.sleep(_STORE_BACKOFF)

    async def close(self) -> None:
        """Stop feeding and free the leases, so another replica takes over at once."""
        self._stop.set()  # ends the loop even where a store call swallowed the cancel
        self._wake.set()
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for owner in sorted(self._held):
            with contextlib.suppress(GatewayError):
                await self.store.release_lease(_lease(owner), self.holder)
        self._held.clear()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            config = self.config()
            self._wake.clear()  # before the round: a batch stored during it wakes the next
            try:
                active = await self.feed_once(config)
                pause = config.poll_interval if active else max(config.poll_interval, _IDLE_EVERY)
            except GatewayError as exc:  # the store is out: try again shortly
                logger.warning("batch feeder: %s", exc.message)
                pause = _STORE_BACKOFF
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def feed_once(self, config: JobsConfig) -> bool:
        """One round over the active batches; whether there were any."""
        owners: defaultdict[str, list[Batch]] = defaultdict(list)
        for batch in await self.store.batch_active():
            owners[batch.owner].append(batch)
        for owner in list(self._held - set(owners)):
            self._held.discard(owner)
            await self.store.release_lease(_lease(owner), self.holder)
        for owner, batches in sorted(owners.items()):
            if not await self.store.lease(_lease(owner), self.holder, config.visibility_timeout):
                self._held.discard(owner)
                continue
            self._held.add(owner)
            await self._feed_owner(sorted(batches, key=lambda b: b.id), config)
        return bool(owners)

    async def _feed_owner(self, batches: list[Batch], config: JobsConfig) -> None:
        open_now: dict[str, int] = {}
        for batch in batches:
            open_now[batch.id] = await self._settle(batch)
        free = config.batch_concurrency - sum(open_now.values())
        for batch in batches:
            fed = 0
            if free > 0 and batch.feeding:
                fed = await self._feed(batch, free)
                free -= fed
            if open_now[batch.id] + fed == 0 and not batch.feeding:
                await self._finish(batch, config)

    async def _settle(self, batch: Batch) -> int:
        """Settle the batch's open jobs that ended; how many stay open."""
        if not batch.open:
            return 0
        jobs = await self.store.batch_jobs(batch.open)
        done: dict[str, JobStatus] = {}
        for job_id, job in zip(batch.open, jobs, strict=True):
            if job is None:
                done[job_id] = "failed"  # expired before it was seen: counted, not lost
            elif job.status in DONE:
                done[job_id] = job.status
        await self.store.batch_settle(batch.id, done)
        return len(batch.open) - len(done)

    async def _feed(self, batch: Batch, most: int) -> int:
        """Submit up to ``most`` of the batch's next lines as jobs; how many were fed."""
        lines = await self.store.batch_lines(
            batch.id, batch.fed, min(most, batch.total - batch.fed)
        )
        fed = 0
        for index, line in enumerate(lines, start=batch.fed):
            try:
                job, _ = await self.jobs.submit(
                    model=line.model,
                    pin=line.pin,
                    protocol=line.protocol,
                    body=line.body,
                    headers=[(_PIN, line.pin)] if line.pin else [],
                    caller=batch.caller,
                    owner=batch.owner,
                    idempotency_key=idempotency_key(batch.id, line.custom_id),
                    batch_id=batch.id,
                    custom_id=line.custom_id,
                )
            except JobQueueFull:
                break  # the tenant's queue is full: the next round tries again
            except Conflict as exc:  # the line's key names another request: never expected
                logger.error("batch %s line %d: %s", batch.id, index + 1, exc.message)
                break
            if not await self.store.batch_fed(batch.id, index, job.id):
                # cancelled meanwhile: the job just made must not run
                with contextlib.suppress(Conflict, NotFound):
                    await self.jobs.cancel(job.id, None)
                break
            fed += 1
            self.metrics.fed.inc()
        return fed

    async def _finish(self, batch: Batch, config: JobsConfig) -> None:
        done = await self.store.batch_finish(batch.id, time.time(), config.result_ttl)
        if done is not None and done.status == "completed":
            self.metrics.finished.labels("completed").inc()
            logger.info("batch %s completed", batch.id)


def _lease(owner: str) -> str:
    return f"batch-feed:{owner}"
