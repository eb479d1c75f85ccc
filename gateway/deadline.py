"""A deadline on the current task: one timer that cancels it when it fires, as
``asyncio.timeout`` does (without its two coroutines and its state machine per use). Shared by
the backends' request deadline and the limit store's timeout."""

from __future__ import annotations

import asyncio


class Deadline:
    """A deadline ``seconds`` from now on the current task. The owner catches
    ``CancelledError`` and asks :meth:`passed`; :meth:`end` always, when the work is over."""

    __slots__ = ("fired", "task", "timer")

    def __init__(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task")
        self.task = task
        self.fired = False
        self.timer = loop.call_later(seconds, self._fire)

    def _fire(self) -> None:
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
        self.timer.cancel()
        if self.fired:  # fired while the request ended another way: withdraw its cancellation
            self.passed()
