"""The batch record: a file of requests kept with the batch, fed to the job queue a few at a
time, and the counters of how its lines ended.

    queued ──► in_progress ──► completed        (every line fed, every job done)
      │             │
      └─────────────┴──► cancelled             (DELETE: unfed lines and queued jobs)

A line is *fed* when its job is submitted (``JobService.submit`` with ``batch_id``,
``custom_id`` and the idempotency key ``batch:<id>:<custom_id>``, so a line fed twice after a
crash is one job). A fed job stays *open* until the feeder sees it done; it is then *settled*
into the ``succeeded``/``failed``/``cancelled`` counters. Open jobs bound the tenant's
concurrency: at most ``jobs.batch_concurrency`` of a tenant's batch jobs are open at once.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal, Self, get_args

import orjson

from gateway.jobs.model import CallerSnapshot, JobProtocol

BatchStatus = Literal["queued", "in_progress", "completed", "cancelled"]
BATCH_STATUSES: Final[tuple[BatchStatus, ...]] = get_args(BatchStatus)
WAKE_CHANNEL: Final = "batches"
"""The store channel a new batch's id is published on: idle feeders, on every replica, look
at the active batches at once instead of polling for them."""
SETTLED: Final = ("succeeded", "failed", "cancelled")
"""The counters a settled job lands in (its job status)."""


def new_batch_id(now: float | None = None) -> str:
    """``b`` + 14 hex digits of microseconds + 16 random hex digits (sorted by creation)."""
    micros = int((time.time() if now is None else now) * 1_000_000)
    return f"b{micros:014x}{os.urandom(8).hex()}"


def idempotency_key(batch_id: str, custom_id: str) -> str:
    """The job's ``Idempotency-Key`` of a line: feeding it again finds the same job."""
    return f"batch:{batch_id}:{custom_id}"


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One validated line: the request its job will replay (``body``: the request as JSON)."""

    custom_id: str
    model: str
    pin: str | None
    protocol: JobProtocol
    body: bytes = field(repr=False)

    def to_json(self) -> str:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode()
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        data = orjson.loads(text)
        data["body"] = base64.b64decode(data["body"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch file. ``owner`` as a job's (``JobService``'s ``owner_of``); ``caller`` the
    submitter as authenticated, given to every job of the batch; ``fed`` the lines submitted
    as jobs so far (lines are fed in order); ``open`` the ids of fed jobs not yet settled."""

    id: str
    owner: str
    total: int
    created_at: float
    caller: CallerSnapshot | None = None
    status: BatchStatus = "queued"
    fed: int = 0
    finished_at: float | None = None
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    open: tuple[str, ...] = ()

    @property
    def feeding(self) -> bool:
        """Whether lines are left to feed."""
        return self.status in ("queued", "in_progress") and self.fed < self.total

    def spec_json(self) -> str:
        """The immutable part as JSON."""
        data = {name: getattr(self, name) for name in _SPEC}
        data["caller"] = asdict(self.caller) if self.caller is not None else None
        return orjson.dumps(data).decode()

    def state_fields(self) -> dict[str, str]:
        return {
            "status": self.status,
            "fed": str(self.fed),
            "finished_at": "" if self.finished_at is None else repr(self.finished_at),
            "succeeded": str(self.succeeded),
            "failed": str(self.failed),
            "cancelled": str(self.cancelled),
        }

    @classmethod
    def from_parts(
        cls, spec: str | bytes, state: Mapping[str, str], open_: tuple[str, ...]
    ) -> Self:
        data = orjson.loads(spec)
        values: dict[str, Any] = {k: v for k, v in data.items() if k in _SPEC}
        caller = data.get("caller")
        values["caller"] = CallerSnapshot.from_json(caller) if caller else None
        status = state.get("status") or "queued"
        if status not in BATCH_STATUSES:
            raise ValueError(f"batch: unknown status {status!r}")
        finished = state.get("finished_at") or ""
        return cls(
            **values,
            status=status,
            fed=int(state.get("fed") or 0),
            finished_at=float(finished) if finished else None,
            succeeded=int(state.get("succeeded") or 0),
            failed=int(state.get("failed") or 0),
            cancelled=int(state.get("cancelled") or 0),
            open=tuple(sorted(open_)),
        )

    def with_open(self, open_: tuple[str, ...]) -> Batch:
        return replace(self, open=open_)


_SPEC: Final = frozenset({"id", "owner", "total", "created_at"})
