"""How an exchange fails, by what the caller may do next: no connection (``ConnectFailed``:
refused, unresolvable, too slow, TLS refused), no reply in time (``ReadTimeout``), or a
connection that failed after the request left (``ExchangeFailed``, ``ReplyCutOff`` once the
reply's head was read)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gateway.backends.h1.client import Client
from gateway.backends.h1.errors import (
    ClosedBeforeReply,
    ConnectFailed,
    ConnectTimeout,
    ExchangeFailed,
    ReadTimeout,
    ReplyCutOff,
    TLSHandshakeFailed,
)
from gateway.backends.tls import tls_reason
from tests.certs import CA
from tests.rawhttp import Peer, answering, blackhole_port, reply
from tests.support import free_port
from tests.unit.backends.h1.support import Serve, call

pytestmark = pytest.mark.anyio


async def test_no_reply_is_a_read_timeout_and_the_connection_is_closed(
    client: Client, serve: Serve
) -> None:
    ended: list[bool] = []

    async def silent(peer: Peer) -> None:
        await peer.request()
        ended.append(await peer.closed_by_client())

    server = await serve(silent)
    with pytest.raises(ReadTimeout):
        await call(client, server, read_timeout=0.2)
    await asyncio.sleep(0.05)
    assert ended == [True]


async def test_the_read_timeout_is_the_longest_silence_not_the_whole_reply(
    client: Client, serve: Serve
) -> None:
    """aiohttp's sock_read: a reply that trickles in for longer than the timeout, with short
    pauses, is read."""

    async def trickle(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply(200, b"", [("Content-Length", "8")]))
        for _ in range(8):
            await asyncio.sleep(0.1)
            await peer.send(b"x")

    server = await serve(trickle)
    got = await call(client, server, read_timeout=0.5)  # 0.8 s in all
    assert got.body == b"x" * 8


async def test_a_kept_connection_times_out_with_the_timeout_of_its_own_exchange(
    client: Client, serve: Serve
) -> None:
    """The read timer outlives an exchange on a kept connection: the next exchange on it
    still times out, and with its own, shorter, timeout, not the first one's."""

    async def answer_once(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        await peer.request()
        await peer.closed_by_client()

    server = await serve(answer_once)
    assert (await call(client, server, read_timeout=30.0)).status == 200
    with pytest.raises(ReadTimeout, match=r"for 0\.2s"):
        await call(client, server, read_timeout=0.2)
    assert server.connections == 1


async def test_the_timer_of_an_earlier_exchange_does_not_cut_a_later_one_short(
    client: Client, serve: Serve
) -> None:
    async def answer_late_the_second_time(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        await peer.request()
        await asyncio.sleep(0.4)  # past the first exchange's timeout
        await peer.send(reply(200, b"late"))

    server = await serve(answer_late_the_second_time)
    assert (await call(client, server, read_timeout=0.2)).status == 200
    assert (await call(client, server, read_timeout=5.0)).body == b"late"
    assert server.connections == 1


async def test_a_refused_connection_never_sent_anything(client: Client) -> None:
    pool, _ = client.origin(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectFailed, match="cannot connect") as caught:
        await pool.request("GET", "/", connect_timeout=5, read_timeout=5)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


async def test_a_name_that_does_not_resolve_is_a_connect_failure(client: Client) -> None:
    pool, _ = client.origin("http://model-server.invalid:8000")  # RFC 6761: never resolves
    with pytest.raises(ConnectFailed):
        await pool.request("GET", "/", connect_timeout=5, read_timeout=5)


async def test_a_connect_that_hangs_is_a_connect_timeout(client: Client) -> None:
    port, held = blackhole_port()
    try:
        pool, _ = client.origin(f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectTimeout):
            await pool.request("GET", "/", connect_timeout=0.3, read_timeout=5)
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
async def test_a_connection_lost_mid_body_cuts_the_reply_off(
    client: Client, serve: Serve, reset: bool
) -> None:
    async def half(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply(200, b"0123456789", [("Content-Length", "1000")]))
        await asyncio.sleep(0.05)
        if reset:
            peer.reset()
        else:
            await peer.close()

    server = await serve(half)
    with pytest.raises(ReplyCutOff, match="mid-body"):
        await call(client, server)


async def test_a_chunked_body_ended_by_a_close_is_cut_off(client: Client, serve: Serve) -> None:
    async def unfinished(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply(200, b"4\r\nabcd\r\n", [("Transfer-Encoding", "chunked")]))
        await peer.close()

    server = await serve(unfinished)
    with pytest.raises(ReplyCutOff):
        await call(client, server)


async def test_a_connection_lost_mid_head_fails_the_exchange(client: Client, serve: Serve) -> None:
    async def half_head(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        await asyncio.sleep(0.05)
        peer.reset()

    server = await serve(half_head)
    with pytest.raises(ExchangeFailed, match="mid-head") as caught:
        await call(client, server)
    assert not isinstance(caught.value, ReplyCutOff | ClosedBeforeReply)


async def test_a_reset_before_any_byte_on_a_fresh_connection(client: Client, serve: Serve) -> None:
    async def reset(peer: Peer) -> None:
        await peer.request()
        peer.reset()

    server = await serve(reset)
    with pytest.raises(ClosedBeforeReply):
        await call(client, server)
    assert server.connections == 1


# -- TLS ---------------------------------------------------------------------------------------


def server_tls(ca: CA, *names: str) -> ssl.SSLContext:
    issued = ca.server(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    return context


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki")


async def test_tls_verified_with_the_backends_ca(client: Client, serve: Serve, ca: CA) -> None:
    server = await serve(answering(reply(200, b"secure")), tls=server_tls(ca))
    trusted = ssl.create_default_context(cafile=str(ca.cert))
    pool, _ = client.origin(server.url, trusted)
    for _ in range(3):
        got = await pool.request("GET", "/", connect_timeout=5, read_timeout=5)
        assert got.body == b"secure"
    assert server.connections == 1


async def test_tls_with_the_systems_cas_refuses_a_private_ca(
    client: Client, serve: Serve, ca: CA
) -> None:
    server = await serve(answering(reply()), tls=server_tls(ca))
    pool, _ = client.origin(server.url, True)
    with pytest.raises(TLSHandshakeFailed) as caught:
        await pool.request("GET", "/", connect_timeout=5, read_timeout=5)
    assert isinstance(caught.value, ConnectFailed)  # never sent: safe to try elsewhere
    cause = caught.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert tls_reason(cause).startswith("certificate verify failed")
    assert not server.requests


async def test_tls_verifies_the_name_given_instead_of_the_urls_host(
    client: Client, serve: Serve, ca: CA
) -> None:
    server = await serve(answering(reply()), tls=server_tls(ca, "models.internal"))
    trusted = ssl.create_default_context(cafile=str(ca.cert))
    mismatch, _ = client.origin(server.url, trusted)
    with pytest.raises(TLSHandshakeFailed) as caught:
        await mismatch.request("GET", "/", connect_timeout=5, read_timeout=5)
    assert isinstance(caught.value.__cause__, ssl.SSLError)
    assert "IP address mismatch" in tls_reason(caught.value.__cause__)
    named, _ = client.origin(server.url, trusted, "models.internal")
    assert (await named.request("GET", "/", connect_timeout=5, read_timeout=5)).status == 200


async def test_tls_false_does_not_verify(client: Client, serve: Serve, ca: CA) -> None:
    server = await serve(answering(reply()), tls=server_tls(ca))
    pool, _ = client.origin(server.url, False)
    assert (await pool.request("GET", "/", connect_timeout=5, read_timeout=5)).status == 200


def test_only_http_urls_make_an_origin() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Client().origin("grpc://127.0.0.1:1")
