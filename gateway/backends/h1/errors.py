"""The client's errors, sorted by what the caller may do about them.

H1Error                      base of everything below
├── ConnectFailed            no connection: the request never left (safe to try elsewhere)
│   ├── ConnectTimeout       the connect (TCP and TLS handshake) took too long
│   └── TLSHandshakeFailed   the TLS handshake failed (its ``ssl.SSLError`` is the cause)
├── ReadTimeout              no byte of the reply for ``read_timeout`` seconds
└── ExchangeFailed           the connection failed, or the reply is not HTTP/1.x, before
    │                        the reply's head was read: the request may have been processed
    ├── ClosedBeforeReply    the server closed the connection before any byte of a reply
    └── ReplyCutOff          the reply's head was read, its body was not read whole
"""

from __future__ import annotations


class H1Error(Exception):
    """Base of the client's errors."""


class ConnectFailed(H1Error):
    """No connection was made (refused, unreachable, a name that does not resolve)."""


class ConnectTimeout(ConnectFailed):
    """The connection was not made within the connect timeout."""


class TLSHandshakeFailed(ConnectFailed):
    """The TLS handshake failed; ``__cause__`` is the ``ssl.SSLError`` saying why."""


class ReadTimeout(H1Error):
    """No byte of the reply arrived for the read timeout (aiohttp's ``sock_read``)."""


class ExchangeFailed(H1Error):
    """The connection failed or the reply was malformed before its head was read whole."""


class ClosedBeforeReply(ExchangeFailed):
    """The server closed the connection after the request was written and before any byte of
    a reply: on a reused keep-alive connection, most likely the server closing it as idle."""


class ReplyCutOff(ExchangeFailed):
    """The reply's head was read but the connection failed (or the body was malformed) before
    the end of its body."""
