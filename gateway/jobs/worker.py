"""The job worker: takes jobs from the queue, replays them, and records how each ended.

Every ``gateway serve`` process runs one (and ``gateway worker`` runs only that). It claims
up to ``jobs.concurrency`` jobs at once (``jobs.tenant_concurrency`` per tenant: a tenant at
its cap gets its job put back, not run), renews the claim of a long job so it is not taken
over, and takes over the jobs of workers that died (after ``jobs.visibility_timeout``).

A run's outcome: the answer → ``succeeded``. A rate or concurrency refusal → put back after
its ``Retry-After`` (not an attempt). An exhausted quota → ``failed`` with the 429. A
retryable backend failure (503, 504, unreachable) → put back with backoff until
``jobs.max_attempts``, then ``failed``. Any other error → ``failed`` with that error in the
protocol's shape. Delivery to the backend is at least once: a worker that dies after the
backend answered but before recording it leaves the job to be run again.

An idle worker does not poll: it waits in the store for a job to arrive (a blocked XREADGROUP
on Redis, woken by a submit on any replica; an event in memory), and looks at the store on its
own only when a put-back job falls due (the delayed set's earliest time), when dead workers'
jobs are due for a takeover check and when the queue depth is sampled: every few seconds at
most, instead of every ``jobs.poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable

from gateway.auth.keys import KeyVerifier
from gateway.config.live import Runtime
from gateway.errors import GatewayError, InternalError, QuotaExhausted, RateLimited
from gateway.jobs.config import JobsConfig
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.model import Claimed, Job
from gateway.jobs.replay import encode_error, replay
from gateway.jobs.service import JobService
from gateway.store import Store
from gateway.telemetry.access_log import Observer

logger = logging.getLogger("gateway.jobs")

RETRYABLE = frozenset({503, 504})
_DEPTH_EVERY = 5.0  # seconds between queue-depth samples
_STORE_BACKOFF = 1.0
_SCHEDULE_EVERY = 5.0  # the longest between two looks at the delayed set (another replica's)


def consumer_name() -> str:
    """This worker's name in the consumer group: host, process, and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobWorker:
    """Runs jobs in this process until :meth:`close`."""

    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        service: JobService,
        keys: KeyVerifier,
        metrics: JobMetrics,
        consumer: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.service = service
        self.keys = keys
        self.metrics = metrics
        self.consumer = consumer or consumer_name()
        self.observer = observer  # counts each run like a request (protocol "job")
        self._running: dict[str, asyncio.Task[None]] = {}  # entry -> its run
        self._owners: Counter[str] = Counter()  # owner -> jobs running here
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reclaimed_at = 0.0
        self._sampled_at = 0.0
        self._schedule_at = 0.0  # monotonic: when to promote put-back jobs next
        self._timers: set[asyncio.Task[None]] = set()  # promote the jobs this worker put back

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-worker")

    async def close(self) -> None:
        """Stop taking jobs, and stop the runs in progress; their jobs are put back (not an
        attempt), or, if that fails, taken over by another worker after the visibility
        timeout."""
        # redis-py can swallow a cancel that lands while a command is in flight
        # (redis/redis-py#2028): the loop also ends on this flag, and close never hangs on it.
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for timer in list(self._timers):
            timer.cancel()
        runs = list(self._running.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        # a blocked claim cancelled just as a job came leaves it delivered here, never read
        with contextlib.suppress(GatewayError):
            await self.store.job_forsake(self.consumer, list(self._running))

    @property
    def config(self) -> JobsConfig:
        return self.runtime().table.jobs

    async def _loop(self) -> None:
        while not self._stop.is_set():
            config = self.config
            try:
                claimed = await self._take(config)
            except GatewayError as exc:  # the store is out: try again shortly
                logger.warning("job worker: %s", exc.message)
                await self._pause(_STORE_BACKOFF)
                continue
            except Exception:  # a bug must not stop the jobs for good
                logger.exception("job worker: taking jobs failed")
                await self._pause(_STORE_BACKOFF)
                continue
            if self._stop.is_set():
                for run in claimed:  # taken while closing: put back at once
                    with contextlib.suppress(GatewayError):
                        await self.store.job_release(run, 0.0, time.time(), attempt=False)
                break
            for run in claimed:
                self._launch(run)
            if len(self._running) >= config.concurrency:  # full: wait for a run to end
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._until_due())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _until_due(self) -> float:
        """Seconds until the next look at the store on the worker's own schedule."""
        moment = time.monotonic()
        return max(0.0, min(self._schedule_at, self._sampled_at + _DEPTH_EVERY) - moment)

    async def _take(self, config: JobsConfig) -> list[Claimed]:
        now = time.time()
        moment = time.monotonic()
        if moment >= self._schedule_at:
            _, due = await self.store.job_schedule(now)
            wait = _SCHEDULE_EVERY if due is None else min(_SCHEDULE_EVERY, due - now)
            self._schedule_at = moment + max(0.0, wait)
        claimed: list[Claimed] = []
        free = config.concurrency - len(self._running)
        if moment - self._reclaimed_at >= config.visibility_timeout / 4 and free > 0:
            self._reclaimed_at = moment
            taken, dead = await self.store.job_reclaim(
                self.consumer,
                config.visibility_timeout,
                config.max_deliveries,
                free,
                now,
                config.result_ttl,
            )
            claimed += taken
            for job_id in dead:
                await self._dead_lettered(job_id)
        if moment - self._sampled_at >= _DEPTH_EVERY:
            self._sampled_at = moment
            await self._sample_depth()
        free -= len(claimed)
        if free > 0:
            # nothing taken over: wait in the store for a new job, until the next own look
            block = 0.0 if claimed else min(self._until_due(), self._until_reclaim(config))
            claimed += await self.store.job_claim(self.consumer, free, now, block=block)
        return claimed

    def _until_reclaim(self, config: JobsConfig) -> float:
        return max(0.0, self._reclaimed_at + config.visibility_timeout / 4 - time.monotonic())

    def _promote_at(self, delay: float) -> None:
        """Promote a job this worker put back when its delay is over (the worker blocked in
        the store would otherwise see it only at its next own look)."""
        timer = asyncio.create_task(self._promote_after(delay), name="job-promote")
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _promote_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self.store.job_promote(time.time())
        except GatewayError as exc:  # the worker's own schedule promotes it later
            logger.warning("job worker: %s", exc.message)

    async def _release(self, claimed: Claimed, delay: float, now: float, *, attempt: bool) -> None:
        if await self.store.job_release(claimed, delay, now, attempt=attempt):
            self._promote_at(delay)

    async def _sample_depth(self) -> None:
        self.metrics.sample_depth(await self.store.job_depth())

    async def _dead_lettered(self, job_id: str) -> None:
        job = await self.store.job_get(job_id)
        if job is not None:
            self.metrics.outcomes.labels(self.metrics.model(job.model), "dead_lettered").inc()
            logger.error("job %s dead-lettered after too many deliveries", job_id)
            await self.service.notify(job)

    def _launch(self, claimed: Claimed) -> None:
        run = asyncio.create_task(self._guarded(claimed), name=f"job {claimed.job.id}")
        self._running[claimed.entry] = run

    async def _guarded(self, claimed: Claimed) -> None:
        owner = claimed.job.owner
        self._owners[owner] += 1
        try:
            await self._execute(claimed)
        except asyncio.CancelledError:
            with contextlib.suppress(GatewayError, asyncio.CancelledError):
                await self.store.job_release(claimed, 0.0, time.time(), attempt=False)
            raise
        except GatewayError as exc:  # the store failed on the way: the claim lapses, retried
            logger.warning("job %s: %s", claimed.job.id, exc.message)
        except Exception:
            logger.exception("job %s: the worker failed", claimed.job.id)
        finally:
            self._owners[owner] -= 1
            if self._owners[owner] <= 0:
                del self._owners[owner]
            self._running.pop(claimed.entry, None)
            self._wake.set()

    async def _execute(self, claimed: Claimed) -> None:
        job, config = claimed.job, self.config
        label = self.metrics.model(job.model)
        if self._owners[job.owner] > config.tenant_concurrency:
            self.metrics.attempts.labels(label, "delayed").inc()
            await self._release(claimed, config.poll_interval, time.time(), attempt=False)
            return
        if job.started_at is not None:
            self.metrics.wait.labels(label).observe(max(0.0, job.started_at - job.created_at))
        keepalive = asyncio.create_task(self._keep_claim(claimed, config.visibility_timeout / 3))
        started = time.monotonic()
        try:
            body = version = error = None
            try:
                answer = await replay(
                    job, self.runtime(), self.keys, f"job-{job.id}", self.observer
                )
                body, version = answer.body, answer.version
            except GatewayError as exc:
                error = exc
            except Exception as exc:
                logger.exception("job %s: unexpected error", job.id)
                error = InternalError(f"internal error: {type(exc).__name__}")
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        self.metrics.run.labels(label).observe(time.monotonic() - started)
        await self._record(claimed, config, body, version, error)

    async def _record(
        self,
        claimed: Claimed,
        config: JobsConfig,
        body: bytes | None,
        version: str | None,
        error: GatewayError | None,
    ) -> None:
        job, now = claimed.job, time.time()
        label, ttl = self.metrics.model(job.model), config.result_ttl
        if error is None:
            done = await self.store.job_finish(
                claimed, "succeeded", now, ttl, result=body, version=version
            )
            self.metrics.attempts.labels(label, "succeeded").inc()
            return await self._finished(done)
        if isinstance(error, RateLimited) and not isinstance(error, QuotaExhausted):
            delay = _retry_after(error, config.poll_interval)
            self.metrics.attempts.labels(label, "delayed").inc()
            await self._release(claimed, delay, now, attempt=False)
            return None
        if error.status in RETRYABLE and job.attempts < config.max_attempts:
            delay = config.retry_backoff * 2 ** max(0, job.attempts - 1)
            self.metrics.attempts.labels(label, "retried").inc()
            await self._release(claimed, delay, now, attempt=True)
            return None
        self.metrics.attempts.labels(label, "failed").inc()
        done = await self.store.job_finish(
            claimed, "failed", now, ttl, error=encode_error(error), error_status=error.status
        )
        return await self._finished(done)

    async def _finished(self, job: Job | None) -> None:
        if job is None:
            return  # another delivery of the same job finished it first
        self.metrics.outcomes.labels(self.metrics.model(job.model), job.status).inc()
        await self.service.notify(job)

    async def _keep_claim(self, claimed: Claimed, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.store.job_touch(self.consumer, [claimed.entry])
            except GatewayError as exc:
                logger.warning("job %s: claim not renewed: %s", claimed.job.id, exc.message)


def _retry_after(error: GatewayError, floor: float) -> float:
    try:
        return max(floor, float(error.headers.get("Retry-After", floor)))
    except ValueError:
        return floor
