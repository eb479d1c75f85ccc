"""The direct lane: the hot inference routes served by the HTTP protocol itself.

A request whose route declares a ``direct`` endpoint (``POST /v2/models/{m}[/versions/{v}]/infer``
and ``POST /v1/models/{m}[/versions/{v}]:predict``) is not run as an ASGI application: no
``run_asgi``, no ASGI messages through uvicorn's ``send``, no Starlette ``Request`` or
``Response``. The protocol starts :func:`serve` instead of the cycle's ASGI task, at the same
moment (the head parsed, or the previous pipelined answer written), in the same task set (so a
graceful shutdown waits for it), and it runs :meth:`HTTPEdge.serve`, the very code of the ASGI
lane, with the route's direct endpoint: same request id, timing, span, chain, answer encoding,
error rendering and observer. The answer is written as status line, headers and body in one
``transport.write``.

What stays uvicorn's, because the lane keeps uvicorn's ``RequestResponseCycle`` as the state of
the request: the body is read through the cycle's ``receive`` (flow control: reading paused
above the high-water mark and while no one reads; ``100 Continue`` when the body is first
read; ``Content-Encoding`` and chunked bodies as in the ASGI lane: the same ``HTTPPayload``),
keep-alive and ``Connection: close`` and HTTP/1.0, pipelining (queued cycles start when the
previous answer is complete), a client that leaves (the cycle learns it from
``connection_lost``: 499 when the body was still being read), and ``shutdown`` (a cycle not yet
answered answers with ``Connection: close``).

Eligible: every request for such a route with the app being the gateway's :class:`HTTPEdge`
(behind uvicorn's ``ProxyHeadersMiddleware`` or not; any other wrapper, such as the message
logger at ``trace`` level, keeps every request on the ASGI lane), its ``direct`` flag on, and
the server not over ``limit_concurrency`` (uvicorn's 503 app). Nothing in the request's
headers makes it ineligible: ``Expect``, ``Transfer-Encoding``, ``Content-Encoding``,
``Prefer: respond-async`` and tracing all run the shared code.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn._types import HTTPScope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from gateway.edge.answer import Answer
from gateway.edge.http import HTTPEdge, Match
from gateway.edge.one_write import OneWrite

logger = logging.getLogger("uvicorn.error")


async def _keep_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the lane's copy of ``ProxyHeadersMiddleware``: the scope it rewrote is
    all the lane wants."""


class DirectLane:
    """The direct lane of one connection: the gateway's edge, and the proxy-headers rewrite
    uvicorn would have applied to the scope first (None: none)."""

    __slots__ = ("_default_lines", "_defaults", "edge", "proxy")

    def __init__(self, edge: HTTPEdge, proxy: ProxyHeadersMiddleware | None) -> None:
        self.edge = edge
        self.proxy = proxy
        # the server's default headers as header lines, for the list they were made from
        # (uvicorn replaces the list, its Date, each second)
        self._defaults: list[tuple[bytes, bytes]] | None = None
        self._default_lines = b""

    def default_lines(self, defaults: list[tuple[bytes, bytes]]) -> bytes:
        """``defaults`` (the server's default headers) as header lines, joined once per list."""
        if defaults is not self._defaults:
            self._default_lines = b"".join([n + b": " + v + b"\r\n" for n, v in defaults])
            self._defaults = defaults
        return self._default_lines

    def match(self, scope: Scope) -> Match | None:
        """The match of a request this lane serves (the edge's ``direct`` flag on, its router
        loaded, ``POST`` on a route with a direct endpoint), else None (the ASGI lane)."""
        edge = self.edge
        router = edge.router
        if not edge.direct or router is None or scope["method"] != "POST":
            return None
        return router.direct(scope["path"])

    async def serve(self, cycle: Cycle, match: Match) -> None:
        """The request of ``cycle`` answered, as ``cycle.run_asgi`` would have: an exception
        logged and answered 500 (or the connection closed, if the answer had started). The
        cycle's transport is the connection's :class:`OneWrite`."""
        scope: Any = cycle.scope
        receive: Any = cycle.receive_whole
        cycle.lane = self
        try:
            if self.proxy is not None:
                await self.proxy(scope, receive, cycle.send)
            # a bound method: the endpoint's answer delivered with no coroutine of its own
            await self.edge.serve(scope, receive, match, cycle.deliver, direct=True)
        except BaseException as exc:
            logger.error("Exception in the direct lane\n", exc_info=exc)
            if not cycle.response_started:
                await cycle.send_500_response()
            else:
                cycle.transport.close()
        else:
            if not cycle.response_started and not cycle.disconnected:
                logger.error("the direct lane returned without an answer")
                await cycle.send_500_response()
        finally:
            cycle.on_response = _nothing  # as run_asgi: no later callback into the protocol


def _nothing() -> None:
    pass


async def _receive(cycle: RequestResponseCycle) -> Any:
    """The cycle's ``receive``, without waiting on its event when the whole body is there and
    not yet read (nearly every request: one message), else uvicorn's own (``100 Continue``,
    a body still arriving, a client gone, a body already read)."""
    event = cycle.message_event
    if (
        cycle.more_body
        or cycle.waiting_for_100_continue
        or cycle.disconnected
        or cycle.response_complete
        or not event.is_set()
    ):
        return await cycle.receive()
    cycle.flow.resume_reading()
    event.clear()
    message = {"type": "http.request", "body": bytes(cycle.body), "more_body": False}
    cycle.body = bytearray()
    return message


def lane_of(app: object) -> DirectLane | None:
    """The direct lane for the app uvicorn loaded, or None when it is not the gateway's."""
    proxy = None
    while True:
        if isinstance(app, HTTPEdge):
            return DirectLane(app, proxy)
        if isinstance(app, ProxyHeadersMiddleware) and proxy is None:
            proxy = copy.copy(app)
            proxy.app = _keep_scope  # type: ignore[assignment]
            app = app.app
            continue
        return None


async def _deliver(
    cycle: Cycle, answered: Response | Answer, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int]:
    """Write ``answered`` and ``headers`` as uvicorn's ``send`` would, in one write to the
    cycle's :class:`OneWrite`, with its lane's default header lines; the status and body
    bytes. A client already gone is written nothing."""
    lane: Any = cycle.lane
    writer: Any = cycle.transport
    if not isinstance(answered, Answer):
        raise TypeError("a direct endpoint answers an Answer")
    status, body = answered.status, answered.body
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return status, len(body)
    content = [STATUS_LINE[status], lane.default_lines(cycle.default_headers)]
    answered.head_lines(content)
    closes = False
    extra = answered.headers
    if extra:
        invalid = HEADER_VALUE_RE.search
        for name, value in extra:
            if invalid(value):  # uvicorn's check, on the headers an endpoint chose
                raise RuntimeError("Invalid HTTP header value.")
            if name == b"connection":
                closes = closes or b"close" in [t.strip() for t in value.lower().split(b",")]
            content.extend((name, b": ", value, b"\r\n"))
    for name, value in headers:
        content.extend((name, b": ", value, b"\r\n"))
    if closes:
        cycle.keep_alive = False
    elif not cycle.keep_alive:
        content.append(b"connection: close\r\n")
    content.extend((b"\r\n", body))
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.access_log:
        scope: Any = cycle.scope
        cycle.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(scope),
            scope["method"],
            get_path_with_query_string(scope),
            scope["http_version"],
            status,
        )
    writer.write_now(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        writer.close()
    cycle.on_response()
    return status, len(body)


class Cycle(RequestResponseCycle):
    """uvicorn's request cycle (every request's, whichever lane serves it), built with
    positional arguments (a call with eleven keywords costs a third of its construction), with
    the direct lane's ``receive`` and ``deliver`` as methods (a bound method costs a fraction
    of a ``functools.partial``). ``lane``: the direct lane serving it, if one does."""

    def __init__(
        self,
        scope: HTTPScope,
        transport: asyncio.Transport | OneWrite,
        flow: FlowControl,
        logger: logging.Logger,
        access_logger: logging.Logger,
        access_log: bool,
        default_headers: list[tuple[bytes, bytes]],
        message_event: asyncio.Event,
        expect_100_continue: bool,
        keep_alive: bool,
        on_response: Callable[..., None],
    ) -> None:
        # uvicorn's RequestResponseCycle.__init__, copied
        self.scope = scope
        self.transport = transport  # type: ignore[assignment]
        self.flow = flow
        self.logger = logger
        self.access_logger = access_logger
        self.access_log = access_log
        self.default_headers = default_headers
        self.message_event = message_event
        self.on_response = on_response

        # Connection state
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue

        # Request state
        self.body = bytearray()
        self.more_body = True

        # Response state
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self.lane: DirectLane | None = None  # the gateway's: set by the lane that serves it

    receive_whole = _receive  # the direct lane's receive
    deliver = _deliver  # the direct lane's Deliver
