"""Batch records in this process's memory (they die with it, like its jobs)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gateway.batches.model import SETTLED, Batch, BatchLine
from gateway.jobs.model import Job, JobStatus


@dataclass(slots=True)
class _Kept:
    batch: Batch  # its ``open`` is kept in ``open`` below
    lines: list[BatchLine]
    custom_ids: list[str]
    jobs: dict[int, str] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)
    expires: float | None = None  # monotonic, once finished


class MemoryBatches:
    """The batch part of :class:`~gateway.store.memory.MemoryStore` (a mixin; it reads the
    jobs through ``job_get``)."""

    def __init__(self) -> None:
        self._batches: dict[str, _Kept] = {}

    if TYPE_CHECKING:

        async def job_get(self, job_id: str) -> Job | None: ...  # the jobs mixin's

    def _kept(self, batch_id: str) -> _Kept | None:
        kept = self._batches.get(batch_id)
        if kept is not None and kept.expires is not None and kept.expires <= time.monotonic():
            del self._batches[batch_id]
            return None
        return kept

    @staticmethod
    def _shown(kept: _Kept) -> Batch:
        return kept.batch.with_open(tuple(sorted(kept.open)))

    async def batch_create(self, batch: Batch, lines: Sequence[BatchLine]) -> None:
        batch = replace(batch, status="queued", fed=0, open=())
        self._batches[batch.id] = _Kept(batch, list(lines), [line.custom_id for line in lines])

    async def batch_get(self, batch_id: str) -> Batch | None:
        kept = self._kept(batch_id)
        return self._shown(kept) if kept is not None else None

    async def batch_list(
        self, owner: str | None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Batch], str | None]:
        found: list[Batch] = []
        for batch_id in sorted(self._batches, reverse=True):
            if cursor is not None and batch_id >= cursor:
                continue
            kept = self._kept(batch_id)
            if kept is None or (owner is not None and kept.batch.owner != owner):
                continue
            if len(found) == limit:
                return found, found[-1].id
            found.append(self._shown(kept))
        return found, None

    async def batch_active(self) -> list[Batch]:
        return [
            self._shown(kept)
            for batch_id in sorted(self._batches)
            if (kept := self._kept(batch_id)) is not None and kept.expires is None
        ]

    async def batch_lines(self, batch_id: str, start: int, count: int) -> list[BatchLine]:
        kept = self._kept(batch_id)
        return kept.lines[start : start + count] if kept is not None else []

    async def batch_entries(
        self, batch_id: str, start: int, count: int
    ) -> list[tuple[str, str | None]]:
        kept = self._kept(batch_id)
        if kept is None:
            return []
        end = min(start + count, len(kept.custom_ids))
        return [(kept.custom_ids[i], kept.jobs.get(i)) for i in range(start, end)]

    async def batch_fed(self, batch_id: str, index: int, job_id: str) -> bool:
        kept = self._kept(batch_id)
        if kept is None or kept.batch.status not in ("queued", "in_progress"):
            return False
        kept.jobs[index] = job_id
        kept.open.add(job_id)
        kept.batch = replace(kept.batch, status="in_progress", fed=max(kept.batch.fed, index + 1))
        return True

    async def batch_settle(self, batch_id: str, done: Mapping[str, JobStatus]) -> None:
        kept = self._kept(batch_id)
        if kept is None:
            return
        for job_id, status in done.items():
            if job_id not in kept.open or status not in SETTLED:
                continue
            kept.open.discard(job_id)
            counted = getattr(kept.batch, status) + 1
            kept.batch = replace(kept.batch, **{status: counted})

    async def batch_cancel(self, batch_id: str, now: float) -> Batch | None:
        kept = self._kept(batch_id)
        if kept is None:
            return None
        if kept.batch.status in ("queued", "in_progress"):
            kept.batch = replace(kept.batch, status="cancelled", finished_at=now)
        return self._shown(kept)

    async def batch_finish(self, batch_id: str, now: float, ttl: float) -> Batch | None:
        kept = self._kept(batch_id)
        if kept is None or kept.open or kept.expires is not None:
            return None
        batch = kept.batch
        if batch.status != "cancelled":
            if batch.fed < batch.total:
                return None
            batch = replace(batch, status="completed", finished_at=now)
        kept.batch, kept.lines = batch, []
        kept.expires = time.monotonic() + ttl
        return self._shown(kept)

    async def batch_jobs(self, job_ids: Sequence[str]) -> list[Job | None]:
        return [await self.job_get(job_id) for job_id in job_ids]
