"""The gRPC pool's rules without sockets: each replica's RPC is a fake that answers or fails as
a test says (the channels are made, never dialled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from gateway.backends.grpc_pool import MAX_MESSAGE, GRPCPool, Method, channel_options
from gateway.backends.replica import Replica
from gateway.backends.specs import KServeSpec, TritonSpec
from gateway.errors import NoHealthyReplica, Overloaded, UpstreamError, UpstreamTimeout
from gateway.telemetry.metrics import PoolMetrics
from gateway.telemetry.timing import CURRENT_TIMING, Timing

pytestmark = pytest.mark.anyio
METHOD = Method("/inference.GRPCInferenceService/ModelInfer", bytes)
REFUSED = "failed to connect to all addresses; last error: UNKNOWN: Connection refused"
URLS = ["grpc://10.0.0.1:8001", "grpc://10.0.0.2:8001"]
Behaviour = Callable[[], Any]


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def refuse() -> Any:
    raise rpc_error(grpc.StatusCode.UNAVAILABLE, REFUSED)


def answer() -> Any:
    return "answer"


class Fakes:
    """What each replica does with an RPC, and the calls it saw (with their metadata)."""

    def __init__(self, pool: GRPCPool) -> None:
        self.pool = pool
        self.behaviour: dict[str, Behaviour] = {}
        self.calls: dict[str, int] = {r.url: 0 for r in pool.replicas}

    def caller(self, replica: Replica, method: Method) -> Any:
        async def call(request: Any, **options: Any) -> Any:
            self.calls[replica.url] += 1
            await asyncio.sleep(0)
            return self.behaviour[replica.url]()

        return call


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., tuple[GRPCPool, Fakes]]]:
    pools: list[GRPCPool] = []

    def build(urls: list[str] = URLS, **spec: Any) -> tuple[GRPCPool, Fakes]:
        backend = TritonSpec.model_validate(
            {"kind": "triton", "protocol": "grpc", "urls": urls, **spec}
        )
        metrics = PoolMetrics(CollectorRegistry()).bind("b")
        pool = GRPCPool("b", backend, metrics)
        fakes = Fakes(pool)
        pool._caller = fakes.caller  # type: ignore[method-assign]
        pools.append(pool)
        return pool, fakes

    yield build
    for pool in pools:
        await pool.close()


def attempts(pool: GRPCPool) -> dict[str, float]:
    assert pool.metrics is not None
    return {o: c._value.get() for o, c in pool.metrics.attempt.items()}


def retries(pool: GRPCPool) -> float:
    assert pool.metrics is not None
    value: float = pool.metrics.retries._value.get()
    return value


async def test_a_refused_connection_is_retried_on_the_other_replica(make: Any) -> None:
    pool, fakes = make()  # ejection after 5 consecutive local failures
    dead, live = URLS
    fakes.behaviour = {dead: refuse, live: answer}
    for _ in range(40):
        assert await pool.call(METHOD, b"", key=None) == "answer"
    assert fakes.calls[live] == 40
    assert fakes.calls[dead] == retries(pool) == 5  # then ejected: P2C skips it
    assert attempts(pool) == {"ok": 40, "retryable": 5, "timeout": 0, "error": 0}
    assert pool.state()["replicas"][0]["ejected_for"] > 0
    assert pool.in_flight == 0
    assert all(r.outstanding == 0 for r in pool.replicas)


@pytest.mark.parametrize(
    ("code", "details", "error", "outcome"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "Stream removed (Connection reset by peer)",
            UpstreamError,
            "error",
        ),
        (
            grpc.StatusCode.UNAVAILABLE,
            "'linear' version 2 is not at ready state",
            UpstreamError,
            "error",
        ),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", UpstreamTimeout, "timeout"),
        (grpc.StatusCode.NOT_FOUND, "Model linear with version 9 not found", UpstreamError, "ok"),
        (grpc.StatusCode.INTERNAL, "X has 3 features", Exception, "ok"),
    ],
)
async def test_an_rpc_that_may_have_run_is_never_retried(
    make: Any, code: grpc.StatusCode, details: str, error: type[Exception], outcome: str
) -> None:
    pool, fakes = make()

    def fail() -> Any:
        raise rpc_error(code, details)

    fakes.behaviour = {url: fail for url in URLS}
    with pytest.raises(error) as caught:
        await pool.call(METHOD, b"", key=None)
    assert details in str(caught.value)
    assert sum(fakes.calls.values()) == 1
    assert retries(pool) == 0
    assert attempts(pool)[outcome] == 1
    failures = sum(r.failures for r in pool.replicas)
    assert failures == (0 if outcome == "ok" else 1)  # a server's status is no local failure


async def test_every_replica_refusing_is_503_after_the_attempts(make: Any) -> None:
    pool, fakes = make([*URLS, "grpc://10.0.0.3:8001"], retries={"attempts": 2})
    fakes.behaviour = dict.fromkeys(fakes.calls, refuse)
    with pytest.raises(NoHealthyReplica, match="could not connect to backend 'b'"):
        await pool.call(METHOD, b"", key=None)
    assert sum(fakes.calls.values()) == 2  # attempts: 2, the first included


async def test_no_retry_without_budget(make: Any) -> None:
    pool, fakes = make(retries={"budget": 0, "min_per_second": 0})
    dead, live = URLS
    fakes.behaviour = {dead: refuse, live: answer}
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(await pool.call(METHOD, b"", key=None))
        except NoHealthyReplica:
            outcomes.append("refused")
    assert outcomes.count("refused") == fakes.calls[dead] >= 1
    assert retries(pool) == 0


async def test_the_overall_deadline_cancels_the_rpc_in_flight(make: Any) -> None:
    pool, _ = make(URLS[:1], timeout="50ms", deadline="100ms")
    started = asyncio.Event()

    async def call(request: Any, **options: Any) -> Any:
        assert options["timeout"] == pytest.approx(0.05)  # each try's RPC deadline
        started.set()
        await asyncio.sleep(60)  # a server that never answers, whatever its deadline

    pool._caller = lambda replica, method: call
    with pytest.raises(UpstreamTimeout, match=r"did not answer within 0\.1s"):
        await pool.call(METHOD, b"", key=None)
    assert started.is_set()
    assert pool.replicas[0].failures == 1
    assert pool.replicas[0].outstanding == 0
    assert pool.in_flight == 0


async def test_the_breaker_refuses_beyond_max_in_flight(make: Any) -> None:
    pool, _ = make(URLS[:1], max_in_flight=1)
    release = asyncio.Event()

    async def call(request: Any, **options: Any) -> Any:
        await release.wait()
        return "answer"

    pool._caller = lambda replica, method: call
    first = asyncio.create_task(pool.call(METHOD, b"", key=None))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await pool.call(METHOD, b"", key=None)
    release.set()
    assert await first == "answer"
    assert pool.in_flight == 0


async def test_the_calls_timing_counts_retries_and_upstream_time(make: Any) -> None:
    pool, fakes = make()
    dead, live = URLS
    fakes.behaviour = {dead: refuse, live: answer}
    pool.replicas[1].outstanding = 1  # P2C: the dead replica is the first choice
    timing = Timing()
    token = CURRENT_TIMING.set(timing)
    try:
        await pool.call(METHOD, b"", key=None)
    finally:
        CURRENT_TIMING.reset(token)
    assert (timing.retries, timing.backend, timing.replica) == (1, "b", live)
    assert timing.upstream > 0


async def test_a_calls_retries_are_the_tries_after_each_rpcs_first(make: Any) -> None:
    """Two RPCs of one call: the first answered at once, the second refused then answered."""
    pool, fakes = make()
    dead, live = URLS
    fakes.behaviour = {dead: refuse, live: answer}
    timing = Timing()
    token = CURRENT_TIMING.set(timing)
    try:
        pool.replicas[0].outstanding = 1  # P2C: the live replica first
        await pool.call(METHOD, b"", key=None)
        assert (timing.retries, retries(pool)) == (0, 0)
        pool.replicas[0].outstanding, pool.replicas[1].outstanding = 0, 1  # the dead one first
        await pool.call(METHOD, b"", key=None)
    finally:
        CURRENT_TIMING.reset(token)
    assert (timing.retries, retries(pool)) == (1, 1)
    assert fakes.calls == {dead: 1, live: 2}


async def test_unready_replicas_are_not_chosen(make: Any) -> None:
    pool, fakes = make()
    fakes.behaviour = dict.fromkeys(URLS, answer)
    pool.replicas[0].unready.add(("linear", "2"))
    for _ in range(10):
        await pool.call(METHOD, b"", key=("linear", "2"))
    assert fakes.calls == {URLS[0]: 0, URLS[1]: 10}


def test_channels_carry_messages_of_any_size() -> None:
    spec = KServeSpec.model_validate({"kind": "kserve", "protocol": "grpc", "urls": URLS[:1]})
    options = dict(channel_options(spec))
    assert options["grpc.max_send_message_length"] == MAX_MESSAGE == 2**31 - 1
    assert options["grpc.max_receive_message_length"] == MAX_MESSAGE
    assert options["grpc.min_reconnect_backoff_ms"] == 1000  # connect_timeout
