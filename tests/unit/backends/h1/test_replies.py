"""What the client reads as a reply, against raw servers: every way HTTP/1.1 frames a body,
the replies that have none, interim replies, and what the server saw of the request."""

from __future__ import annotations

import os

import pytest

from gateway.backends.h1.client import Client
from gateway.backends.h1.errors import ExchangeFailed, ReplyCutOff
from tests.rawhttp import Peer, answering, reply
from tests.unit.backends.h1.support import Serve, call

pytestmark = pytest.mark.anyio


async def test_a_content_length_reply_and_the_request_the_server_saw(
    client: Client, serve: Serve
) -> None:
    answer = reply(201, b'{"a":1}', [("Content-Length", "7"), ("X-Model", "m1")])
    server = await serve(answering(answer))
    got = await call(client, server, "POST", path="/v2/infer", body=b"{}", headers={"X-B": "2"})
    assert (got.status, got.body) == (201, b'{"a":1}')
    assert got.headers.get("x-model") == got.headers["X-MODEL"] == "m1"
    [seen] = server.requests
    assert seen.line == "POST /v2/infer HTTP/1.1"
    host = f"127.0.0.1:{server.port}"
    assert seen.headers == [("X-B", "2"), ("Host", host), ("Content-Length", "2")]
    assert seen.body == b"{}"


async def test_a_replica_url_with_a_path_prefixes_the_requests(
    client: Client, serve: Serve
) -> None:
    server = await serve(answering(reply()))
    pool, prefix = client.origin(server.url + "/base/")
    await pool.request("GET", prefix + "/v2/x", connect_timeout=5, read_timeout=5)
    assert server.requests[0].line == "GET /base/v2/x HTTP/1.1"


async def test_a_chunked_body_with_extensions_and_trailers(client: Client, serve: Serve) -> None:
    chunked = reply(
        200,
        b"4;name=value\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Checksum: 1\r\n\r\n",
        [("Transfer-Encoding", "chunked"), ("X-Head", "h")],
    )
    server = await serve(answering(chunked, reply(200, b"second")))
    got = await call(client, server)
    assert got.body == b"abcdefg"
    assert got.headers.get("X-Head") == "h"
    assert "X-Checksum" not in got.headers  # a trailer is not a header of the reply
    assert (await call(client, server)).body == b"second"
    assert server.connections == 1  # read to its last chunk: the connection is reused


async def test_a_body_that_runs_until_the_server_closes(client: Client, serve: Serve) -> None:
    async def until_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply(200, b"", [("Content-Type", "text/plain")]))
        await peer.send(b"no length, ")
        await peer.send(b"no chunks")
        await peer.close()

    server = await serve(until_close)
    assert (await call(client, server)).body == b"no length, no chunks"
    assert (await call(client, server)).body == b"no length, no chunks"
    assert server.connections == 2  # such a connection cannot be reused


async def test_a_reply_to_head_has_no_body_whatever_its_length_says(
    client: Client, serve: Serve
) -> None:
    server = await serve(answering(reply(200, b"", [("Content-Length", "100")]), reply()))
    got = await call(client, server, "HEAD")
    assert (got.status, got.body, got.headers["Content-Length"]) == (200, b"", "100")
    assert (await call(client, server)).body == b"ok"
    assert server.connections == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_204_and_304_have_no_body(client: Client, serve: Serve, status: int) -> None:
    server = await serve(answering(reply(status, b"", [("Content-Length", "5")]), reply()))
    got = await call(client, server)
    assert (got.status, got.body) == (status, b"")
    assert (await call(client, server)).body == b"ok"
    assert server.connections == 1


async def test_interim_replies_are_skipped(client: Client, serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = reply(200, b"done", [("Content-Length", "4"), ("X-Final", "1")])
    server = await serve(answering(interim + final))
    got = await call(client, server, "POST", body=b"x")
    assert (got.status, got.body) == (200, b"done")
    assert "Link" not in got.headers
    assert got.headers["X-Final"] == "1"


async def test_a_head_that_comes_byte_by_byte_after_interim_replies(
    client: Client, serve: Serve
) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = reply(200, b"done", [("Content-Length", "4"), ("X-Final", "1")])

    async def piece_by_piece(peer: Peer) -> None:
        await peer.request()
        for i in range(len(interim + final)):  # (each write drained: as many reads as it takes)
            await peer.send((interim + final)[i : i + 1])

    server = await serve(piece_by_piece)
    got = await call(client, server, "POST", body=b"x")
    assert (got.status, got.body) == (200, b"done")
    assert list(got.headers.items()) == [("Content-Length", "4"), ("X-Final", "1")]
    assert got.header(b"x-final") == "1"
    assert got.header(b"link") is None


@pytest.mark.parametrize(
    ("answer", "asked"),
    [
        (
            reply(200, b"ok", [("Content-Length", "2"), ("X-Twice", "1"), ("x-twice", "2")]),
            ["x-twice", "content-length", "absent"],
        ),
        (
            reply(200, b"ok", [("Content-Length", "2"), ("X-Latin", "caf\u00e9"), ("X-Empty", "")]),
            ["x-latin", "x-empty"],
        ),
        (  # a trailer is no header, for either reading
            reply(
                200,
                b"2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
                [("Transfer-Encoding", "chunked"), ("X-Head", "h")],
            ),
            ["x-head", "x-trailer", "transfer-encoding"],
        ),
        (  # llhttp drops a value's leading whitespace, keeps its trailing: both readings do
            reply(200, b"ok", [("Content-Length", "2"), ("X-Pad", "\t v w \t"), ("X-Ws", " ")]),
            ["x-pad", "x-ws", "pad"],
        ),
        (  # an interim reply's headers are not the reply's, for either reading
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + reply(
                200, b"ok", [("Content-Length", "2"), ("Inference-Header-Content-Length", "7")]
            ),
            ["link", "inference-header-content-length"],
        ),
    ],
)
async def test_one_header_read_alone_is_what_the_headers_give(
    client: Client, serve: Serve, answer: bytes, asked: list[str]
) -> None:
    server = await serve(answering(answer))
    got = await call(client, server)
    for name in asked:
        assert got.header(name.encode()) == got.headers.get(name)
    assert got.header(b"absent") is None


async def test_an_unasked_protocol_switch_fails(client: Client, serve: Serve) -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    server = await serve(answering(switch))
    with pytest.raises(ExchangeFailed, match="switched protocols"):
        await call(client, server)


async def test_megabytes_both_ways(client: Client, serve: Serve) -> None:
    async def echo(peer: Peer) -> None:
        while (request := await peer.request()) is not None:
            await peer.send(reply(200, request.body))

    server = await serve(echo)
    payload = os.urandom(5 * 1024 * 1024 + 3)
    got = await call(client, server, "PUT", body=payload)
    assert got.body == payload
    assert server.requests[0].body == payload
    small = await call(client, server, "POST", body=memoryview(payload)[:10])
    assert small.body == payload[:10]
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [b"HTTX/1.1 200 OK\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"<html>hello</html>\r\n\r\n"],
)
async def test_a_malformed_status_line_fails_the_exchange(
    client: Client, serve: Serve, answer: bytes
) -> None:
    server = await serve(answering(answer))
    with pytest.raises(ExchangeFailed, match="malformed reply") as caught:
        await call(client, server)
    assert not isinstance(caught.value, ReplyCutOff)  # the head was never read


async def test_a_malformed_chunk_cuts_the_reply_off(client: Client, serve: Serve) -> None:
    server = await serve(answering(reply(200, b"zz\r\nab\r\n", [("Transfer-Encoding", "chunked")])))
    with pytest.raises(ReplyCutOff, match="malformed reply body"):
        await call(client, server)
