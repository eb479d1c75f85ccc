"""Creating, reading, listing and cancelling batch files, and their results as JSONL: what the
HTTP frontend and the admin API call. The lines run as jobs, fed by :mod:`.feeder`."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import orjson

from gateway.batches.metrics import BatchFileMetrics
from gateway.batches.model import WAKE_CHANNEL, Batch, BatchLine, new_batch_id
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.jobs.config import JobsConfig
from gateway.jobs.model import CallerSnapshot, Job
from gateway.jobs.service import JobService
from gateway.store import Store

logger = logging.getLogger("gateway.batches")

RESULTS_PAGE: Final = 500  # lines read from the store at a time while results stream
_EXPIRED: Final = orjson.Fragment(b'{"error":"the result expired","code":"result_expired"}')


class BatchService:
    """Batch files for the frontends; ``config`` reads the ``jobs:`` section live now."""

    def __init__(
        self,
        store: Store,
        jobs: JobService,
        config: Callable[[], JobsConfig],
        metrics: BatchFileMetrics,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.config = config
        self.metrics = metrics

    async def create(
        self, lines: Sequence[BatchLine], caller: CallerSnapshot | None, owner: str
    ) -> Batch:
        """Store a checked batch file (``lines.read_lines``); the feeders take it from here
        (woken on every replica: :data:`WAKE_CHANNEL`)."""
        now = time.time()
        batch = Batch(new_batch_id(now), owner, len(lines), now, caller)
        await self.store.batch_create(batch, lines)
        try:
            await self.store.publish(WAKE_CHANNEL, batch.id)
        except GatewayError as exc:  # stored: an idle feeder's own look finds it later
            logger.warning("batch %s: feeders not woken: %s", batch.id, exc.message)
        return batch

    async def get(self, batch_id: str, owner: str | None) -> Batch:
        """The batch; 404 when unknown, expired or another owner's (``owner`` None: any)."""
        batch = await self.store.batch_get(batch_id)
        if batch is None or (owner is not None and batch.owner != owner):
            raise NotFound(f"no batch {batch_id!r}")
        return batch

    async def list(
        self, owner: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Batch], str | None]:
        return await self.store.batch_list(owner, limit=limit, cursor=cursor)

    async def counts(self, batch: Batch) -> dict[str, int]:
        """Lines per state: settled jobs from the batch's counters, open jobs as they are
        now (at most ``jobs.batch_concurrency`` reads, in one round trip), unfed lines as
        queued (cancelled once the batch is)."""
        counts = {
            "total": batch.total,
            "queued": 0,
            "running": 0,
            "succeeded": batch.succeeded,
            "failed": batch.failed,
            "cancelled": batch.cancelled,
        }
        unfed = batch.total - batch.fed
        counts["cancelled" if batch.status == "cancelled" else "queued"] += unfed
        for job in await self.store.batch_jobs(batch.open):
            counts[job.status if job is not None else "failed"] += 1
        return counts

    async def view(self, batch: Batch) -> dict[str, Any]:
        """A batch as ``GET /batches/{id}`` shows it."""
        shown: dict[str, Any] = {
            "id": batch.id,
            "status": batch.status,
            "created_at": batch.created_at,
        }
        if batch.finished_at is not None:
            shown["finished_at"] = batch.finished_at
        shown["counts"] = await self.counts(batch)
        return shown

    async def cancel(self, batch_id: str, owner: str | None) -> Batch:
        """Stop feeding the batch and cancel its queued jobs (running ones finish); 404 as
        :meth:`get`, 409 once it is completed or cancelled."""
        batch = await self.get(batch_id, owner)
        if batch.status not in ("queued", "in_progress"):
            raise Conflict(f"batch {batch_id!r} is {batch.status}: nothing to cancel")
        after = await self.store.batch_cancel(batch_id, time.time())
        if after is None:
            raise NotFound(f"no batch {batch_id!r}")
        if after.status != "cancelled":
            raise Conflict(f"batch {batch_id!r} is {after.status}: nothing to cancel")
        self.metrics.finished.labels("cancelled").inc()
        for job in await self.store.batch_jobs(after.open):
            if job is not None and job.status == "queued":
                with contextlib.suppress(Conflict, NotFound):  # it started meanwhile
                    await self.jobs.cancel(job.id, None)
        return await self.get(batch_id, owner)

    async def results(self, batch: Batch) -> AsyncIterator[bytes]:
        """The results as JSONL, in input order, one object per line, read a page at a time
        (a 50,000-line batch is never held whole)."""
        unfed = {"status": "cancelled" if batch.status == "cancelled" else "queued"}
        for start in range(0, batch.total, RESULTS_PAGE):
            entries = await self.store.batch_entries(batch.id, start, RESULTS_PAGE)
            fed = [job_id for _, job_id in entries if job_id is not None]
            jobs = dict(zip(fed, await self.store.batch_jobs(fed), strict=True))
            chunk = bytearray()
            for custom_id, job_id in entries:
                if job_id is None:
                    row: dict[str, Any] = {"custom_id": custom_id, **unfed}
                else:
                    row = result_row(custom_id, jobs.get(job_id))
                chunk += orjson.dumps(row) + b"\n"
            yield bytes(chunk)


def result_row(custom_id: str, job: Job | None) -> dict[str, Any]:
    """One line's result: its job's status, and once done its ``status_code`` with the
    protocol's ``response`` or ``error`` object."""
    if job is None:  # fed, but its job expired (jobs.result_ttl) or was never kept
        return {"custom_id": custom_id, "status": "failed", "status_code": 410, "error": _EXPIRED}
    row: dict[str, Any] = {"custom_id": custom_id, "status": job.status}
    if job.status == "succeeded" and job.result is not None:
        row["status_code"] = 200
        row["response"] = orjson.Fragment(job.result)
    elif job.error is not None:
        row["status_code"] = job.error_status or 500
        row["error"] = orjson.Fragment(job.error)
    return row
