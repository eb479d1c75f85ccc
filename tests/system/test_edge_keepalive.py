"""Keep-alive on raw sockets against a real ``gateway serve`` (the gateway's protocol over
uvicorn's): pipelined requests answered in order, HEAD without a body, ``Connection: close``
and HTTP/1.0 closed after the answer, and a bad inference body answered in the v2 shape on a
connection that serves on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.system.serving import Served, gateway_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with gateway_serve(tmp_path_factory.mktemp("keepalive")) as served:
        yield served


class Reader:
    """HTTP/1.1 responses read off one socket, by Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed before a response head: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("HTTP/1.1 "), f"not a status line: {status_line!r}"
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"{name} twice in {head!r}"
            headers[name.lower()] = value.strip()
        length = 0 if head_only else int(headers["content-length"])
        while len(self.buffer) < length:
            assert self._fill(), "closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (and sent nothing more)."""
        self.sock.settimeout(5)
        return not self._fill() and not self.buffer


def _connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=10)


def test_pipelined_requests_are_answered_in_order_on_one_connection(served: Served) -> None:
    requests = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\n\r\n"
        b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\nX-Request-ID: second\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: third\r\n\r\n"
    )
    with _connect(served) as sock:
        sock.sendall(requests)
        reader = Reader(sock)
        answers = [reader.response() for _ in range(3)]
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # still open: kept alive
        status, headers, _ = reader.response()
    assert [(s, h["x-request-id"]) for s, h, _ in answers] == [
        (200, "first"),
        (404, "second"),
        (200, "third"),
    ]
    assert "connection" not in answers[0][1]
    error = orjson.loads(answers[1][2])
    assert isinstance(error["error"], str)  # the KServe v2 shape
    assert status == 200
    assert "date" in headers


def test_head_has_the_length_of_get_and_no_body(served: Served) -> None:
    with _connect(served) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _, got, body = reader.response()
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headed, _ = reader.response(head_only=True)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        after = reader.response()  # no stray body bytes between the two
    assert status == 200
    assert headed["content-length"] == got["content-length"] == str(len(body))
    assert after[0] == 200
    assert after[2] == body


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", id="close"),
        pytest.param(b"GET /healthz HTTP/1.0\r\n\r\n", id="http-1.0"),
    ],
)
def test_a_connection_not_kept_alive_is_answered_and_closed(
    served: Served, request_head: bytes
) -> None:
    with _connect(served) as sock:
        reader = Reader(sock)
        sock.sendall(request_head)
        status, headers, _ = reader.response()
        assert reader.closed()
    assert status == 200
    assert headers["connection"] == "close"


def test_a_bad_inference_body_gets_a_400_and_the_connection_serves_on(served: Served) -> None:
    body = b'{"inputs": [{"name": "x"'
    request = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with _connect(served) as sock:
        reader = Reader(sock)
        sock.sendall(request)
        status, headers, answer = reader.response()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        again = reader.response()
    assert status in (400, 404)  # 404: no model m; either way in the v2 shape, one write
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(answer)
    assert isinstance(orjson.loads(answer)["error"], str)
    assert again[0] == 200


DEAD_MODEL = (
    "backends:\n  none: {kind: kserve, urls: ['http://127.0.0.1:9'], timeout: 2s}\n"
    "models:\n  m: {versions: {'1': {backend: none, name: m}}}\n"
)


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The interim ``100 Continue`` leaves as soon as the endpoint reads the body (it is not
    held back for the answer, which needs that body), then the answer follows on the same
    connection."""
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}'
    head = (
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    folder = tmp_path_factory.mktemp("continue")
    with gateway_serve(folder, routes=DEAD_MODEL) as served, _connect(served) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        continued, _, rest = interim.partition(b"\r\n\r\n")
        sock.sendall(body)
        reader = Reader(sock)
        reader.buffer = rest
        status, headers, answer = reader.response()
    assert continued == b"HTTP/1.1 100 Continue"
    assert status >= 400  # the backend is down: the v2 error shape, after the body was read
    assert headers["content-type"] == "application/json"
    assert isinstance(orjson.loads(answer)["error"], str)
