"""Which connection a request goes out on: keep-alive reuse, the replies and the closes that
end a connection, the keep-alive race (retried once, on a reused connection only), the
connection limit, cancellation and closing the client."""

from __future__ import annotations

import asyncio

import pytest

from gateway.backends.h1.client import Client
from gateway.backends.h1.errors import ClosedBeforeReply, ExchangeFailed
from tests.rawhttp import Handler, Peer, answering, read_and_close, reply
from tests.support import eventually
from tests.unit.backends.h1.support import Serve, call

pytestmark = pytest.mark.anyio


async def test_sequential_requests_share_one_connection(client: Client, serve: Serve) -> None:
    server = await serve(answering(reply()))
    for _ in range(5):
        assert (await call(client, server, "POST", body=b"x")).status == 200
    assert (server.connections, len(server.requests)) == (1, 5)
    assert client.origin(server.url)[0].idle == 1


@pytest.mark.parametrize(
    "answer",
    [
        reply(200, b"ok", [("Content-Length", "2"), ("Connection", "close")]),
        reply(200, b"ok", version="1.0"),  # HTTP/1.0 without keep-alive
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_reply_that_ends_the_connection_is_not_reused(
    client: Client, serve: Serve, answer: bytes
) -> None:
    server = await serve(answering(answer))
    for _ in range(3):
        assert (await call(client, server)).body == b"ok"
    assert server.connections == 3
    assert client.origin(server.url)[0].idle == 0


async def test_http_1_0_with_keep_alive_is_reused(client: Client, serve: Serve) -> None:
    answer = reply(200, b"ok", [("Content-Length", "2"), ("Connection", "keep-alive")], "1.0")
    server = await serve(answering(answer))
    for _ in range(3):
        await call(client, server)
    assert server.connections == 1


async def test_an_idle_connection_the_server_closed_is_dropped(
    client: Client, serve: Serve
) -> None:
    async def one_then_close(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        await peer.close()

    server = await serve(one_then_close)
    pool = client.origin(server.url)[0]
    await call(client, server)

    async def dropped() -> bool:
        return pool.idle == 0

    await eventually(dropped)  # at the server's FIN, not at the next request
    assert (await call(client, server)).status == 200
    assert server.connections == 2


async def test_unsolicited_bytes_on_an_idle_connection_drop_it(
    client: Client, serve: Serve
) -> None:
    async def chatty(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        await asyncio.sleep(0.05)
        await peer.send(reply(408, b""))  # what some servers send before closing an idle one
        while await peer.request() is not None:
            await peer.send(reply())

    server = await serve(chatty)
    pool = client.origin(server.url)[0]
    await call(client, server)

    async def dropped() -> bool:
        return pool.idle == 0

    await eventually(dropped)
    assert (await call(client, server)).status == 200
    assert server.connections == 2


def first_request_only(closes: int) -> Handler:
    """Answers a connection's first request and closes it, unanswered, at its second (the
    server gave the idle socket up as the request came); connections 2 to ``closes`` close
    at their first request, unanswered too."""

    async def handle(peer: Peer) -> None:
        await peer.request()
        if peer.number > 1 and peer.number <= closes:
            await peer.close()  # a retry's fresh connection, closed too
            return
        await peer.send(reply())
        if await peer.request() is not None:
            await peer.close()

    return handle


async def test_the_keep_alive_race_is_retried_once_on_a_new_connection(
    client: Client, serve: Serve
) -> None:
    server = await serve(first_request_only(closes=1))
    await call(client, server, "POST", body=b"1")
    got = await call(client, server, "POST", body=b"2")  # goes out on the kept connection
    assert got.status == 200
    assert server.connections == 2
    assert [r.body for r in server.requests] == [b"1", b"2", b"2"]


async def test_a_reused_connection_is_retried_only_once(client: Client, serve: Serve) -> None:
    server = await serve(first_request_only(closes=2))
    await call(client, server)
    with pytest.raises(ClosedBeforeReply):
        await call(client, server)
    assert server.connections == 2  # the kept one, then one fresh one: no third try


async def test_a_fresh_connection_closed_without_a_reply_is_not_retried(
    client: Client, serve: Serve
) -> None:
    server = await serve(read_and_close)
    with pytest.raises(ClosedBeforeReply):
        await call(client, server, "POST", body=b"once")
    assert server.connections == 1
    assert len(server.requests) == 1


async def test_idle_connections_close_after_the_keepalive_timeout(serve: Serve) -> None:
    client = Client(keepalive_timeout=0.2)
    ended: list[bool] = []

    async def answer_then_wait(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        ended.append(await peer.closed_by_client())

    try:
        server = await serve(answer_then_wait)
        await asyncio.gather(*(call(client, server) for _ in range(3)))
        pool = client.origin(server.url)[0]
        assert pool.idle == 3

        async def swept() -> bool:
            return pool.idle == 0 and len(ended) == 3

        await eventually(swept)
        assert ended == [True, True, True]
    finally:
        await client.close()


async def test_callers_beyond_the_limit_wait_for_a_slot(serve: Serve) -> None:
    client = Client(limit=2)
    go = asyncio.Event()

    async def held(peer: Peer) -> None:
        while await peer.request() is not None:
            await go.wait()
            await peer.send(reply())

    try:
        server = await serve(held)
        calls = [asyncio.create_task(call(client, server)) for _ in range(3)]

        async def two_waiting() -> bool:
            return len(server.requests) == 2

        await eventually(two_waiting)
        await asyncio.sleep(0.1)  # room for a third connection, which must not come
        assert server.connections == 2
        go.set()
        assert [r.status for r in await asyncio.gather(*calls)] == [200, 200, 200]
        assert server.connections == 2  # the third took a freed slot and a kept connection
    finally:
        await client.close()


async def test_a_cancelled_request_closes_its_connection_and_frees_its_slot(
    serve: Serve,
) -> None:
    client = Client(limit=1)
    stalled = asyncio.Event()

    async def stall_the_first(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.number == 1:
                stalled.set()
                assert await peer.closed_by_client()  # the cancelled request's connection
                return
            await peer.send(reply())

    try:
        server = await serve(stall_the_first)
        first = asyncio.create_task(call(client, server))
        await stalled.wait()
        waiting = asyncio.create_task(call(client, server))  # waits for the only slot
        await asyncio.sleep(0.05)
        waiting.cancel()  # a waiter cancelled before it got a slot leaves no trace
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await call(client, server)).status == 200
        assert server.connections == 2  # never the half-used connection
    finally:
        await client.close()


async def test_closing_the_client_closes_idle_and_busy_connections(serve: Serve) -> None:
    client = Client()
    stuck_at = asyncio.Event()
    ended: list[bool] = []

    async def answer_once(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        if await peer.request() is not None:
            stuck_at.set()  # a second request: never answered
        ended.append(await peer.closed_by_client())

    server = await serve(answer_once)
    await asyncio.gather(call(client, server), call(client, server))  # two kept connections
    stuck = asyncio.create_task(call(client, server))  # on one of them
    await stuck_at.wait()
    await client.close()
    with pytest.raises(ExchangeFailed, match="the client closed the connection"):
        await stuck

    async def both_ended() -> bool:
        return ended == [True, True]

    await eventually(both_ended)
    assert server.connections == 2
