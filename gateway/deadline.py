"""A deadline on the current task: a timer that cancels it when it fires, as
``asyncio.timeout`` does (without its two coroutines and its state machine per use). Shared by
the backends' request deadline and the limit store's timeout; the latter, always of one length,
on :class:`Deadlines` (one timer for them all)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


def _task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a deadline needs a task")
    return task


class _Cancels:
    """What a deadline does to its task: cancel it, and tell whose cancellation it was."""

    __slots__ = ("fired", "task")

    task: asyncio.Task[Any]
    fired: bool

    def fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def passed(self) -> bool:
        """Whether the cancellation was this deadline's alone (none other is pending): then
        it is the deadline's to answer. The cancellation it asked is withdrawn either way."""
        if not self.fired:
            return False
        self.fired = False
        return self.task.uncancel() == 0


class Deadline(_Cancels):
    """A deadline ``seconds`` from now on the current task. The owner catches
    ``CancelledError`` and asks :meth:`passed`; :meth:`end` always, when the work is over."""

    __slots__ = ("timer",)

    def __init__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self.task = _task(loop)
        self.fired = False
        self.timer = loop.call_later(seconds, self.fire)

    def end(self) -> None:
        self.timer.cancel()
        if self.fired:  # fired while the work ended another way: withdraw its cancellation
            self.passed()


class Deadlines:
    """Deadlines of one length, ``seconds`` after each is set: they fall due in the order they
    were set, so one timer serves them all, armed for the oldest one still running, instead of
    a timer armed and cancelled per deadline (a limit store's take: one per request). Ended ones
    stay queued until the timer passes them (at most ``seconds``' worth)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._queue: deque[QueuedDeadline] = deque()
        self._armed: asyncio.AbstractEventLoop | None = None  # the loop the timer is on

    def start(self) -> QueuedDeadline:
        """A deadline on the current task, as :class:`Deadline`."""
        loop = asyncio.get_running_loop()
        deadline = QueuedDeadline(_task(loop), loop.time() + self.seconds)
        if self._armed is not loop:
            if self._armed is not None:  # another loop's (closed since): not ours to cancel
                self._queue.clear()
            self._armed = loop
            loop.call_at(deadline.due, self._fire, loop)
        self._queue.append(deadline)
        return deadline

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._armed is not loop:
            return  # a timer of a loop left behind
        queue, now = self._queue, loop.time()
        while queue and (queue[0].ended or queue[0].due <= now):
            deadline = queue.popleft()
            if not deadline.ended:
                deadline.fire()
        if queue:
            loop.call_at(queue[0].due, self._fire, loop)
        else:
            self._armed = None


class QueuedDeadline(_Cancels):
    """One deadline of :class:`Deadlines`: :meth:`passed` and :meth:`end` as :class:`Deadline`."""

    __slots__ = ("due", "ended")

    def __init__(self, task: asyncio.Task[Any], due: float) -> None:
        self.task = task
        self.fired = False
        self.due = due
        self.ended = False

    def end(self) -> None:
        self.ended = True
        if self.fired:  # as Deadline.end's
            self.passed()
