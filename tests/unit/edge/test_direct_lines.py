"""The direct lane's default header lines: joined once per list of the server's default
headers, and joined again when the server replaces the list (its ``Date``, every second)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.edge.direct import DirectLane
from gateway.edge.http import HTTPEdge, Router


@contextlib.asynccontextmanager
async def opener() -> AsyncIterator[Router]:
    raise AssertionError("not opened here")
    yield


def test_the_lines_follow_the_servers_list() -> None:
    lane = DirectLane(HTTPEdge(opener), None)
    first = [(b"date", b"Mon, 07 Dec 2026 09:55:10 GMT"), (b"x-extra", b"1")]
    assert lane.default_lines(first) == (b"date: Mon, 07 Dec 2026 09:55:10 GMT\r\nx-extra: 1\r\n")
    assert lane.default_lines(first) == b"date: Mon, 07 Dec 2026 09:55:10 GMT\r\nx-extra: 1\r\n"
    second = [(b"date", b"Mon, 07 Dec 2026 09:55:11 GMT")]  # a new list: the next second
    assert lane.default_lines(second) == b"date: Mon, 07 Dec 2026 09:55:11 GMT\r\n"
    assert lane.default_lines([]) == b""
