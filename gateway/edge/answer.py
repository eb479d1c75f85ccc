"""A whole HTTP answer as a value: what an endpoint that both lanes serve returns.

The ASGI lane turns an :class:`Answer` into a Starlette ``Response`` (:func:`response_of`);
the direct lane (``edge.direct``) writes it as bytes, head and body in one write. Both put the
same headers in the same order: ``content-length``, ``content-type``, then :attr:`Answer.headers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.responses import Response

JSON = "application/json"


@dataclass(slots=True)
class Answer:
    """Status, body, media type and the headers after ``content-type`` (lower-case latin-1
    names, as ASGI's)."""

    body: bytes
    status: int = 200
    media_type: str | None = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def head(self) -> list[tuple[bytes, bytes]]:
        """Every header of the answer, in the order Starlette's ``Response`` gives them."""
        head: list[tuple[bytes, bytes]] = []
        if _sized(self.status):
            head.append((b"content-length", str(len(self.body)).encode("latin-1")))
        if self.media_type is not None:
            head.append((b"content-type", self.media_type.encode("latin-1")))
        head.extend(self.headers)
        return head

    def head_lines(self, content: list[bytes]) -> None:
        """:meth:`head`'s ``content-length`` and ``content-type`` appended to ``content`` as
        header lines (the direct lane's one write); :attr:`headers` are the caller's."""
        if _sized(self.status):
            content.append(b"content-length: %d\r\n" % len(self.body))
        media_type = self.media_type
        if media_type == JSON:
            content.append(_JSON_LINE)
        elif media_type is not None:
            content.append(b"content-type: " + media_type.encode("latin-1") + b"\r\n")


def _sized(status: int) -> bool:
    """Whether an answer with ``status`` says its ``content-length`` (Starlette's rule)."""
    return not (status < 200 or status in (204, 304))


_JSON_LINE = b"content-type: " + JSON.encode("latin-1") + b"\r\n"


def raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI and :class:`Answer` hold them (lower-case latin-1 names)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def response_of(answer: Answer) -> Response:
    """The answer as a Starlette ``Response`` (the ASGI lane)."""
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = answer.head()
    return response
