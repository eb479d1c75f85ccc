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

_FRAMING = frozenset({"content-length", "transfer-encoding"})
_ANTICIPATE_CONTENT = frozenset({"POST", "PUT", "PATCH"})


def body_size(body: Body) -> int:
    return body.nbytes if isinstance(body, memoryview) else len(body)


def encode_head(
    method: str, target: str, host: str, headers: Headers | None, body: Body | None
) -> bytes:
    """The request line and header section, ending with the empty line.

    Raises ``ValueError`` for a header (or method, or target) that would break the message:
    a CR or LF in it (header injection), or a character outside Latin-1.
    """
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    own_host = False
    if headers:
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            lower = name.lower()
            if lower in _FRAMING:
                continue
            if lower == "host":
                own_host = True
            lines.append(f"{name}: {value}\r\n")
    if not own_host:
        lines.append(f"Host: {host}\r\n")
    if body is not None:
        lines.append(f"Content-Length: {body_size(body)}\r\n")
    elif method in _ANTICIPATE_CONTENT:
        lines.append("Content-Length: 0\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # every line ends with exactly one CRLF: one more CR or LF came from a name or value
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise ValueError("a CR or LF in the request line or a header would split the request")
    return text.encode("latin-1")
