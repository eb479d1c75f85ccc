"""Deadlines on the current task: a timer that cancels it when it fires, as ``asyncio.timeout``
does (without its two coroutines and its state machine per use). Shared by the backends'
request deadline and the limit store's timeout, each always of one length: deadlines of one
length fall due in the order they were set, so :class:`Deadlines` serves them all from one
timer instead of arming and cancelling one per request."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Deadline:
    """One deadline of :class:`Deadlines` on the task that set it. The owner catches
    ``CancelledError`` and asks :meth:`passed`; :meth:`end` always, when the work is over."""

    __slots__ = ("due", "ended", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], due: float) -> None:
        self.task = task
        self.due = due
        self.fired = False
        self.ended = False

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

    def end(self) -> None:
        self.ended = True
        if self.fired:  # fired while the work ended another way: withdraw its cancellation
            self.passed()
        del self.task  # an ended deadline waiting in the queue holds no finished task


class Deadlines:
    """Deadlines of one length, ``seconds`` after each is set, on one timer armed for the
    oldest one still running. Ended ones leave the queue when a new one finds them at its head
    or the timer passes them: the queue holds the deadlines running and those ended after the
    oldest running one (at most ``seconds``' worth, a few bytes each)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._queue: deque[Deadline] = deque()
        self._armed: asyncio.AbstractEventLoop | None = None  # the loop the timer is on

    def __len__(self) -> int:
        """The deadlines queued: those running, and those ended behind one still running."""
        return len(self._queue)

    def start(self) -> Deadline:
        """A deadline on the current task."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task")
        deadline = Deadline(task, loop.time() + self.seconds)
        queue = self._queue
        if self._armed is not loop:
            if self._armed is not None:  # another loop's (closed since): not ours to cancel
                queue.clear()
            self._armed = loop
            loop.call_at(deadline.due, self._fire, loop)
        while queue and queue[0].ended:
            queue.popleft()
        queue.append(deadline)
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
