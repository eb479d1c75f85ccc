"""One model version's batch queue: members grouped by join key, groups sent as batches.

A group takes members until its rows reach ``max_batch_size`` (then it is full) or
``max_delay`` has passed since its first member (then it is due). Full and due groups wait,
in order, for an in-flight slot (``max_in_flight_per_replica`` × the replicas available for
the version); a due group still takes members while it waits, up to ``max_batch_size``, so a
busy backend gets fuller batches. At most ``max_queue`` members wait (beyond, 503
``overloaded``). A member whose deadline passes while it waits is taken out and answered 504;
it is never sent. A member whose caller goes away (cancelled) is taken out too.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from gateway.batching.config import BatchingSpec
from gateway.batching.metrics import BoundBatchMetrics
from gateway.call import Call, Next, Reply
from gateway.codecs.tensors import InferenceRequest
from gateway.errors import Overloaded, UpstreamTimeout
from gateway.telemetry.timing import Timing

RETRY_AFTER = "1"  # seconds: a full queue drains within a few batches


@dataclass(eq=False, slots=True)
class Member:
    """One call waiting for its batch, and what its batch brings back."""

    call: Call
    call_next: Next
    request: InferenceRequest
    rows: int
    key: Hashable
    deadline: float | None  # time.monotonic() seconds; None: none
    future: asyncio.Future[Reply]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    enqueued: float = field(default_factory=time.perf_counter)
    group: Group | None = None  # the group it waits in; None once sent (or taken out)
    timer: asyncio.TimerHandle | None = None  # its deadline
    timing: Timing | None = None  # its batch's upstream time, retries, backend, replica


@dataclass(eq=False, slots=True)
class Group:
    key: Hashable
    members: list[Member] = field(default_factory=list)
    rows: int = 0
    ready: bool = False  # full or due: waiting for an in-flight slot
    timer: asyncio.TimerHandle | None = None  # max_delay


Send = Callable[[list[Member]], Awaitable[None]]
"""Sends one batch and settles every member's future (``batcher.Batcher.send``)."""


class VersionQueue:
    """The batch queue of one model version (one per version, never one global queue)."""

    def __init__(
        self,
        spec: BatchingSpec,
        slots: Callable[[], int],
        send: Send,
        metrics: BoundBatchMetrics | None,
    ) -> None:
        self.spec = spec
        self.slots = slots  # in-flight batches allowed now
        self.send = send
        self.metrics = metrics
        self.open: dict[Hashable, Group] = {}  # the group taking members, per join key
        self.ready: deque[Group] = deque()
        self.waiting = 0  # members queued, not yet sent
        self.in_flight = 0  # batches sent, not yet answered
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, member: Member) -> Reply:
        """Queue ``member`` and wait for its share of its batch's reply."""
        spec = self.spec
        if self.waiting >= spec.max_queue:
            if self.metrics is not None:
                self.metrics.full.inc()
            raise Overloaded(
                f"the batch queue of model {member.call.model!r} is full "
                f"({spec.max_queue} requests waiting)",
                headers={"Retry-After": RETRY_AFTER},
            )
        loop = asyncio.get_running_loop()
        group = self.open.get(member.key)
        if group is not None and group.rows + member.rows > spec.max_batch_size:
            self._close(group)
            group = None
        if group is None:
            group = self.open[member.key] = Group(member.key)
            group.timer = loop.call_later(spec.max_delay, self._due, group)
        group.members.append(member)
        group.rows += member.rows
        member.group = group
        self.waiting += 1
        if member.deadline is not None:
            at = loop.time() + (member.deadline - time.monotonic())
            member.timer = loop.call_at(at, self._expire, member)
        if group.rows >= spec.max_batch_size:
            self._close(group)
        self._pump()
        try:
            return await member.future
        except asyncio.CancelledError:
            self._withdraw(member)  # the caller went away (or its gRPC deadline passed)
            raise
        finally:
            if member.timer is not None:
                member.timer.cancel()

    def _close(self, group: Group) -> None:
        """A full group takes no more members."""
        if self.open.get(group.key) is group:
            del self.open[group.key]
        self._due(group)

    def _due(self, group: Group) -> None:
        if group.ready:
            return
        group.ready = True
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        self.ready.append(group)
        self._pump()

    def _expire(self, member: Member) -> None:
        """The member's deadline passed: if it still waits, it is answered 504, never sent."""
        if member.group is None or member.future.done():
            return
        self._withdraw(member)
        if self.metrics is not None:
            self.metrics.deadline.inc()
        member.future.set_exception(
            UpstreamTimeout("the call's deadline passed while it waited for a batch")
        )

    def _withdraw(self, member: Member) -> None:
        group = member.group
        if group is None:
            return  # sent already
        member.group = None
        group.members.remove(member)
        group.rows -= member.rows
        self.waiting -= 1
        if not group.members and not group.ready:
            if group.timer is not None:
                group.timer.cancel()
            if self.open.get(group.key) is group:
                del self.open[group.key]

    def _pump(self) -> None:
        """Send ready groups while in-flight slots are free."""
        while self.ready and self.in_flight < self.slots():
            group = self.ready.popleft()
            if self.open.get(group.key) is group:
                del self.open[group.key]
            members = group.members
            if not members:
                continue  # every member left while it waited
            for member in members:
                member.group = None
            self.waiting -= len(members)
            self.in_flight += 1
            # In the first member's context: its trace is the batch's parent.
            task = asyncio.get_running_loop().create_task(
                self._run(members), context=members[0].context
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, members: list[Member]) -> None:
        total = sum(m.rows for m in members)
        now = time.perf_counter()
        metrics = self.metrics
        for member in members:
            member.call.batch = total
            if metrics is not None:
                metrics.wait.observe(now - member.enqueued)
        if metrics is not None:
            metrics.size.observe(total)
        try:
            await self.send(members)
        finally:
            self.in_flight -= 1
            self._pump()
