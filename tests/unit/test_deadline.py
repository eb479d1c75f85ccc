"""Deadlines of one length on one timer (the limit store's timeout, a backend's request
deadline): each cancels its own task once due, ended ones never do and leave the queue, and the
timer follows the loop it is used on."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadline import Deadlines

pytestmark = pytest.mark.anyio


async def _overrun(deadlines: Deadlines) -> bool:
    """Whether the deadline stopped work that would not end by itself."""
    deadline = deadlines.start()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        if deadline.passed():
            return True
        raise  # not the deadline's: the owner lets it through
    finally:
        deadline.end()
    return False


async def _quick(deadlines: Deadlines) -> str:
    deadline = deadlines.start()
    try:
        await asyncio.sleep(0)
        return "done"
    finally:
        deadline.end()


async def test_a_deadline_cancels_its_task_once_due() -> None:
    assert await _overrun(Deadlines(0.01))


async def test_ended_deadlines_do_not_cancel_and_later_ones_still_fire() -> None:
    deadlines = Deadlines(0.02)
    assert await _quick(deadlines) == "done"
    quick = [asyncio.create_task(_quick(deadlines)) for _ in range(5)]
    slow = asyncio.create_task(_overrun(deadlines))
    assert await asyncio.gather(*quick) == ["done"] * 5
    assert await slow
    # the timer is re-armed for a deadline set after the queue emptied
    assert await _overrun(deadlines)


async def test_each_deadline_cancels_only_its_own_task() -> None:
    deadlines = Deadlines(0.01)
    other = asyncio.Event()

    async def bystander() -> bool:
        await other.wait()
        return True

    waiting = asyncio.create_task(bystander())
    assert list(await asyncio.gather(_overrun(deadlines), _overrun(deadlines))) == [True, True]
    assert not waiting.done()
    other.set()
    assert await waiting


async def test_another_cancellation_is_not_the_deadlines() -> None:
    deadlines = Deadlines(30.0)
    task = asyncio.create_task(_overrun(deadlines))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_the_timer_follows_a_new_loop() -> None:
    deadlines = Deadlines(0.01)

    async def leave_one_pending() -> None:
        deadlines.start()  # never ended; its loop closes before it is due

    asyncio.run(leave_one_pending())
    assert asyncio.run(_overrun(deadlines))


async def test_ended_deadlines_do_not_pile_up_behind_a_long_timer() -> None:
    """A backend's deadline is a minute long: work that ends at once leaves the queue as the
    next deadline starts, not a minute later."""
    deadlines = Deadlines(60.0)
    for _ in range(1000):
        assert await _quick(deadlines) == "done"
    assert len(deadlines) == 1


async def test_one_running_deadline_keeps_only_what_ended_after_it() -> None:
    deadlines = Deadlines(60.0)
    started = asyncio.Event()

    async def slow() -> None:
        deadline = deadlines.start()
        started.set()
        try:
            await asyncio.sleep(0.05)
        finally:
            deadline.end()

    running = asyncio.create_task(slow())
    await started.wait()
    for _ in range(100):
        await _quick(deadlines)
    assert len(deadlines) == 101  # the running one, then those ended after it
    await running
    await _quick(deadlines)
    assert len(deadlines) == 1
