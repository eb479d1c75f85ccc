"""The HTTP/1.1 server under the edge: uvicorn's httptools protocol with the gateway's limits.

Everything here happens while a request's head is parsed, before any application code runs,
with bounded memory:

- the request line (its target) longer than ``max_request_line`` bytes: 414;
- more than ``max_headers`` header fields, or more than ``max_header_bytes`` of them: 431;
- a head not complete ``header_timeout`` seconds after its first byte (or after the connection
  was made, for a connection that never sends one): 408 (slowloris);
- anything llhttp cannot parse: 400.

Each of these is answered with the gateway's JSON error body (the endpoint's shape when the
path is known, else ``{"error": {"code", "message"}, "request_id"}``), ``Connection: close``,
and the connection is closed. The keep-alive idle timeout stays uvicorn's own.

The protocol also puts the ASGI TLS extension (``scope["extensions"]["tls"]``) into the scope
of each request on a TLS connection, and serves the hot inference routes in the direct lane
(``edge.direct``) rather than as an ASGI application. :class:`EdgeConfig` carries the options
to every worker process (uvicorn pickles its config into each one) and builds the TLS context
there.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

import httptools
import orjson
from uvicorn import Config
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from gateway.edge.direct import Cycle, lane_of
from gateway.edge.errors import shape_of
from gateway.edge.one_write import OneWrite
from gateway.edge.request_id import request_id_of
from gateway.edge.tls import TLSOptions, rotating_server_context, tls_extension
from gateway.settings import Settings

logger = logging.getLogger("gateway.edge")

PROTOCOL = "gateway.edge.server:GatewayProtocol"
"""The import string of the protocol (uvicorn's ``http=``), for every server of the gateway."""

_LINGER = 2.0  # seconds a refused connection is drained before it is closed
_HEAD_SLACK = 1024  # method, version, CRLFs and separators around the counted bytes


@dataclass(frozen=True, slots=True)
class EdgeOptions:
    """The per-connection limits of the HTTP edge, and its TLS (None: plain HTTP)."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_request_line: int = 8 * 1024
    header_timeout: float = 10.0
    tls: TLSOptions | None = None


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request over a limit."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with limits on the request head and JSON errors.

    Contract: a request reaches the application only if its request line, header count and
    header bytes are within the limits and its head arrived within the header timeout; else
    the connection gets one JSON error answer (414, 431, 408 or 400) and is closed. At most
    about ``max_request_line + max_header_bytes`` bytes of a head are ever buffered.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        edge = getattr(config, "edge", None)
        self.edge: EdgeOptions = edge if isinstance(edge, EdgeOptions) else EdgeOptions()
        self._head_bound = self.edge.max_request_line + self.edge.max_header_bytes + _HEAD_SLACK
        self._max_headers = self.edge.max_headers  # the limits, read per header field
        self._max_header_bytes = self.edge.max_header_bytes
        self._fresh_context = config.reset_contextvars
        self._reading: Literal["idle", "head", "body"] = "idle"
        self._head_bytes = 0  # raw bytes received while a head was read (memory bound)
        self._url_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused: _Refused | None = None
        self._tls: dict[str, object] | None = None
        self._writer: OneWrite | None = None  # what each response cycle writes to
        self._lane = lane_of(self.app)
        self._idle_since: float | None = None  # loop time the connection went idle; None: busy

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writer = OneWrite(transport, self.loop)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._tls = tls_extension(ssl_object)
        self._arm_head_timer()  # a connection that never sends a byte is a slowloris too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # answered and closing: ignore whatever else arrives
        if self._reading != "body":
            self._head_bytes += len(data)
        # uvicorn's data_received, inline (one frame fewer per read), but the keep-alive
        # timer is left armed: the connection is only marked busy (see _keep_alive_due)
        self._idle_since = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._refused is not None or self._reading != "head":
            return
        if self._head_bytes > self._head_bound:
            # One header still being read (httptools buffers it whole): stop here.
            self._refuse(_headers_too_large(self.edge))
        elif self._head_timer is None:
            # Armed only for a head still incomplete after a read: a head that arrives whole
            # (nearly every request) costs no timer.
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        """Every parse error, and every limit a callback raised, as a JSON answer."""
        refused = self._refused
        if refused is None:
            refused = _Refused(400, "bad_request", "invalid HTTP request")
        self._refused = None
        self._refuse(refused)

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # uvicorn's on_message_begin, inline
        self.url = b""
        self.expect_100_continue = False
        headers: list[tuple[bytes, bytes]] = []
        self.headers = headers
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": headers,
            "state": self.app_state.copy(),
        }
        self._reading = "head"
        self._url_bytes = self._header_count = self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        self.url += url  # uvicorn's on_url; kept even when over: its path picks the error's shape
        if self._url_bytes > self.edge.max_request_line:
            limit = self.edge.max_request_line
            self._raise(_Refused(414, "uri_too_long", f"request line over {limit} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        count = self._header_count = self._header_count + 1
        size = self._header_bytes = self._header_bytes + len(name) + len(value) + 4  # ": " CRLF
        if count > self._max_headers:
            limit = self._max_headers
            self._raise(_Refused(431, "headers_too_large", f"more than {limit} header fields"))
        if size > self._max_header_bytes:
            self._raise(_headers_too_large(self.edge))
        # uvicorn's on_header, inline (one call fewer per header field): lower-case names,
        # values without the trailing whitespace llhttp keeps (RFC 9110 5.5)
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._reading = "body"
        self._head_bytes = 0
        scope = self.scope
        if self._tls is not None:
            scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]
        # uvicorn's on_headers_complete, inline, its cycle writing to the connection's
        # OneWrite from the start
        parser = self.parser
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root_path = self.root_path
        if root_path:
            scope["path"] = root_path + path
            scope["raw_path"] = root_path.encode("ascii") + raw_path
        else:
            scope["path"] = path
            scope["raw_path"] = raw_path
        scope["query_string"] = parsed_url.query or b""
        limit = self.limit_concurrency
        app: ASGI3Application
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app
        existing_cycle = self.cycle
        writer = self._writer
        self.cycle = cycle = Cycle(
            scope,
            writer if writer is not None else self.transport,
            self.flow,
            self.logger,
            self.access_logger,
            self.access_log,
            self.server_state.default_headers,
            asyncio.Event(),
            self.expect_100_continue,
            http_version != "1.0" and parser.should_keep_alive(),
            self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(cycle, app)
        else:
            # pipelined: queued until the previous answer is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))

    def on_response_complete(self) -> None:
        writer = self._writer
        if writer is not None:
            writer.flush()  # a HEAD answer's head: nothing followed it
        # uvicorn's on_response_complete, inline
        self.server_state.total_requests += 1
        transport = self.transport
        if transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self._idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            # Idle from now: closed after timeout_keep_alive seconds without a byte, as uvicorn
            # does, but with one timer per connection re-armed when it falls due, not a timer
            # made and cancelled per request.
            loop = self.loop
            self._idle_since = loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = loop.call_later(
                    self.timeout_keep_alive, self._keep_alive_due
                )

    def _keep_alive_due(self) -> None:
        """The keep-alive timer fell due: close the connection if it has been idle for
        ``timeout_keep_alive`` seconds, else wait for the rest of that (idle since a later
        answer), or for the next answer to re-arm it (busy)."""
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None:
            return
        loop = self.loop
        left = idle_since + self.timeout_keep_alive - loop.time()
        if left > 0:
            self.timeout_keep_alive_task = loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def on_message_complete(self) -> None:
        self._reading = "idle"
        # uvicorn's on_message_complete, inline
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    # -- the direct lane -----------------------------------------------------------------------

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """Start the request of ``cycle``: in the direct lane when it takes it, else as
        uvicorn does (``app`` is not ours when uvicorn answers 503 over its concurrency
        limit)."""
        lane = self._lane
        writer = self._writer
        if lane is not None and writer is not None and app is self.app:
            match = lane.match(cycle.scope)  # type: ignore[arg-type]
            if match is not None:
                coro = lane.serve(cycle, match)  # type: ignore[arg-type]
                if self._fresh_context:
                    task = self.loop.create_task(coro, context=contextvars.Context())
                else:
                    task = self.loop.create_task(coro)
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
        super()._start_asgi_task(cycle, app)

    # -- answers -------------------------------------------------------------------------------

    def _raise(self, refused: _Refused) -> None:
        self._refused = refused  # httptools wraps what a callback raises: keep it here
        raise refused

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.edge.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._reading == "body":
            return
        timeout = self.edge.header_timeout
        self._refuse(_Refused(408, "request_timeout", f"request head not read in {timeout:g}s"))

    def _refuse(self, refused: _Refused) -> None:
        """Answer ``refused`` as JSON and close, unless a response is being written (a
        pipelined request): then the connection closes once that response is done."""
        self._refused = refused
        self._cancel_head_timer()
        if self._writer is not None:
            self._writer.flush()  # what a response cycle wrote goes first
        if self.transport.is_closing():
            return
        logger.info("refused a request: %s %s", refused.status, refused.message)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        headers = self.headers if self._reading == "head" and self.headers is not None else []
        request_id = request_id_of(headers)
        raw_url: bytes = getattr(self, "url", b"")
        path = raw_url.split(b"?", 1)[0].decode("latin-1") if raw_url else ""
        body: dict[str, object]
        if path and shape_of(path) == "protocol":
            body = {"error": refused.message, "code": refused.code}
        else:
            body = {"error": {"code": refused.code, "message": refused.message}}
        body["request_id"] = request_id
        payload = orjson.dumps(body)
        content = [STATUS_LINE[refused.status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(payload)).encode("ascii") + b"\r\n",
                b"x-request-id: " + request_id.encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                payload,
            ]
        )
        self.transport.write(b"".join(content))
        if self.transport.can_write_eof():
            # Lingering close: a client still sending its oversized head would get a reset
            # (and never read the answer) if the socket closed with its bytes unread. Send
            # FIN after the answer, discard what still comes, close when the client does or
            # after a short grace.
            self.transport.write_eof()
            self.loop.call_later(_LINGER, self.transport.close)
        else:
            self.transport.close()


def _headers_too_large(edge: EdgeOptions) -> _Refused:
    limit = edge.max_header_bytes
    return _Refused(431, "headers_too_large", f"header fields over {limit} bytes")


class EdgeConfig(Config):
    """uvicorn's Config with the gateway's :class:`EdgeOptions`: read by the protocol, and
    pickled with the config into each worker process, which builds its own TLS context
    (a context watching its certificate files) when it loads."""

    def __init__(self, app: Any, edge: EdgeOptions, **options: Any) -> None:
        self.edge = edge
        super().__init__(app, **{**options, "http": PROTOCOL})

    def load(self) -> None:
        super().load()
        if self.edge.tls is not None:
            self.ssl = rotating_server_context(self.edge.tls)


def edge_options(settings: Settings) -> EdgeOptions:
    tls = None
    if settings.tls_cert is not None:
        tls = TLSOptions(
            cert=str(settings.tls_cert),
            key=str(settings.tls_key or settings.tls_cert),
            client_ca=str(settings.tls_client_ca) if settings.tls_client_ca else None,
            client_cert=settings.tls_client_cert,
        )
    return EdgeOptions(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        max_request_line=settings.max_request_line,
        header_timeout=settings.header_timeout,
        tls=tls,
    )


def server_config(settings: Settings, app: Any, **options: Any) -> EdgeConfig:
    """The one place the gateway's uvicorn config is built (``gateway serve``, ``gateway
    demo``): :meth:`Settings.uvicorn_options`, then ``options`` over them, with the edge's
    limits and TLS from ``settings``."""
    edge = edge_options(settings)
    merged: dict[str, Any] = {**settings.uvicorn_options(), **options}
    if edge.tls is not None:
        # uvicorn loads (so checks) these at startup and says https; the context served
        # with is then the rotating one EdgeConfig.load builds.
        merged["ssl_certfile"], merged["ssl_keyfile"] = edge.tls.cert, edge.tls.key
    return EdgeConfig(app, edge, **merged)
