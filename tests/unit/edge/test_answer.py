"""An answer's headers as both lanes send them: Starlette's order and rules, one value."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from gateway.edge.answer import Answer, response_of


@pytest.mark.parametrize(
    ("status", "media_type", "headers"),
    [
        (200, "application/json", []),
        (202, "application/json", [(b"location", b"/jobs/1")]),
        (200, "application/octet-stream", [(b"inference-header-content-length", b"12")]),
        (429, "application/json", [(b"retry-after", b"1")]),
        (204, None, []),
        (200, None, [(b"vary", b"Accept-Encoding")]),
    ],
)
def test_an_answer_has_the_headers_of_starlettes_response(
    status: int, media_type: str | None, headers: list[tuple[bytes, bytes]]
) -> None:
    body = b"" if status == 204 else b'{"x": 1}'
    starlette = Response(body, status_code=status, media_type=media_type)
    starlette.raw_headers += headers
    answer = Answer(body, status, media_type, list(headers))
    assert answer.head() == starlette.raw_headers
    lines: list[bytes] = []
    answer.head_lines(lines)
    own = answer.head()[: len(answer.head()) - len(headers)]
    assert lines == [name + b": " + value + b"\r\n" for name, value in own]
    response = response_of(answer)
    assert (response.status_code, response.body) == (status, body)
    assert response.raw_headers == starlette.raw_headers
