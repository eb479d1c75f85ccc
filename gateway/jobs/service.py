"""Submitting, reading, listing and cancelling jobs: what the HTTP frontends, the admin API
and batch files call. No HTTP here: :meth:`JobService.submit` takes the request as bytes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from gateway.auth.authenticator import Caller
from gateway.codecs.tensors import loads
from gateway.errors import Conflict, GatewayError, JobQueueFull, NotFound
from gateway.jobs.callbacks import CallbackSink
from gateway.jobs.config import JobsConfig
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.model import CallerSnapshot, Job, JobProtocol, JobStatus, fingerprint, new_job_id
from gateway.store import Store

logger = logging.getLogger("gateway.jobs")

EVENTS: Final[dict[JobStatus, str]] = {
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}


def owner_of(caller: Caller | None) -> str:
    """Whose job it is: the tenant; for a caller without one ``~<issuer>:<subject>``; ``""``
    for an anonymous caller (a gateway without auth, where every job is everyone's)."""
    if caller is None:
        return ""
    principal = caller.principal
    return principal.tenant or f"~{principal.issuer}:{principal.subject}"


def snapshot(caller: Caller | None) -> CallerSnapshot | None:
    if caller is None:
        return None
    p = caller.principal
    return CallerSnapshot(
        subject=p.subject,
        tenant=p.tenant,
        scopes=tuple(sorted(p.scopes)),
        issuer=p.issuer,
        via=p.via,
        credential_id=p.subject if p.via == "api_key" else None,
    )


def view(job: Job, *, parsed: bool = False) -> dict[str, Any]:
    """A job as ``GET /jobs/{id}`` shows it: ``result`` is the protocol's reply and
    ``error`` the protocol's error object (with ``error_status``, its HTTP status). Both are
    embedded as the JSON they are (``orjson.Fragment``), or with ``parsed`` as Python values
    (for a webhook sink that serialises the event itself)."""
    embed = _parse if parsed else orjson.Fragment
    shown: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "model": job.model,
        "version": job.version or job.pin,
        "protocol": job.protocol,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }
    if job.batch_id is not None:
        shown["batch_id"], shown["custom_id"] = job.batch_id, job.custom_id
    if job.result is not None:
        shown["result"] = embed(job.result)
    if job.error is not None:
        shown["error"] = embed(job.error)
        shown["error_status"] = job.error_status
    return shown


def _parse(raw: bytes) -> Any:
    return loads(raw, "the job's result")


def encode_view(job: Job) -> bytes:
    return orjson.dumps(view(job))


class JobService:
    """Jobs for the frontends and batch files.

    ``config`` reads the ``jobs:`` section of the route table live now; ``sink`` takes the
    webhooks (``gateway.webhooks.Webhooks``).
    """

    def __init__(
        self,
        store: Store,
        config: Callable[[], JobsConfig],
        sink: CallbackSink,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.sink = sink
        self.metrics = metrics

    async def submit(
        self,
        *,
        model: str,
        pin: str | None,
        protocol: JobProtocol,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        caller: CallerSnapshot | None,
        owner: str,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        batch_id: str | None = None,
        custom_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Queue a request that was already authorized and validated (the frontends and
        batch files do that); the job and whether it is new (False: the same ``owner`` sent
        the same ``idempotency_key`` before, with the same request). 409 for the same key
        with another request, 429 ``job_queue_full`` past the owner's queue limit.

        ``headers``: the ones in ``model.KEPT_HEADERS`` that decoding ``body`` needs.
        A batch passes ``batch_id`` and ``custom_id`` (``list(batch_id=...)`` finds them)."""
        kept = tuple(sorted((k.lower(), v) for k, v in headers))
        now = time.time()
        job = Job(
            id=new_job_id(now),
            owner=owner,
            model=model,
            protocol=protocol,
            body=body,
            pin=pin,
            headers=kept,
            caller=caller,
            created_at=now,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint(model, pin, protocol, body, kept),
            batch_id=batch_id,
            custom_id=custom_id,
        )
        config = self.config()
        outcome, stored = await self.store.job_submit(job, max_queued=config.max_queued_per_tenant)
        if outcome == "full" or stored is None:
            raise JobQueueFull(
                f"{config.max_queued_per_tenant} jobs are queued already; wait for some to run",
                headers={"Retry-After": "1"},
            )
        if outcome == "existing" and stored.fingerprint != job.fingerprint:
            raise Conflict("Idempotency-Key was used before with another request")
        return stored, outcome == "created"

    async def get(self, job_id: str, owner: str | None) -> Job:
        """The job; 404 when unknown, expired or another owner's (``owner`` None: any)."""
        job = await self.store.job_get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise NotFound(f"no job {job_id!r}")
        return job

    async def list(
        self,
        owner: str | None,
        *,
        status: JobStatus | None = None,
        model: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first, and the cursor of the next page (``owner`` None: everyone's)."""
        return await self.store.job_list(
            owner=owner, status=status, model=model, batch_id=batch_id, limit=limit, cursor=cursor
        )

    async def cancel(self, job_id: str, owner: str | None) -> Job:
        """Cancel a queued job; 404 as :meth:`get`, 409 when it is running or done."""
        job = await self.get(job_id, owner)
        if job.status != "queued":
            raise Conflict(f"job {job_id!r} is {job.status}: only a queued job can be cancelled")
        after = await self.store.job_cancel(job_id, time.time(), self.config().result_ttl)
        if after is None:
            raise NotFound(f"no job {job_id!r}")
        if after.status != "cancelled":
            raise Conflict(f"job {job_id!r} is {after.status}: only a queued job can be cancelled")
        if self.metrics is not None:
            self.metrics.outcomes.labels(self.metrics.model(after.model), "cancelled").inc()
        await self.notify(after)
        return after

    async def notify(self, job: Job) -> None:
        """Hand a done job's event to the webhook sink (a failure is logged, not raised: the
        job is done either way)."""
        event = EVENTS.get(job.status)
        if job.callback_url is None or event is None:
            return
        try:
            await self.sink.enqueue(job.owner, job.callback_url, event, view(job, parsed=True))
        except GatewayError as exc:
            logger.warning("job %s: webhook not queued: %s", job.id, exc.message)
