"""The direct lane's answer bytes (``Cycle.deliver``): the server's default header lines, joined
once per list of them and again when the server replaces the list (its ``Date``, every
second), and uvicorn's refusal of a header value with a control byte."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from gateway.edge.answer import Answer
from gateway.edge.direct import Cycle, DirectLane
from gateway.edge.http import HTTPEdge, Router
from gateway.edge.one_write import OneWrite
from tests.unit.edge.test_one_write import RecordingTransport

pytestmark = pytest.mark.anyio

DATE = [(b"date", b"Mon, 07 Dec 2026 09:55:10 GMT")]
ADDED = [(b"x-request-id", b"r1")]


@contextlib.asynccontextmanager
async def opener() -> AsyncIterator[Router]:
    raise AssertionError("not opened here")
    yield


def noop() -> None:
    pass


def lane() -> DirectLane:
    return DirectLane(HTTPEdge(opener), None)


def test_the_lines_follow_the_servers_list() -> None:
    direct = lane()
    first = [*DATE, (b"x-extra", b"1")]
    lines = b"date: Mon, 07 Dec 2026 09:55:10 GMT\r\nx-extra: 1\r\n"
    assert direct.default_lines(first) == lines
    assert direct.default_lines(first) == lines
    second = [(b"date", b"Mon, 07 Dec 2026 09:55:11 GMT")]  # a new list: the next second
    assert direct.default_lines(second) == b"date: Mon, 07 Dec 2026 09:55:11 GMT\r\n"
    assert direct.default_lines([]) == b""


async def answer_bytes(answer: Answer, defaults: list[tuple[bytes, bytes]]) -> bytes:
    transport = RecordingTransport()
    writer = OneWrite(transport, asyncio.get_running_loop())
    logger = logging.getLogger("test")
    flow = FlowControl(transport)
    scope: Any = {}
    event = asyncio.Event()
    cycle = Cycle(scope, writer, flow, logger, logger, False, defaults, event, False, True, noop)
    cycle.lane = lane()
    await cycle.deliver(answer, ADDED)
    (written,) = transport.writes
    return written


async def test_an_answer_is_written_with_the_defaults_its_headers_and_the_added_ones() -> None:
    answer = Answer(b"{}", headers=[(b"vary", b"a\tb")])  # a tab is a valid value byte
    assert await answer_bytes(answer, DATE) == (
        b"HTTP/1.1 200 OK\r\ndate: Mon, 07 Dec 2026 09:55:10 GMT\r\ncontent-length: 2\r\n"
        b"content-type: application/json\r\nvary: a\tb\r\nx-request-id: r1\r\n\r\n{}"
    )


@pytest.mark.parametrize("value", [b"a\r\nset-cookie: x", b"\x00", b"ok\x7f"])
async def test_a_header_value_with_a_control_byte_is_refused(value: bytes) -> None:
    answer = Answer(b"{}", headers=[(b"x-ok", b"fine"), (b"x-bad", value)])
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        await answer_bytes(answer, DATE)
