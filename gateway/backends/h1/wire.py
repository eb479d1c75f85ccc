"""The head of a request, in bytes: the request line, ``Host``, the caller's headers and
``Content-Length``.

Framing is the client's: the caller's ``Content-Length`` and ``Transfer-Encoding`` are
replaced by the length of the body actually sent (a wrong length would desynchronise the
connection for every later request on it). The caller's ``Host`` wins over the URL's.
``Content-Length`` is sent whenever there is a body, and for a bodiless POST, PUT or PATCH
(``0``), never for a bodiless GET, HEAD, DELETE or OPTIONS (RFC 9110, section 8.6: a user
agent SHOULD NOT send it when the method does not anticipate content). No ``User-Agent``,
``Accept`` or ``Accept-Encoding`` unless the caller gives them.
"""

from __future__ import annotations

from collections.abc import Mapping

Body = bytes | bytearray | memoryview
Headers = Mapping[str, str] | list[tuple[str, str]]
_Items = tuple[tuple[str, str], ...]

_FRAMING = frozenset({"content-length", "transfer-encoding"})
_ANTICIPATE_CONTENT = frozenset({"POST", "PUT", "PATCH"})
_KEPT = 1024  # the request starts one origin keeps (model paths, by method)


def body_size(body: Body) -> int:
    return body.nbytes if isinstance(body, memoryview) else len(body)


def encode_head(
    method: str, target: str, host: str, headers: Headers | None, body: Body | None
) -> bytes:
    """The request line and header section, ending with the empty line.

    Raises ``ValueError`` for a header (or method, or target) that would break the message:
    a CR or LF in it (header injection), or a character outside Latin-1.
    """
    return encode_start(method, target, host, _items(headers)) + framing(method, body)


def encode_start(method: str, target: str, host: str, headers: _Items | None) -> bytes:
    """The head without its framing: the request line, the caller's headers and ``Host``
    (``ValueError`` as :func:`encode_head`)."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    own_host = False
    if headers:
        for name, value in headers:
            lower = name.lower()
            if lower in _FRAMING:
                continue
            if lower == "host":
                own_host = True
            lines.append(f"{name}: {value}\r\n")
    if not own_host:
        lines.append(f"Host: {host}\r\n")
    text = "".join(lines)
    # every line ends with exactly one CRLF: one more CR or LF came from a name or value
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("a CR or LF in the request line or a header would split the request")
    return text.encode("latin-1")


def framing(method: str, body: Body | None) -> bytes:
    """The end of the head: ``Content-Length`` (or none) and the empty line."""
    if body is not None:
        return b"Content-Length: %d\r\n\r\n" % body_size(body)
    if method in _ANTICIPATE_CONTENT:
        return b"Content-Length: 0\r\n\r\n"
    return b"\r\n"


class Heads:
    """The heads of one origin's requests: the start of each (:func:`encode_start`) kept per
    method and target, reused while the caller's headers are the same (compared by value,
    in order), so only the framing is made per request. A target's start is replaced when
    its headers change; at most ``_KEPT`` targets are kept (then they are all dropped)."""

    __slots__ = ("_starts", "host")

    def __init__(self, host: str) -> None:
        self.host = host
        self._starts: dict[tuple[str, str], tuple[_Items | None, bytes]] = {}

    def encode(self, method: str, target: str, headers: Headers | None, body: Body | None) -> bytes:
        """As :func:`encode_head` with this origin's ``Host``."""
        items = _items(headers)
        key = (method, target)
        starts = self._starts
        kept = starts.get(key)
        if kept is not None and kept[0] == items:
            start = kept[1]
        else:
            start = encode_start(method, target, self.host, items)
            if len(starts) >= _KEPT and key not in starts:
                starts.clear()
            starts[key] = (items, start)
        return start + framing(method, body)


def _items(headers: Headers | None) -> _Items | None:
    if not headers:
        return None
    if type(headers) is dict or isinstance(headers, Mapping):  # a dict: no ABC check
        return tuple(headers.items())
    return tuple(headers)
