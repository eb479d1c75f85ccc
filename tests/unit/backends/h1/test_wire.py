"""The request head: Host, framing and the caller's headers, byte for byte."""

from __future__ import annotations

import pytest

from gateway.backends.h1.wire import Body, Heads, encode_head


def test_a_post_has_host_length_and_the_callers_headers_only() -> None:
    head = encode_head("POST", "/v2/x", "models:8000", {"Content-Type": "a/b"}, b"12345")
    assert head == (
        b"POST /v2/x HTTP/1.1\r\nContent-Type: a/b\r\nHost: models:8000\r\n"
        b"Content-Length: 5\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("method", "body", "length"),
    [
        ("GET", None, None),  # RFC 9110 8.6: not for a method that anticipates no content
        ("HEAD", None, None),
        ("DELETE", None, None),
        ("POST", None, "0"),
        ("PUT", None, "0"),
        ("GET", b"", "0"),  # a body given, even empty, is framed
        ("POST", bytearray(b"abc"), "3"),
        ("POST", memoryview(b"\x00" * 8).cast("d"), "8"),  # bytes, not items
    ],
)
def test_content_length_says_how_many_bytes_follow(
    method: str, body: bytes | bytearray | memoryview | None, length: str | None
) -> None:
    head = encode_head(method, "/", "h", None, body).decode()
    lengths = [line for line in head.split("\r\n") if line.lower().startswith("content-length")]
    assert lengths == ([f"Content-Length: {length}"] if length is not None else [])


def test_the_callers_host_wins_and_framing_is_the_clients() -> None:
    headers = [
        ("host", "models.internal"),
        ("Content-Length", "999"),
        ("Transfer-Encoding", "chunked"),
        ("X-A", "1"),
        ("X-A", "2"),
    ]
    head = encode_head("POST", "/", "127.0.0.1:1", headers, b"ab").decode()
    assert head.split("\r\n") == [
        "POST / HTTP/1.1",
        "host: models.internal",
        "X-A: 1",
        "X-A: 2",
        "Content-Length: 2",
        "",
        "",
    ]


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/", {"X-A": "1\r\nX-Injected: yes"}),
        ("/", {"X-A\r\nX-Injected": "yes"}),
        ("/", {"X-A": "a\nb"}),
        ("/ HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET /", None),
        ("/", {"X-A": "snowman \u2603"}),  # not Latin-1
    ],
)
def test_a_head_that_would_split_or_not_encode_is_refused(
    target: str, headers: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - UnicodeEncodeError is one too
        encode_head("GET", target, "h", headers, None)


def test_an_origins_heads_are_encode_head_whatever_changes_between_requests() -> None:
    """The start kept per method and target is reused only while the headers are the same
    (in the same order); the framing is each request's."""
    heads = Heads("models:8000")
    asked: list[tuple[str, str, dict[str, str] | list[tuple[str, str]] | None, Body | None]] = [
        ("POST", "/v2/x", {"A": "1", "B": "2"}, b"12345"),
        ("POST", "/v2/x", {"A": "1", "B": "2"}, b"1"),
        ("POST", "/v2/x", {"B": "2", "A": "1"}, b"1"),  # same items, another order
        ("POST", "/v2/x", {"A": "1", "B": "3"}, None),
        ("POST", "/v2/x", [("A", "1"), ("B", "3")], b""),
        ("POST", "/v2/x", [("host", "other")], b"ab"),
        ("GET", "/v2/x", [("host", "other")], None),
        ("POST", "/v2/y", None, None),
        ("POST", "/v2/y", {}, None),
        ("POST", "/v2/y", {}, b"abc"),
        ("PUT", "/v2/y", {"A": "1"}, bytearray(b"abcd")),
        ("POST", "/v2/y", {"A": "1"}, memoryview(b"abcdef")[1:]),
    ]
    for method, target, headers, body in asked:
        expected = encode_head(method, target, "models:8000", headers, body)
        assert heads.encode(method, target, headers, body) == expected


def test_an_origins_heads_refuse_what_encode_head_refuses() -> None:
    heads = Heads("h")
    heads.encode("GET", "/", {"X-A": "1"}, None)
    with pytest.raises(ValueError):  # noqa: PT011
        heads.encode("GET", "/", {"X-A": "1\r\nX-Injected: yes"}, None)
