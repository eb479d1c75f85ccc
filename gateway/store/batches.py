"""What the store keeps of batch files (``gateway.batches``): the record with its counters,
the lines until they are fed, the job id each fed line became, and the open jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.batches.model import Batch, BatchLine
from gateway.jobs.model import Job, JobStatus


class BatchStore(Protocol):
    """Batch records, implemented for Redis (one hash slot per batch, ``{b:<id>}``) and
    memory. Recording a fed line, settling jobs, cancelling and finishing are atomic."""

    async def batch_create(self, batch: Batch, lines: Sequence[BatchLine]) -> None:
        """Store a new batch (status queued) and its lines, in order; it is then active (the
        feeders see it) and listed for its owner."""
        ...

    async def batch_get(self, batch_id: str) -> Batch | None:
        """The batch with its open jobs; None when unknown or expired."""
        ...

    async def batch_list(
        self, owner: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Batch], str | None]:
        """Batches newest first (``owner`` None: everyone's) and the next page's cursor."""
        ...

    async def batch_active(self) -> list[Batch]:
        """The batches a feeder has work on: lines to feed or jobs still open."""
        ...

    async def batch_lines(self, batch_id: str, start: int, count: int) -> list[BatchLine]:
        """Lines ``start`` to ``start + count`` (fewer at the end; none once finished)."""
        ...

    async def batch_entries(
        self, batch_id: str, start: int, count: int
    ) -> list[tuple[str, str | None]]:
        """``(custom_id, job id or None when not fed)`` of lines ``start`` to
        ``start + count``, in input order."""
        ...

    async def batch_fed(self, batch_id: str, index: int, job_id: str) -> bool:
        """Record that line ``index`` is job ``job_id`` (open now; ``fed`` at least
        ``index + 1``; status in_progress). False, nothing recorded, when the batch is
        cancelled or gone."""
        ...

    async def batch_settle(self, batch_id: str, done: Mapping[str, JobStatus]) -> None:
        """Move open jobs that ended into the counter of their status (once each)."""
        ...

    async def batch_cancel(self, batch_id: str, now: float) -> Batch | None:
        """Cancel a queued or in-progress batch (no more lines fed); the batch as it is now,
        None when unknown."""
        ...

    async def batch_finish(self, batch_id: str, now: float, ttl: float) -> Batch | None:
        """With every line fed (or the batch cancelled) and no job open: completed (unless
        cancelled), no longer active, kept ``ttl`` seconds more; its lines are dropped. The
        batch, or None when it is not finished (still work, or gone)."""
        ...

    async def batch_jobs(self, job_ids: Sequence[str]) -> list[Job | None]:
        """The jobs, in one round trip (None where gone)."""
        ...
