"""The Redis lane against real, throwaway redis-servers: order, errors, outages and restarts,
cancelled callers, AUTH, SELECT, a unix socket, TLS, large values; on asyncio's loop and on
uvloop (the gateway's)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio import BlockingConnectionPool, ConnectionPool, SSLConnection

from gateway.store import Limit
from gateway.store.redis.lane import Lane
from gateway.store.redis.store import RedisStore
from tests.redis_plugin import RedisServer, StartRedis, tls_options
from tests.support import free_port

pytestmark = pytest.mark.anyio

BOUND = 10.0  # no wait here is allowed to hang the run


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param("asyncio", id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def lane_for(url: str, **options: Any) -> Lane:
    lane = Lane.from_pool(ConnectionPool.from_url(url, **options))
    assert lane is not None
    return lane


@pytest.fixture
async def server(start_redis: StartRedis) -> RedisServer:
    return start_redis()


@pytest.fixture
async def lane(server: RedisServer) -> AsyncIterator[Lane]:
    lane = lane_for(server.url)
    yield lane
    await lane.close()


@pytest.fixture
async def admin(server: RedisServer) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(server.url)
    yield client
    await client.aclose()


async def test_pipelined_commands_resolve_in_order(lane: Lane) -> None:
    with anyio.fail_after(BOUND):
        counted = await asyncio.gather(*(lane.call("INCR", "n") for _ in range(500)))
        echoed = await asyncio.gather(*(lane.call("ECHO", f"e{i}") for i in range(500)))
    assert counted == list(range(1, 501))  # INCR's replies in the order it was issued
    assert echoed == [f"e{i}".encode() for i in range(500)]


async def test_replies_are_undecoded(lane: Lane) -> None:
    with anyio.fail_after(BOUND):
        assert await lane.call("SET", "k", b"\xff\x00", "PX", 60_000) == b"OK"
        assert await lane.call("GET", "k") == b"\xff\x00"
        assert await lane.call("GET", "missing") is None
        assert await lane.call("EVAL", "return {1, 'a', false}", 0) == [1, b"a", None]


async def test_an_error_reply_raises_redis_pys_error_and_the_next_commands_go_on(
    lane: Lane,
) -> None:
    with anyio.fail_after(BOUND):
        await lane.call("SET", "text", "abc")
        results = await asyncio.gather(
            lane.call("INCR", "text"),
            lane.call("EVALSHA", "0" * 40, 0),
            lane.call("GET", "text"),
            lane.call("NOSUCHCOMMAND"),
            lane.call("ECHO", "after"),
            return_exceptions=True,
        )
    assert isinstance(results[0], rx.ResponseError)
    assert "not an integer" in str(results[0])
    assert isinstance(results[1], rx.NoScriptError)
    assert results[2] == b"abc"
    assert isinstance(results[3], rx.ResponseError)
    assert results[4] == b"after"


async def test_a_bad_argument_raises_at_the_call_and_sends_nothing(lane: Lane) -> None:
    with pytest.raises(TypeError):
        lane.call("SET", "k", None)  # type: ignore[arg-type]
    with anyio.fail_after(BOUND):
        assert await lane.call("ECHO", "still in step") == b"still in step"


async def test_large_values_both_ways(lane: Lane) -> None:
    value = os.urandom(1 << 20)
    with anyio.fail_after(BOUND):
        await asyncio.gather(*(lane.call("SET", f"big{i}", value) for i in range(3)))
        got = await asyncio.gather(*(lane.call("GET", f"big{i}") for i in range(3)))
    assert got == [value] * 3


async def test_a_cancelled_caller_leaves_the_others_in_step(
    lane: Lane, admin: aredis.Redis
) -> None:
    with anyio.fail_after(BOUND):
        blocked = asyncio.ensure_future(lane.call("BLPOP", "queue", 0))
        behind = asyncio.ensure_future(lane.call("ECHO", "behind"))
        await asyncio.sleep(0.05)  # both written; the server holds ECHO behind BLPOP
        blocked.cancel()
        await admin.rpush("queue", "x")  # BLPOP's reply arrives now, for nobody
        assert await behind == b"behind"
        assert await lane.call("ECHO", "next") == b"next"
    assert blocked.cancelled()


async def test_a_reply_late_past_the_socket_timeout_fails_with_timeout_then_reconnects(
    server: RedisServer,
) -> None:
    lane = lane_for(server.url, socket_timeout=0.2)
    try:
        with anyio.fail_after(BOUND):
            with pytest.raises(rx.TimeoutError):
                await lane.call("BLPOP", "queue", 0)
            assert await lane.call("ECHO", "again") == b"again"
    finally:
        await lane.close()


async def test_a_killed_redis_fails_the_commands_fast_and_a_restarted_one_is_used_again(
    start_redis: StartRedis,
) -> None:
    server = start_redis()
    lane = lane_for(server.url)
    try:
        with anyio.fail_after(BOUND):
            assert await lane.call("SET", "k", "v") == b"OK"
            pending = asyncio.ensure_future(lane.call("BLPOP", "queue", 0))
            await asyncio.sleep(0.05)
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            with pytest.raises(rx.ConnectionError):
                await pending
            for _ in range(50):  # Redis down: every command fails, none hangs
                with pytest.raises(rx.ConnectionError):
                    await lane.call("GET", "k")
            await asyncio.to_thread(start_redis, port=server.port)  # returns once it answers PING
            assert await lane.call("GET", "k") is None  # the next command: the new server
            assert await lane.call("SET", "k", "v2") == b"OK"
    finally:
        await lane.close()


async def test_the_commands_of_a_wave_share_one_connect_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = 0
    open_ = Lane._open

    def counted(lane: Lane) -> Awaitable[Any]:
        nonlocal attempts
        attempts += 1
        return open_(lane)

    monkeypatch.setattr(Lane, "_open", counted)
    lane = lane_for(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with anyio.fail_after(BOUND):
        failed = await asyncio.gather(
            *(lane.call("GET", "k") for _ in range(100)), return_exceptions=True
        )
    assert all(isinstance(f, rx.ConnectionError) for f in failed)
    assert attempts == 1


async def test_auth_and_select(start_redis: StartRedis) -> None:
    server = start_redis()  # the plugin's readiness PING needs no password: set it after
    async with aredis.Redis(port=server.port) as setup:
        await setup.config_set("requirepass", "s3cret")
    admin = aredis.Redis(port=server.port, password="s3cret", db=3)
    lanes = [
        lane_for(f"redis://:s3cret@127.0.0.1:{server.port}/3"),
        lane_for(f"redis://default:s3cret@127.0.0.1:{server.port}/3", client_name="gw-lane"),
    ]
    try:
        with anyio.fail_after(BOUND):
            for i, lane in enumerate(lanes):
                assert await lane.call("SET", f"k{i}", f"v{i}") == b"OK"
                assert await admin.get(f"k{i}") == f"v{i}".encode()  # in db 3
            assert b"name=gw-lane" in await lanes[1].call("CLIENT", "INFO")
            wrong = lane_for(f"redis://:wrong@127.0.0.1:{server.port}/0")
            with pytest.raises(rx.AuthenticationError):  # a ConnectionError: StoreUnavailable
                await wrong.call("PING")
            await wrong.close()
    finally:
        for lane in lanes:
            await lane.close()
        await admin.aclose()


async def test_a_unix_socket(start_redis: StartRedis, tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    start_redis("--unixsocket", str(path), "--unixsocketperm", "700")
    lane = lane_for(f"unix://{path}?db=2")
    try:
        with anyio.fail_after(BOUND):
            assert await lane.call("SET", "k", "v") == b"OK"
            assert await lane.call("GET", "k") == b"v"
            assert b" db=2 " in await lane.call("CLIENT", "INFO")
    finally:
        await lane.close()


async def test_tls(start_redis: StartRedis, tmp_path: Path) -> None:
    ca, port, options = tls_options(tmp_path / "pki")
    start_redis(*options)
    pool = BlockingConnectionPool(
        connection_class=SSLConnection, host="127.0.0.1", port=port, ssl_ca_certs=str(ca.cert)
    )
    lane = Lane.from_pool(pool)
    assert lane is not None
    try:
        with anyio.fail_after(BOUND):
            assert await lane.call("SET", "k", b"over tls") == b"OK"
            assert await lane.call("GET", "k") == b"over tls"
        untrusted = Lane.from_pool(
            BlockingConnectionPool(connection_class=SSLConnection, host="127.0.0.1", port=port)
        )
        assert untrusted is not None
        with anyio.fail_after(BOUND), pytest.raises(rx.ConnectionError):
            await untrusted.call("PING")  # the test CA is not in the default trust store
        await untrusted.close()
    finally:
        await lane.close()


async def test_close_answers_the_commands_in_flight(lane: Lane) -> None:
    with anyio.fail_after(BOUND):
        flying = asyncio.ensure_future(lane.call("ECHO", "in flight"))
        await asyncio.sleep(0)  # issued, not yet answered
        await lane.close()
        assert await flying == b"in flight"
        assert await lane.call("ECHO", "reconnected") == b"reconnected"


async def test_the_store_runs_its_scripts_again_after_script_flush(
    server: RedisServer, admin: aredis.Redis
) -> None:
    store = RedisStore.from_url(server.url, prefix="gwtest:")
    bucket = [Limit("t:acme", "rate", "bucket", 100, rate=1)]
    try:
        with anyio.fail_after(BOUND):
            assert (await store.take(bucket, cache=("t:acme", "k"), lock=5))[0].admitted
            await admin.script_flush()
            verdict, value = await store.take(bucket, cache=("t:acme", "k"), lock=5)
            assert verdict.admitted
            assert value is None
            await admin.script_flush()
            await store.cache_set("t:acme", "k", b"v", 60, unlock=True)  # the FILL script
            assert await store.cache_get("t:acme", "k") == b"v"
            assert await admin.exists("gwtest:{t:acme}:c:k:lock") == 0
    finally:
        await store.close()
