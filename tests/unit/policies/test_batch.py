"""The batch policy on its own: calls in, replies or errors out, a recording ``call_next`` as
the backend (no sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.call import Call, Reply
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Tensor
from gateway.errors import InvalidTensor, Overloaded, UpstreamError, UpstreamTimeout
from gateway.telemetry.timing import CURRENT_TIMING, Timing
from policies.batch import BatchPolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import make_call, toy_routes

pytestmark = pytest.mark.anyio
DECLARED = "inputs: [{name: x, datatype: FP32, shape: [-1, 4]}], "


def routes(batching: str, declared: str = DECLARED) -> str:
    return f"""
backends:
  b1: {{kind: toy, urls: ["http://b1.invalid"]}}
models:
  m:
    versions:
      "1": {{backend: b1, {declared}batching: {{{batching}}}}}
"""


def rows(*values: list[float]) -> InferenceRequest:
    flat = [v for row in values for v in row]
    return InferenceRequest(inputs=[Tensor("x", "FP32", [len(values), len(values[0])], flat)])


@dataclass
class Backend:
    """``call_next``: records each call; answers ``y = 10 x`` row by row once ``gate`` opens,
    or raises ``error``."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    error: Exception | None = None
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self, call: Call) -> Reply:
        self.calls.append(call)
        await self.gate.wait()
        timing = CURRENT_TIMING.get()
        if timing is not None:  # as the pool records a retried request
            timing.retries += 1
            timing.upstream += 0.25
            timing.backend, timing.replica = "b1", "http://b1.invalid"
        if self.error is not None:
            raise self.error
        x = (await call.inference()).inputs[0]
        y = Tensor("y", "FP32", list(x.shape), [v * 10 for v in x.data])
        return Reply(response=InferenceResponse(outputs=[y]))


Make = Callable[..., Call]
Build = Callable[..., Awaitable[tuple[BatchPolicy, Make]]]


@pytest.fixture
async def policy_for(make_runtime: MakeRuntime) -> Build:
    async def build(batching: str, declared: str = DECLARED) -> tuple[BatchPolicy, Make]:
        runtime = await make_runtime(routes(batching, declared))
        policy = BatchPolicy.build(runtime)
        assert policy is not None

        def call(request: InferenceRequest, deadline: float | None = None) -> Call:
            made = make_call(request=request)
            made.resolved = runtime.resolve("m", "1")
            made.deadline = deadline
            return made

        return policy, call

    return build


def data(reply: Reply) -> tuple[list[int], list[float]]:
    response = reply.tensors()
    assert response is not None
    y = response.outputs[0]
    return y.shape, y.data


async def test_concurrent_calls_join_and_each_gets_its_own_rows(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 50ms")
    backend = Backend()
    calls = [call(rows([1, 2, 3, 4])), call(rows([5, 6, 7, 8], [9, 9, 9, 9])), call(rows([0] * 4))]
    replies = await asyncio.gather(*(policy(c, backend) for c in calls))
    assert len(backend.calls) == 1
    sent = backend.calls[0].request
    assert sent is not None
    assert sent.inputs[0].shape == [4, 4]
    assert data(replies[0]) == ([1, 4], [10, 20, 30, 40])
    assert data(replies[1]) == ([2, 4], [50, 60, 70, 80, 90, 90, 90, 90])
    assert data(replies[2]) == ([1, 4], [0, 0, 0, 0])
    assert [c.batch for c in calls] == [4, 4, 4]


async def test_a_full_batch_goes_at_once_and_the_next_starts_another(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 2, max_delay: 10s")
    backend = Backend()
    calls = [call(rows([float(i)] * 4)) for i in range(4)]
    replies = await asyncio.wait_for(asyncio.gather(*(policy(c, backend) for c in calls)), 5)
    assert [len(c.request.inputs[0].data) for c in backend.calls if c.request] == [8, 8]
    assert [data(r)[1][0] for r in replies] == [0, 10, 20, 30]


async def test_mixed_shapes_go_in_separate_batches(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 20ms", declared="")
    backend = Backend()
    four, three = call(rows([1, 2, 3, 4])), call(rows([1, 2, 3]))
    other_four = call(rows([5, 6, 7, 8]))
    replies = await asyncio.gather(*(policy(c, backend) for c in (four, three, other_four)))
    shapes = sorted(c.request.inputs[0].shape for c in backend.calls if c.request)
    assert shapes == [[1, 3], [2, 4]]
    assert data(replies[1]) == ([1, 3], [10, 20, 30])
    assert data(replies[2]) == ([1, 4], [50, 60, 70, 80])


async def test_a_request_above_max_batch_size_goes_alone(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 2, max_delay: 10s")
    backend = Backend()
    big = call(rows(*[[1.0, 2.0, 3.0, 4.0]] * 3))
    reply = await asyncio.wait_for(policy(big, backend), 5)
    assert backend.calls == [big]  # the call itself, at once, never queued
    assert big.batch is None
    assert data(reply)[0] == [3, 4]


async def test_a_malformed_member_fails_alone(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 20ms")
    backend = Backend()
    good = [call(rows([1, 2, 3, 4])), call(rows([5, 6, 7, 8]))]
    bad = call(InferenceRequest(inputs=[Tensor("x", "INT64", [1, 4], [1, 2, 3, 4])]))
    results = await asyncio.gather(
        policy(good[0], backend), policy(bad, backend), policy(good[1], backend),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], InvalidTensor)
    assert len(backend.calls) == 1
    assert [data(r)[1][0] for r in (results[0], results[2])] == [10, 50]  # type: ignore[arg-type]


async def test_a_failed_batch_fails_every_member_with_the_backends_error(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 20ms")
    backend = Backend(error=UpstreamError("model crashed", status=503))
    results = await asyncio.gather(
        *(policy(call(rows([1, 2, 3, 4])), backend) for _ in range(3)), return_exceptions=True
    )
    assert len(backend.calls) == 1
    assert all(isinstance(r, UpstreamError) for r in results)
    assert {(r.status, r.message) for r in results} == {(503, "model crashed")}  # type: ignore[union-attr]
    assert len({id(r) for r in results}) == 3  # each its own copy (steps add headers to it)


async def test_a_deadline_passed_in_the_queue_is_504_and_never_sent(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 10s")
    backend = Backend()
    late = call(rows([1, 2, 3, 4]), deadline=time.monotonic() + 0.02)
    with pytest.raises(UpstreamTimeout, match="deadline"):
        await asyncio.wait_for(policy(late, backend), 5)
    assert backend.calls == []


async def test_a_full_queue_answers_503_overloaded_with_retry_after(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 100, max_delay: 10s, max_queue: 2")
    backend = Backend()
    waiting = [asyncio.create_task(policy(call(rows([1, 2, 3, 4])), backend)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as refused:
        await policy(call(rows([1, 2, 3, 4])), backend)
    assert refused.value.status == 503
    assert refused.value.code == "overloaded"
    assert refused.value.headers["Retry-After"] == "1"
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert backend.calls == []  # cancelled members are taken out, never sent


async def test_in_flight_batches_per_replica_are_bounded(policy_for: Build) -> None:
    policy, call = await policy_for(
        "max_batch_size: 2, max_delay: 1ms, max_in_flight_per_replica: 1"
    )
    backend = Backend()
    backend.gate.clear()
    tasks = [asyncio.create_task(policy(call(rows([float(i)] * 4)), backend)) for i in range(6)]
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert len(backend.calls) == 1  # one batch in flight on the one replica; the rest wait
    backend.gate.set()
    replies = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert len(backend.calls) == 3
    assert [data(r)[1][0] for r in replies] == [0, 10, 20, 30, 40, 50]


async def test_each_member_counts_its_batchs_upstream_time(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 20ms")
    backend = Backend()

    async def one() -> Timing:
        timing = Timing()
        CURRENT_TIMING.set(timing)
        await policy(call(rows([1, 2, 3, 4])), backend)
        return timing

    timings = await asyncio.gather(one(), one())
    assert len(backend.calls) == 1
    assert [(t.retries, t.upstream, t.backend) for t in timings] == [(1, 0.25, "b1")] * 2


async def test_a_version_without_batching_is_passed_on(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(
        toy_routes().replace(
            '"1": {backend: b1}', '"1": {backend: b1, batching: {max_batch_size: 4}}'
        )
    )
    policy = BatchPolicy.build(runtime)
    assert policy is not None
    plain = make_call(request=rows([1, 2, 3, 4]))
    plain.resolved = runtime.resolve("m", "2")
    backend = Backend()
    await policy(plain, backend)
    assert backend.calls == [plain]
    assert plain.batch is None
    assert BatchPolicy.build(await make_runtime(toy_routes())) is None


async def test_v1_instances_join_after_fitting_the_declared_inputs(policy_for: Build) -> None:
    policy, call = await policy_for("max_batch_size: 8, max_delay: 20ms")
    backend = Backend()

    def instances(*values: list[int]) -> InferenceRequest:  # as v1 JSON decodes: untyped ints
        flat = [v for row in values for v in row]
        tensor = Tensor("input_0", "INT64", [len(values), 4], flat)
        return InferenceRequest(inputs=[tensor], typed=False, columnar=False)

    calls = [call(instances([1, 2, 3, 4])), call(instances([5, 6, 7, 8], [1, 1, 1, 1]))]
    replies = await asyncio.gather(*(policy(c, backend) for c in calls))
    assert len(backend.calls) == 1
    sent = backend.calls[0].request
    assert sent is not None
    assert not sent.columnar
    assert (sent.inputs[0].name, sent.inputs[0].datatype, sent.inputs[0].shape) == (
        "x",
        "FP32",
        [3, 4],
    )
    assert data(replies[1]) == ([2, 4], [50.0, 60.0, 70.0, 80.0, 10.0, 10.0, 10.0, 10.0])
