"""One HTTP/1.1 connection to a server: one exchange at a time, its reply parsed by
``httptools`` (llhttp) as the bytes arrive, and handed over whole.

The reply ends where HTTP/1.1 says it ends (RFC 9112, section 6.3): by ``Content-Length``,
by the last chunk (chunk extensions and trailers are read and dropped), or when the server
closes the connection (no length given); a reply to HEAD, and a 204 or 304, has no body.
Interim 1xx replies are skipped. The connection is ``reusable`` only when its reply was read
whole and the server did not ask to close it (``Connection: close``, an HTTP/1.0 reply without
keep-alive). Bytes the server sends while no request is out make the connection unusable: it
is closed.

The read timeout is aiohttp's ``sock_read``: the longest quiet time, counted from when the
request was written. One timer per connection, not per exchange: a byte that arrives, or the
next request on a kept connection, only moves the deadline (``_last``); the timer, when it
fires early, is armed again for what is left, and with no exchange out it simply lapses. An
exchange whose deadline comes before the timer's (a shorter read timeout) arms it anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.backends.h1.errors import (
    ClosedBeforeReply,
    ExchangeFailed,
    H1Error,
    ReadTimeout,
    ReplyCutOff,
)


class Reply:
    """A whole reply: its status, its headers (case-insensitive, read-only) and its body.

    The head is kept as it came (``head``: the status line and the header lines, each ending
    with CRLF, as llhttp accepted them) and its fields read only when asked for: most replies
    are asked for one header at most (:meth:`header`)."""

    __slots__ = ("_headers", "body", "head", "status")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        self.body = body
        self.head = head
        self._headers: CIMultiDictProxy[str] | None = None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        headers = self._headers
        if headers is None:
            decoded = [
                (n.decode("latin-1"), v.decode("latin-1")) for n, v in head_fields(self.head)
            ]
            headers = self._headers = CIMultiDictProxy(CIMultiDict(decoded))
        return headers

    def header(self, name: bytes) -> str | None:
        """The first value of the header ``name`` (given in lower case), as ``headers.get``
        gives it, without reading the others: one search of the head in lower case (llhttp
        accepted it, so every line is ``name: value`` and ends with CRLF)."""
        head = self.head
        at = head.lower().find(b"\r\n" + name + b":")
        if at < 0:
            return None
        start = at + len(name) + 3
        return head[start : head.index(b"\r\n", start)].lstrip(b" \t").decode("latin-1")

    def __repr__(self) -> str:
        return (
            f"Reply({self.status}, {len(head_fields(self.head))} headers, {len(self.body)} bytes)"
        )


def final_head(chunks: list[bytes]) -> bytes:
    """The head of the final reply in the bytes an exchange received up to it (``chunks``,
    which llhttp accepted: interim 1xx replies, which have no body, may come first; body
    bytes may follow): its status line and header lines, the empty line left out."""
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    start = 0
    end = data.index(b"\r\n\r\n")
    while data[start + 9] == 0x31:  # "HTTP/1.1 1xx": an interim reply's head
        start = end + 4
        end = data.index(b"\r\n\r\n", start)
    return data[start : end + 2]


def head_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """A head's header fields, as llhttp reads them: the name as sent, the value without
    its leading whitespace (llhttp keeps the trailing)."""
    found: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[1:-1]:  # (the status line; the empty end)
        name, _, value = line.partition(b":")
        found.append((name, value.lstrip(b" \t")))
    return found


class _Unsolicited(Exception):
    """A message began while no request was out."""


class Connection(asyncio.Protocol):
    """The protocol of one connection (``connection_made`` ... ``connection_lost``).

    ``send`` writes a request and returns the future of its reply; the owner awaits it and
    then either keeps the connection (``reusable``) or ``close``-s it. ``lost`` is called once
    when the connection ends, whoever ended it.
    """

    __slots__ = (
        "_body",
        "_got_bytes",
        "_head",
        "_head_done",
        "_last",
        "_loop",
        "_lost",
        "_parser",
        "_skip_body",
        "_status",
        "_timeout",
        "_timer",
        "_timer_at",
        "_waiter",
        "closed",
        "reusable",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, lost: Callable[[Connection], None]) -> None:
        self._loop = loop
        self._lost = lost
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when ``_timer`` fires
        self._timeout = 0.0
        self._last = 0.0
        self._status = 0
        self._head: list[bytes] = []  # what the exchange received until its head was whole
        self._body: list[bytes] = []
        self._head_done = False
        self._got_bytes = False
        self._skip_body = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False

    # -- the owner's side --------------------------------------------------------------------

    def send(
        self, data: bytes | tuple[bytes, ...], read_timeout: float, head_only: bool = False
    ) -> asyncio.Future[Reply]:
        """Write one request (its head and body, in one write) and return its reply's future.
        ``head_only``: the request is a HEAD, whose reply has no body whatever it says."""
        transport = self.transport
        assert transport is not None, "not connected"
        assert self._waiter is None, "one exchange at a time"
        loop = self._loop
        waiter: asyncio.Future[Reply] = loop.create_future()
        if self.closed:  # ended between its checkout and now: nothing was sent
            waiter.set_exception(ClosedBeforeReply("the server closed the connection"))
            return waiter
        self._waiter = waiter
        self._head = []
        self._body = []
        self._head_done = self._got_bytes = self.reusable = False
        self._skip_body = head_only
        if isinstance(data, bytes):
            transport.write(data)
        else:
            transport.writelines(data)
        self._timeout = read_timeout
        self._last = now = loop.time()
        due = now + read_timeout
        timer = self._timer
        if timer is None or self._timer_at > due:
            if timer is not None:
                timer.cancel()
            self._timer_at = due
            self._timer = loop.call_at(due, self._on_timer)
        return waiter

    def close(self, exc: H1Error | None = None) -> None:
        """End the connection now (an abandoned exchange, a reply not read whole); an exchange
        still waiting fails with ``exc``."""
        waiter = self._waiter
        self._waiter = None
        self._cancel_timer()
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ExchangeFailed("the client closed the connection"))

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: this connection's framing is not to be trusted
            self.close()
            return
        self._got_bytes = True
        self._last = self._loop.time()
        if not self._head_done:
            self._head.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close(ExchangeFailed("the server switched protocols (an unasked upgrade)"))
        except httptools.HttpParserError as exc:
            if self._waiter is None:  # a second message after the reply
                self.close()
                return
            cause = exc.__context__ if isinstance(exc.__context__, H1Error) else None
            if cause is not None:
                self.close(cause)
            elif self._head_done:
                self.close(ReplyCutOff(f"malformed reply body: {exc}"))
            else:
                self.close(ExchangeFailed(f"malformed reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._cancel_timer()
        if self._waiter is not None:
            if exc is None and self._head_done and self._close_delimited():
                self._finish(False)
            elif not self._got_bytes:
                self.close(ClosedBeforeReply(f"the server closed the connection{_why(exc)}"))
            elif self._head_done:
                self.close(ReplyCutOff(f"the connection ended mid-body{_why(exc)}"))
            else:
                self.close(ExchangeFailed(f"the connection ended mid-head{_why(exc)}"))
        self._lost(self)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:
            raise _Unsolicited

    # No ``on_header``: llhttp would call it once per header line (a Python call each, about
    # a quarter of a microsecond); the head is read from its bytes instead (``final_head``),
    # and only the final reply's head (no interim reply's, no chunked body's trailers).

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return  # an interim reply: its end comes with on_message_complete
        self._status = status
        self._head_done = True
        if self._skip_body:
            self._finish(self._parser.should_keep_alive())
            # llhttp would now read the body the headers announce: the next reply needs a
            # parser of its own
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._head_done:
            if self._parser.get_status_code() == 101:
                raise ExchangeFailed("the server switched protocols (an unasked upgrade)")
            return  # 100 Continue, 103 Early Hints...: final_head skips their heads
        if self._waiter is not None:
            self._finish(self._parser.should_keep_alive())

    # -- the end of an exchange --------------------------------------------------------------

    def _finish(self, keep_alive: bool) -> None:
        waiter = self._waiter
        assert waiter is not None
        self._waiter = None  # the timer is kept for the next exchange: it lapses if none
        parts = self._body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.reusable = keep_alive and not self.closed
        head = final_head(self._head)
        self._head = []  # (those bytes may hold much of the body: an idle connection keeps none)
        if not waiter.done():
            waiter.set_result(Reply(self._status, head, body))

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None:
            return
        due = self._last + self._timeout
        if self._loop.time() < due:  # bytes came since: wait for what is left
            self._timer_at = due
            self._timer = self._loop.call_at(due, self._on_timer)
            return
        self.close(ReadTimeout(f"no data from the server for {self._timeout:g}s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close_delimited(self) -> bool:
        """Whether the reply's body runs to the end of the connection: neither a length nor
        chunked framing (a HEAD reply, a 204 or a 304 was finished at its head already)."""
        for name, value in head_fields(final_head(self._head)):
            lower = name.lower()
            if lower == b"content-length":
                return False
            if lower == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True


def _why(exc: BaseException | None) -> str:
    return f": {exc}" if exc is not None else ""
