"""A request body read from ``receive`` (either lane's): whole, in chunks, inflated, bounded,
and a client that leaves."""

from __future__ import annotations

import gzip
from collections.abc import Sequence

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from gateway.edge.body import HTTPPayload
from gateway.errors import PayloadTooLarge
from gateway.headers import Headers

pytestmark = pytest.mark.anyio


def receiving(messages: Sequence[Message]) -> tuple[list[int], Receive]:
    given = list(messages)
    calls: list[int] = []

    async def receive() -> Message:
        calls.append(1)
        return given.pop(0)

    return calls, receive


def chunks(*parts: bytes) -> list[Message]:
    last = len(parts) - 1
    return [{"type": "http.request", "body": p, "more_body": i < last} for i, p in enumerate(parts)]


@pytest.mark.parametrize(
    ("messages", "headers", "expected"),
    [
        (chunks(b"abc"), [(b"content-length", b"3")], b"abc"),
        (chunks(b"ab", b"", b"c"), [], b"abc"),
        (chunks(gzip.compress(b"abc")), [(b"content-encoding", b"gzip")], b"abc"),
    ],
)
async def test_the_body_is_read_once_and_kept(
    messages: list[Message], headers: list[tuple[bytes, bytes]], expected: bytes
) -> None:
    calls, receive = receiving(messages)
    payload = HTTPPayload(headers, receive, 100, inflate=True)
    assert await payload.read() == expected
    assert await payload.read() == expected
    assert len(calls) == len(messages)


@pytest.mark.parametrize(
    ("messages", "headers"),
    [
        (chunks(b"x" * 10), [(b"content-length", b"101")]),  # declared: nothing read
        (chunks(b"x" * 60, b"x" * 60), []),  # chunked, over while read
    ],
)
async def test_a_body_over_the_limit_is_a_413(
    messages: list[Message], headers: list[tuple[bytes, bytes]]
) -> None:
    calls, receive = receiving(messages)
    with pytest.raises(PayloadTooLarge):
        await HTTPPayload(headers, receive, 100).read()
    assert len(calls) == (0 if headers else 2)


async def test_a_client_that_leaves_mid_body_is_a_disconnect() -> None:
    messages = [*chunks(b"ab", b"c")[:1], {"type": "http.disconnect"}]
    _, receive = receiving(messages)
    with pytest.raises(ClientDisconnect):
        await HTTPPayload([], receive, 100).read()
    _, receive = receiving(messages)
    with pytest.raises(ClientDisconnect):
        async for _ in HTTPPayload([], receive, 100).stream():
            pass


async def test_a_stream_gives_the_chunks_as_they_came() -> None:
    _, receive = receiving(chunks(b"ab", b"", b"c"))
    got = [chunk async for chunk in HTTPPayload([], receive, 100).stream()]
    assert got == [b"ab", b"c"]


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"content-length", b"12")],
        [(b"content-length", b"x1")],
        [(b"content-length", b"3"), (b"content-length", b"7")],  # the last one, as the scan
        [(b"content-encoding", b"gzip")],
        [(b"content-encoding", b"gzip"), (b"host", b"h"), (b"content-encoding", b"br")],
        [(b"content-length", b"5"), (b"content-encoding", b"deflate"), (b"x-api-key", b"k")],
    ],
)
@pytest.mark.parametrize("inflate", [True, False])
def test_a_payload_from_the_headers_index_is_the_one_from_their_pairs(
    raw: list[tuple[bytes, bytes]], inflate: bool
) -> None:
    _, receive = receiving([])
    scanned = HTTPPayload(raw, receive, 100, inflate=inflate)
    indexed = HTTPPayload.of(Headers(raw), receive, 100, inflate=inflate)
    assert (indexed.length, indexed._encoding) == (scanned.length, scanned._encoding)
