"""OneWrite: a response's head and body leave in one write, in order, and nothing is held past
the loop's next iteration or a close."""

from __future__ import annotations

import asyncio

import pytest

from gateway.edge.one_write import OneWrite

pytestmark = pytest.mark.anyio


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what was written, each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    transport = RecordingTransport()
    writer = OneWrite(transport, asyncio.get_running_loop())
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.writes == []
    writer.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)
    assert len(transport.writes) == 1  # nothing left to flush


async def test_a_head_alone_leaves_on_the_next_iteration_of_the_loop() -> None:
    """A streamed answer's head (or ``100 Continue``) never waits for bytes that come later."""
    transport = RecordingTransport()
    writer = OneWrite(transport, asyncio.get_running_loop())
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    writer.write(b"chunk 1")
    writer.write(b"chunk 2")
    writer.write(b"chunk 3")
    await asyncio.sleep(0)
    assert b"".join(transport.writes[1:]) == b"chunk 1chunk 2chunk 3"


async def test_close_sends_what_is_held_first() -> None:
    transport = RecordingTransport()
    writer = OneWrite(transport, asyncio.get_running_loop())
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    writer.close()
    assert transport.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]
    assert transport.closed
    assert writer.is_closing()


async def test_nothing_is_written_to_a_transport_closed_under_it() -> None:
    transport = RecordingTransport()
    writer = OneWrite(transport, asyncio.get_running_loop())
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.close()  # the connection was lost
    await asyncio.sleep(0)
    assert transport.writes == []
