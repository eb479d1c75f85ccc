"""Deadlines of one length on one timer (the limit store's timeout): each cancels its own task
once due, ended ones never do, and the timer follows the loop it is used on."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadline import Deadline, Deadlines

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
    assert await asyncio.gather(_overrun(deadlines), _overrun(deadlines)) == [True, True]
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


async def test_a_single_deadline_as_before() -> None:
    async def overrun() -> bool:
        deadline = Deadline(0.01)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return deadline.passed()
        finally:
            deadline.end()
        return False

    assert await overrun()
