"""The replica pool against real local HTTP servers: balancing, retries, ejection, breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from gateway.backends.h1.client import Client
from gateway.backends.h1.connection import Reply
from gateway.backends.h1.errors import ConnectTimeout
from gateway.backends.h1.origin import OriginPool
from gateway.backends.pool import ReplicaPool
from gateway.backends.readiness import RepositoryIndex
from gateway.backends.replica import Replica
from gateway.backends.upstream import Target
from gateway.config.model import Backend
from gateway.errors import BadGateway, NoHealthyReplica, Overloaded, UpstreamTimeout
from gateway.telemetry import loop
from gateway.telemetry.metrics import BackendMetrics, PoolMetrics
from gateway.telemetry.timing import CURRENT_TIMING, Timing
from tests.fakes import FakeReplica, dead_url
from tests.rawhttp import Handler, Peer, RawServer, read_and_close, reply

pytestmark = pytest.mark.anyio


@dataclass(frozen=True, slots=True)
class Clients:
    """A worker's upstream clients: the session (streams, probes) and the h1 client."""

    session: aiohttp.ClientSession
    client: Client


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    client = Client()
    async with aiohttp.ClientSession() as session:
        yield Clients(session, client)
    await client.close()


@pytest.fixture
async def replicas() -> AsyncIterator[list[FakeReplica]]:
    started = [await FakeReplica().start(), await FakeReplica().start()]
    yield started
    for replica in started:
        await replica.stop()


Serve = Callable[[Handler], Awaitable[RawServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(handler)``: a raw HTTP server (``tests.rawhttp``), stopped after."""
    started: list[RawServer] = []

    async def start(handler: Handler) -> RawServer:
        started.append(await RawServer(handler).start())
        return started[-1]

    yield start
    for server in started:
        await server.stop()


def make_pool(
    clients: Clients, urls: list[str], metrics: BackendMetrics | None = None, **spec: Any
) -> ReplicaPool:
    backend = Backend.model_validate({"kind": "triton", "urls": urls, **spec})
    return ReplicaPool("test", backend, clients.session, clients.client, metrics)


async def test_power_of_two_choices_prefers_the_less_busy_replica(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    slow, fast = replicas
    slow.delay = 0.2
    pool = make_pool(clients, [slow.url, fast.url])

    async def client() -> None:
        for _ in range(8):
            reply = await pool.request("GET", "/")
            assert reply.status == 200

    await asyncio.gather(*(client() for _ in range(4)))
    assert slow.calls + fast.calls == 32
    assert fast.calls > 2 * slow.calls


async def test_connect_errors_retry_on_another_replica_and_eject(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    live = replicas[0]
    pool = make_pool(clients, [dead_url(), live.url], outlier={"consecutive_failures": 2})
    for _ in range(20):
        assert (await pool.request("POST", "/x", body=b"{}")).status == 200
    assert live.calls == 20
    dead = pool.state()["replicas"][0]
    assert dead["ejected_for"] > 0  # ejected after two connect failures


async def test_a_calls_retries_are_the_tries_after_each_requests_first(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    """A call's metadata fetch answered at once, then its infer refused by the first replica
    and answered by the other: one retry (the metadata fetch's try is not one)."""
    metrics = PoolMetrics(CollectorRegistry()).bind("test")
    pool = make_pool(clients, [dead_url(), replicas[0].url], metrics)
    dead, live = pool.replicas
    timing = Timing()
    token = CURRENT_TIMING.set(timing)
    try:
        dead.outstanding = 1  # P2C: the live replica first
        assert (await pool.request("GET", "/v2/models/m")).status == 200
        assert (timing.retries, metrics.retries._value.get()) == (0, 0)
        dead.outstanding, live.outstanding = 0, 1  # now the dead one first
        assert (await pool.request("POST", "/v2/models/m/infer", body=b"{}")).status == 200
    finally:
        CURRENT_TIMING.reset(token)
        dead.outstanding = live.outstanding = 0
    assert (timing.retries, metrics.retries._value.get()) == (1, 1)
    assert metrics.attempt["retryable"]._value.get() == 1
    assert replicas[0].calls == 2


async def test_every_replica_down_is_503_not_a_hang(clients: Clients) -> None:
    pool = make_pool(clients, [dead_url(), dead_url()], timeout="30s")
    with pytest.raises(NoHealthyReplica) as caught:
        await pool.request("GET", "/")
    assert caught.value.status == 503


async def test_503_from_an_idle_replica_is_retried_elsewhere(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    broken, healthy = replicas
    broken.status = 503
    pool = make_pool(clients, [broken.url, healthy.url])
    for _ in range(20):
        assert (await pool.request("GET", "/")).status == 200
    assert broken.calls > 0  # it was tried, and its 503 never reached the caller


async def test_503_is_returned_when_no_other_replica_can_take_it(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    only = replicas[0]
    only.status, only.body = 503, b'{"error": "unavailable"}'
    reply = await make_pool(clients, [only.url]).request("GET", "/")
    assert (reply.status, reply.body) == (503, b'{"error": "unavailable"}')


async def test_no_retries_without_budget(clients: Clients, replicas: list[FakeReplica]) -> None:
    pool = make_pool(
        clients,
        [dead_url(), replicas[0].url],
        retries={"attempts": 3, "budget": 0, "min_per_second": 0},
        outlier={"consecutive_failures": 1000},
    )
    failures = 0
    for _ in range(30):
        try:
            await pool.request("GET", "/")
        except NoHealthyReplica:
            failures += 1
    assert failures > 0


async def test_circuit_breaker_caps_requests_in_flight(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    replicas[0].delay = 0.5
    pool = make_pool(clients, [replicas[0].url], max_in_flight=2)
    first = [asyncio.create_task(pool.request("GET", "/")) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(Overloaded) as caught:
        await pool.request("GET", "/")
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "1"
    assert [r.status for r in await asyncio.gather(*first)] == [200, 200]


async def test_per_try_timeout_is_504(clients: Clients, replicas: list[FakeReplica]) -> None:
    replicas[0].delay = 2
    pool = make_pool(clients, [replicas[0].url], timeout="200ms")
    with pytest.raises(UpstreamTimeout) as caught:
        await pool.request("GET", "/")
    assert caught.value.status == 504


async def test_overall_deadline_is_504(clients: Clients, replicas: list[FakeReplica]) -> None:
    replicas[0].delay = 2
    pool = make_pool(clients, [replicas[0].url], timeout="10s", deadline="300ms")
    with pytest.raises(UpstreamTimeout, match=r"0\.3s"):
        await pool.request("GET", "/")
    assert pool.in_flight == 0
    assert pool.replicas[0].outstanding == 0


async def test_the_overall_deadline_leaves_the_tasks_later_timeouts_working(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    """The deadline withdraws the cancellation it asked: a timeout after it in the same task
    still ends as a timeout, not as a cancellation."""
    replicas[0].delay = 2
    pool = make_pool(clients, [replicas[0].url], timeout="10s", deadline="200ms")
    with pytest.raises(UpstreamTimeout):
        await pool.request("GET", "/")
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await asyncio.sleep(1)


async def test_a_request_cancelled_from_outside_is_cancelled_not_timed_out(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    replicas[0].delay = 2
    pool = make_pool(clients, [replicas[0].url], timeout="10s", deadline="5s")
    task = asyncio.create_task(pool.request("GET", "/"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.in_flight == 0
    assert pool.replicas[0].outstanding == 0


async def test_a_tripped_breaker_leaves_no_deadline_behind(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    """A request the breaker refuses starts no deadline that would cancel its task later."""
    replicas[0].delay = 1
    pool = make_pool(clients, [replicas[0].url], max_in_flight=1, deadline="200ms")
    busy = asyncio.create_task(pool.request("GET", "/"))
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await pool.request("GET", "/")
    await asyncio.sleep(0.4)  # past the refused request's deadline: this task goes on
    with pytest.raises(UpstreamTimeout):
        await busy
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


class ConnectTimerFires:
    """The h1 client (and its origin), but the first request's connect timer fires: after
    the loop stalled for ``stall`` seconds (the gateway busy), or at once (the replica slow to
    accept)."""

    def __init__(self, client: Client, stall: float) -> None:
        self.client, self.stall, self.fired = client, stall, 0
        self.pool: OriginPool | None = None

    def origin(self, url: str, *args: Any) -> tuple[ConnectTimerFires, str]:
        self.pool, prefix = self.client.origin(url, *args)
        return self, prefix

    async def request(self, *args: Any, **kwargs: Any) -> Reply:
        if not self.fired:
            self.fired += 1
            await asyncio.sleep(loop.TICK * 2)
            time.sleep(self.stall)  # noqa: ASYNC251 - the point: the loop does nothing else
            raise ConnectTimeout("no connection within 1s")
        assert self.pool is not None
        return await self.pool.request(*args, **kwargs)


@pytest.mark.parametrize("stall", [0.0, 0.4])
async def test_a_connect_timer_fired_by_a_stalled_loop_is_not_the_replicas_fault(
    clients: Clients, replicas: list[FakeReplica], stall: float
) -> None:
    """A 1 s connect timer that fired while the gateway's own loop stalled 0.4 s measured the
    gateway: the same replica is tried again and not ejected. Without the stall, it is the
    replica's failure (ejected at the first, here) and, alone, a 503."""
    pool = make_pool(
        clients, [replicas[0].url], connect_timeout="1s", outlier={"consecutive_failures": 1}
    )
    pool.client = ConnectTimerFires(clients.client, stall)  # type: ignore[assignment]
    async with loop.watching(CollectorRegistry()):
        if stall:
            reply = await pool.request("GET", "/")
            assert reply.status == 200
            assert replicas[0].calls == 1
            assert pool.state()["replicas"][0]["ejected_for"] == 0
        else:
            with pytest.raises(NoHealthyReplica):
                await pool.request("GET", "/")
            assert replicas[0].calls == 0
            assert pool.state()["replicas"][0]["ejected_for"] > 0


class Indexed:
    """A kind's readiness checks as a table: the server is up, the bulk index says ready or
    not per replica URL (``probe`` is never needed: the index is complete)."""

    def __init__(self, ready: dict[str, bool], version: str = "1") -> None:
        self.ready = ready
        self.version = version

    async def server_ready(self, replica: Replica) -> bool:
        return True

    async def model_index(self, replica: Replica) -> RepositoryIndex:
        state = "READY" if self.ready[replica.url] else "UNAVAILABLE"
        return RepositoryIndex.of([("m", self.version, state, "")])

    async def probe(self, replica: Replica, target: Target) -> bool:
        raise AssertionError("a complete index needs no per-model probe")


class Unlisted(Indexed):
    """Servers up whose index lists no model at all."""

    def __init__(self) -> None:
        super().__init__({})

    async def model_index(self, replica: Replica) -> RepositoryIndex:
        return RepositoryIndex.of([])


async def test_active_health_checks_take_replicas_out_and_back(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    first, second = replicas
    pool = make_pool(
        clients, [first.url, second.url], health={"unhealthy_after": 2, "healthy_after": 1}
    )
    target = Target("m", "1", "m", "1")
    readiness = Indexed({first.url: False, second.url: True})
    for _ in range(2):
        await pool.check_once(readiness, [target])
    for _ in range(10):
        await pool.request("GET", "/", key=target.key)
    assert (first.calls, second.calls) == (0, 10)
    readiness.ready[first.url] = True
    await pool.check_once(readiness, [target])
    assert pool.replicas[0].available(target.key, 0.0)
    readiness.ready[second.url] = False
    for _ in range(2):
        await pool.check_once(readiness, [target])
    assert pool.choose(target.key, set()) is pool.replicas[0]
    with pytest.raises(NoHealthyReplica):
        pool.choose(target.key, {0})  # the other one is excluded, this one is not ready


async def test_a_version_no_replica_has_ready_goes_to_the_server_to_answer(
    clients: Clients, replicas: list[FakeReplica]
) -> None:
    """Up, but the model version is ready nowhere (a version the server lacks): the first
    attempt still reaches a replica, whose own answer (its 404) the caller gets; a replica
    that is down is never chosen."""
    first, second = replicas
    pool = make_pool(clients, [first.url, second.url], health={"unhealthy_after": 1})
    target = Target("m", "9", "m", "9")
    listed_unready = Indexed({first.url: False, second.url: False}, "9")  # loaded nowhere
    await pool.check_once(listed_unready, [target])
    with pytest.raises(NoHealthyReplica):
        pool.choose(target.key, set())  # listed, not ready: 503 here, never sent
    await pool.check_once(Unlisted(), [target])  # the servers do not have it at all
    assert [r.absent for r in pool.replicas] == [{target.key}, {target.key}]
    assert pool.choose(target.key, set()) in pool.replicas
    with pytest.raises(NoHealthyReplica):
        pool.choose(target.key, {0})  # a retry is not sent to a replica known not ready
    pool.replicas[0].down = pool.replicas[1].down = True
    with pytest.raises(NoHealthyReplica):
        pool.choose(target.key, set())


# -- the h1 client's failures, as the pool reports them ------------------------------------------


async def test_a_reply_cut_off_mid_body_is_502(clients: Clients, serve: Serve) -> None:
    async def half(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply(200, b"{", [("Content-Length", "100")]))
        await peer.close()

    server = await serve(half)
    with pytest.raises(BadGateway, match="the model server's reply was cut off") as caught:
        await make_pool(clients, [server.url]).request("POST", "/", body=b"{}")
    assert caught.value.status == 502


async def test_a_connection_closed_before_a_reply_is_502_not_retried(
    clients: Clients, serve: Serve
) -> None:
    server = await serve(read_and_close)
    other = await serve(read_and_close)
    pool = make_pool(clients, [server.url, other.url], retries={"attempts": 3})
    with pytest.raises(BadGateway, match="the connection to the model server failed"):
        await pool.request("POST", "/", body=b"{}")
    assert server.connections + other.connections == 1  # it may have been processed


async def test_the_keep_alive_race_is_not_the_replicas_failure(
    clients: Clients, serve: Serve
) -> None:
    async def idle_closed(peer: Peer) -> None:
        await peer.request()
        await peer.send(reply())
        if await peer.request() is not None:
            await peer.close()  # gave the kept connection up as the request came

    server = await serve(idle_closed)
    pool = make_pool(clients, [server.url], outlier={"consecutive_failures": 1})
    for _ in range(3):
        assert (await pool.request("POST", "/", body=b"{}")).status == 200
    assert pool.state()["replicas"][0]["ejected_for"] == 0


async def test_the_deadline_frees_the_connection_slot(serve: Serve) -> None:
    async def first_stalls(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.number == 1:
                await peer.closed_by_client()
                return
            await peer.send(reply())

    server = await serve(first_stalls)
    client = Client(limit=1)
    try:
        async with aiohttp.ClientSession() as session:
            pool = make_pool(Clients(session, client), [server.url], deadline="200ms")
            with pytest.raises(UpstreamTimeout):
                await pool.request("GET", "/")
            assert (await pool.request("GET", "/")).status == 200  # the only slot is free
    finally:
        await client.close()
    assert server.connections == 2
