"""The direct lane's ``receive``: the messages uvicorn's cycle ``receive`` gives, for a body
that arrived whole, one still arriving, and a body already read."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.edge.direct import _receive
from tests.unit.edge.test_one_write import RecordingTransport

pytestmark = pytest.mark.anyio


class Reading(RecordingTransport):
    def __init__(self) -> None:
        super().__init__()
        self.resumed = 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        self.resumed += 1


def cycle_with(body: bytes, *, whole: bool, expect: bool = False) -> RequestResponseCycle:
    transport = Reading()
    flow = FlowControl(transport)
    flow.read_paused = True  # as while a pipelined request waits: receive resumes reading
    logger = logging.getLogger("test")
    cycle = RequestResponseCycle(
        scope={"method": "POST"},  # type: ignore[typeddict-item]
        transport=transport,
        flow=flow,
        logger=logger,
        access_logger=logger,
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=expect,
        keep_alive=True,
        on_response=lambda: None,
    )
    cycle.body += body
    cycle.more_body = not whole
    cycle.message_event.set()
    return cycle


async def both(**kwargs: Any) -> tuple[Any, Any, RequestResponseCycle, RequestResponseCycle]:
    ours, theirs = cycle_with(b"abc", **kwargs), cycle_with(b"abc", **kwargs)
    return await _receive(ours), await theirs.receive(), ours, theirs


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("expect", [True, False])
async def test_the_messages_are_uvicorns(whole: bool, expect: bool) -> None:
    mine, theirs, ours, uvicorns = await both(whole=whole, expect=expect)
    assert mine == theirs == {"type": "http.request", "body": b"abc", "more_body": not whole}
    for cycle in (ours, uvicorns):
        assert (bytes(cycle.body), cycle.message_event.is_set()) == (b"", False)
    transports: list[Any] = [ours.transport, uvicorns.transport]
    assert [t.writes for t in transports] == [[b"HTTP/1.1 100 Continue\r\n\r\n"] * expect] * 2
    assert [t.resumed for t in transports] == [1, 1]


async def test_a_body_already_read_waits_for_the_end_of_the_request() -> None:
    cycle = cycle_with(b"abc", whole=True)
    await _receive(cycle)
    second = asyncio.ensure_future(_receive(cycle))
    for _ in range(3):
        await asyncio.sleep(0)  # let it run: it waits on the event
    assert not second.done()
    cycle.disconnected = True
    cycle.message_event.set()
    assert await second == {"type": "http.disconnect"}
