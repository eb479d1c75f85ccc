"""The batcher of one route table: which versions batch, each call admitted (validated, keyed)
or sent alone, and each batch sent through the rest of the chain and fanned back out.

A batch is sent as one :class:`~gateway.call.Call` through the chain's next step, so it goes
through the backend's pool like any call (P2C, health, retries, the circuit breaker,
metrics). Its upstream time, retries and replica are added to each member's own timing (the
access line and ``Server-Timing``); each member's call records the batch's rows in
``call.batch``. A failed batch fails each member with the backend's error (a copy each).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from gateway.backends.live import Resolved
from gateway.batching.config import BatchingSpec
from gateway.batching.join import DEFAULT_SIGNATURES, join, join_key, rows, split
from gateway.batching.metrics import BatchMetrics
from gateway.batching.queue import Member, VersionQueue
from gateway.call import Call, Next, Reply
from gateway.codecs.tensors import check_inputs
from gateway.errors import BadGateway, GatewayError, InternalError, Unavailable
from gateway.telemetry.timing import CURRENT_TIMING, Timing

logger = logging.getLogger("gateway.batching")
VersionKey = tuple[str, str]  # (model, version): public names


class Batcher:
    """The batch queues of one route table's batching versions, made on first use."""

    def __init__(
        self, specs: Mapping[VersionKey, BatchingSpec], metrics: BatchMetrics | None = None
    ) -> None:
        self.specs = specs
        self.metrics = metrics
        self.queues: dict[VersionKey, VersionQueue] = {}

    async def run(self, call: Call, call_next: Next) -> Reply:
        """``call`` through its version's batch queue, or on its own when it cannot join."""
        resolved = call.resolved
        spec = self.specs.get((resolved.model, resolved.version)) if resolved else None
        if resolved is None or spec is None:
            return await call_next(call)
        member = await _admit(call, call_next, resolved, spec)
        if member is None:
            return await call_next(call)
        reply = None
        try:
            reply = await self._queue(resolved, spec).submit(member)
        finally:
            _account(member.timing)
        return reply

    def _queue(self, resolved: Resolved, spec: BatchingSpec) -> VersionQueue:
        key = (resolved.model, resolved.version)
        queue = self.queues.get(key)
        if queue is None:
            pool, target = resolved.backend.pool, resolved.target.key

            def slots() -> int:
                now = time.monotonic()
                available = sum(1 for r in pool.replicas if r.available(target, now))
                return spec.max_in_flight_per_replica * max(1, available)

            bound = self.metrics.bind(*key) if self.metrics is not None else None
            queue = self.queues[key] = VersionQueue(spec, slots, self.send, bound)
        return queue

    async def send(self, members: list[Member]) -> None:
        """Send one batch (in its own task) and settle every member's future."""
        first = members[0]
        timing = Timing()
        CURRENT_TIMING.set(timing)  # this task's own context: the batch's upstream figures
        for member in members:
            member.timing = timing
        try:
            if len(members) == 1:
                replies = [await first.call_next(first.call)]  # as it came (a v2 body untouched)
            else:
                replies = await _send_joined(members)
        except GatewayError as exc:
            for member in members:
                _settle_error(member, _copy(exc))
        except Exception:
            logger.exception("a batch failed", extra={"request_id": first.call.request_id})
            for member in members:
                _settle_error(member, InternalError("internal error"))
        except BaseException:  # cancelled (the worker is stopping): nobody waits forever
            for member in members:
                _settle_error(member, Unavailable("the gateway is shutting down"))
            raise
        else:
            for member, reply in zip(members, replies, strict=True):
                if not member.future.done():
                    member.future.set_result(reply)


async def _send_joined(members: list[Member]) -> list[Reply]:
    first = members[0].call
    batch = Call(
        "infer",
        first.request_id,
        first.headers,
        path=first.path,
        scheme=first.scheme,
        model=first.model,
        pin=first.pin,
        request=join([m.request for m in members]),
        caller=first.caller,
        resolved=first.resolved,
        deadline=first.deadline,
    )
    reply = await members[0].call_next(batch)
    response = reply.tensors()
    if reply.status != 200 or response is None:
        raise BadGateway("the model server's answer to a batch holds no tensors")
    parts = split(response, [m.rows for m in members])
    return [Reply(response=part, headers=list(reply.headers)) for part in parts]


async def _admit(
    call: Call, call_next: Next, resolved: Resolved, spec: BatchingSpec
) -> Member | None:
    """The call as a batch member, validated on its own (a malformed request fails alone, 4xx,
    before it joins); None when it cannot join and goes alone."""
    request = await call.inference()
    if request.signature_name not in DEFAULT_SIGNATURES:
        return None  # another signature's inputs are the server's to check: never joined
    signature = await resolved.backend.signature(resolved.target)
    check_inputs(request, signature)  # 422 for this call only; fits v1's untyped values
    if signature is not None and any(m.shape and m.shape[0] != -1 for m in signature.inputs):
        return None  # the model takes a fixed first dimension: nothing to join along
    key = join_key(request)
    if key is None:
        return None
    size = rows(request)
    if size > spec.max_batch_size:
        return None
    deadline = time.monotonic() + resolved.backend.spec.overall_deadline
    if call.deadline is not None:
        deadline = min(deadline, call.deadline)
    future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
    return Member(call, call_next, request, size, key, deadline, future)


def _account(batch: Timing | None) -> None:
    """Add the batch's upstream figures to this call's own timing."""
    timing = CURRENT_TIMING.get()
    if batch is None or timing is None or timing is batch:
        return
    timing.upstream += batch.upstream
    timing.retries += batch.retries
    timing.backend, timing.replica = batch.backend, batch.replica


def _settle_error(member: Member, exc: GatewayError) -> None:
    if not member.future.done():
        member.future.set_exception(exc)


def _copy(exc: GatewayError) -> GatewayError:
    """Each member raises its own copy: steps on the way back add headers to the error."""
    clone = type(exc).__new__(type(exc), *exc.args)
    clone.__dict__.update(exc.__dict__)
    clone.headers = dict(exc.headers)
    clone.__cause__ = exc.__cause__
    return clone
