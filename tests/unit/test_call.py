"""The chain's contract on its own: Headers, Call, Reply and compose()."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.call import Call, CallKind, Next, Policy, Reply, compose
from gateway.codecs import v2
from gateway.codecs.tensors import InferenceRequest
from gateway.errors import BadRequest, Unauthorized
from gateway.headers import Headers
from gateway.telemetry import tracing

pytestmark = pytest.mark.anyio
BODY = b'{"id": "r1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}]}'


# -- Headers ----------------------------------------------------------------------------------


def test_headers_match_names_in_any_case() -> None:
    headers = Headers.of([("X-API-Key", "k"), ("Accept", "a/b")])
    assert headers.get("x-api-key") == headers.get("X-Api-Key") == "k"
    assert headers.get("missing") is None
    assert headers.get("missing", "fallback") == "fallback"
    assert "ACCEPT" in headers
    assert "missing" not in headers
    assert 42 not in headers
    assert list(headers) == ["x-api-key", "accept"]


def test_raw_asgi_pairs_are_read_as_they_come() -> None:
    headers = Headers([(b"cookie", b"a=1"), (b"x-caf\xe9", b"cr\xe8me")])
    assert headers.get("X-Caf\xe9") == "cr\xe8me"  # latin-1 both ways
    assert headers.items() == [("cookie", "a=1"), ("x-caf\xe9", "cr\xe8me")]


def test_getall_keeps_every_value_in_order() -> None:
    headers = Headers.of([("Cookie", "a=1"), ("Accept", "x"), ("cookie", "b=2")])
    assert headers.getall("COOKIE") == ["a=1", "b=2"]
    assert headers.getall("missing") == []
    assert headers.get("cookie") == "a=1"  # get: the first, where repeats are harmless


def test_one_refuses_a_header_that_appears_twice() -> None:
    headers = Headers.of([("Authorization", "Bearer a"), ("authorization", "Bearer b")])
    with pytest.raises(BadRequest, match="Authorization") as raised:
        headers.one("Authorization")
    assert raised.value.status == 400
    single = Headers.of([("Authorization", "Bearer a")])
    assert single.one("AUTHORIZATION") == "Bearer a"
    assert single.one("x-api-key") is None


PAIRS = [
    [],
    [(b"x-api-key", b"k")],
    [(b"x-api-key", b"")],  # present, empty: not absent
    [(b"cookie", b"a=1"), (b"x-api-key", b"k"), (b"cookie", b"b=2")],
    [(b"x-api-key", b"k1"), (b"accept", b"x"), (b"x-api-key", b"k2")],
    [(b"x-caf\xe9", b"cr\xe8me"), (b"x-caf\xe9", b"cr\xe8me")],
]


@pytest.mark.parametrize("raw", PAIRS)
@pytest.mark.parametrize("name", ["x-api-key", "cookie", "x-caf\xe9", "accept", "missing"])
def test_lookups_by_wire_name_agree_with_lookups_by_text(
    raw: list[tuple[bytes, bytes]], name: str
) -> None:
    """value()/first() (by wire name, undecoded, on the index) answer what one()/get() and a
    plain scan of the pairs answer, the refusal of a repeat included, in any lookup order."""
    wire = name.encode("latin-1")
    found = [v for k, v in raw if k == wire]
    for order in ("text first", "wire first"):
        headers = Headers(raw)
        if order == "text first":
            assert headers.get(name) == (found[0].decode("latin-1") if found else None)
        assert headers.first(wire) == (found[0] if found else None)
        assert (name in headers) == bool(found)
        if len(found) > 1:
            with pytest.raises(BadRequest, match=f"the {name} header appears more than once"):
                headers.value(wire)
            with pytest.raises(BadRequest, match=f"the {name} header appears more than once"):
                headers.one(name)
        else:
            assert headers.value(wire) == (found[0] if found else None)
            assert headers.one(name) == (found[0].decode("latin-1") if found else None)


def test_items_and_repr() -> None:
    headers = Headers.of([("X-A", "1"), ("x-b", "2"), ("X-A", "3")])
    assert headers.items() == [("x-a", "1"), ("x-b", "2"), ("x-a", "3")]
    assert repr(headers) == "Headers(['x-a', 'x-b', 'x-a'])"  # names only: no secrets


# -- Call ---------------------------------------------------------------------------------------


class CountingPayload:
    """A body read from memory, counting its reads."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.reads = 0

    async def read(self) -> bytes:
        self.reads += 1
        return self.body

    async def stream(self) -> AsyncIterator[bytes]:
        yield self.body

    @property
    def length(self) -> int | None:
        return len(self.body)


class CountingDecoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: bytes) -> InferenceRequest:
        self.calls += 1
        return v2.decode_request(body)


def call_with(payload: CountingPayload | None, decoder: CountingDecoder | None) -> Call:
    return Call("infer", "r", Headers(), model="m", payload=payload, decoder=decoder)


async def test_a_calls_tensors_are_decoded_once_and_only_when_asked() -> None:
    payload, decoder = CountingPayload(BODY), CountingDecoder()
    call = call_with(payload, decoder)
    assert (payload.reads, decoder.calls) == (0, 0)  # a call refused early never parses
    assert call.request is None
    request = await call.inference()
    assert request.inputs[0].data == [1, 2]
    assert request.id == "r1"
    assert await call.inference() is request
    assert call.request is request
    assert (payload.reads, decoder.calls) == (1, 1)


async def test_tensors_given_up_front_are_not_decoded_again() -> None:
    payload, decoder = CountingPayload(BODY), CountingDecoder()
    given = InferenceRequest(inputs=[])
    call = Call("infer", "r", Headers(), payload=payload, decoder=decoder, request=given)
    assert await call.inference() is given
    assert (payload.reads, decoder.calls) == (0, 0)


@pytest.mark.parametrize("missing", ["payload", "decoder"])
async def test_a_call_without_tensors_is_a_400_when_asked_for_them(missing: str) -> None:
    call = call_with(
        None if missing == "payload" else CountingPayload(BODY),
        None if missing == "decoder" else CountingDecoder(),
    )
    with pytest.raises(BadRequest, match="no tensors"):
        await call.inference()


async def test_a_malformed_body_fails_when_decoded_not_before() -> None:
    call = call_with(CountingPayload(b"{not json"), CountingDecoder())
    with pytest.raises(BadRequest):
        await call.inference()
    assert call.request is None


def test_a_calls_version_and_tenant_are_unknown_until_learnt() -> None:
    call = Call("infer", "r", Headers())
    assert call.version is None
    assert call.tenant is None


# -- Reply --------------------------------------------------------------------------------------


def test_set_header_does_not_overwrite_a_header_set_nearer_the_backend() -> None:
    reply = Reply()
    reply.set_header("X-Model-Version", "2")
    reply.set_header("x-model-version", "1")
    assert reply.headers == [("X-Model-Version", "2")]
    assert reply.header("X-MODEL-VERSION") == "2"
    assert reply.header("missing") is None
    reply.set_header("Cache-Status", "hit")
    assert reply.headers == [("X-Model-Version", "2"), ("Cache-Status", "hit")]


def test_replies_do_not_share_their_headers() -> None:
    one, two = Reply(), Reply()
    one.set_header("X-A", "1")
    assert two.headers == []


# -- compose ------------------------------------------------------------------------------------


class Step:
    """A policy that notes its way in and out of the chain; or answers at once (a cache hit),
    or refuses (a 401), as ``does`` says."""

    name: ClassVar[str] = "step"
    kinds: ClassVar[frozenset[CallKind]] = frozenset({"infer"})

    def __init__(self, log: list[str], does: str) -> None:
        self.log = log
        self.does = does

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        if self.does == "answer":
            self.log.append(f"answer {self.name}")
            return Reply(headers=[("X-Step", self.name)])
        if self.does == "refuse":
            self.log.append(f"refuse {self.name}")
            raise Unauthorized("no")
        self.log.append(f"in {self.name}")
        reply = await call_next(call)
        self.log.append(f"out {self.name}")
        reply.headers.append(("X-Step", self.name))
        return reply


def step(name: str, log: list[str], does: str = "pass") -> Policy:
    class Named(Step):
        pass

    Named.name = name
    return Named(log, does)


def terminal_for(log: list[str]) -> Next:
    async def terminal(call: Call) -> Reply:
        log.append("terminal")
        return Reply(headers=[("X-Step", "terminal")])

    return terminal


def steps(reply: Reply) -> list[str]:
    return [v for k, v in reply.headers if k == "X-Step"]


@pytest.fixture(params=["plain", "traced"])
def spans(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InMemorySpanExporter | None]:
    """compose() with tracing off, and on (each step in a span of its own)."""
    if request.param == "plain":
        monkeypatch.setattr(tracing, "TRACER", None)
        yield None
        return
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "TRACER", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


async def run(chain: Next, spans: InMemorySpanExporter | None) -> Reply:
    call = Call("infer", "r", Headers())
    if spans is None or tracing.TRACER is None:
        return await chain(call)
    with tracing.TRACER.start_as_current_span("server"):
        return await chain(call)


async def test_compose_runs_in_order_and_unwinds_in_reverse(
    spans: InMemorySpanExporter | None,
) -> None:
    log: list[str] = []
    chain = compose([step("a", log), step("b", log), step("c", log)], terminal_for(log))
    reply = await run(chain, spans)
    assert log == ["in a", "in b", "in c", "terminal", "out c", "out b", "out a"]
    assert steps(reply) == ["terminal", "c", "b", "a"]
    if spans is not None:
        finished = [s.name for s in spans.get_finished_spans()]
        assert sorted(finished) == ["policy a", "policy b", "policy c", "server"]


async def test_a_step_that_answers_ends_the_chain(spans: InMemorySpanExporter | None) -> None:
    log: list[str] = []
    chain = compose([step("a", log), step("b", log, "answer"), step("c", log)], terminal_for(log))
    reply = await run(chain, spans)
    assert log == ["in a", "answer b", "out a"]
    assert steps(reply) == ["b", "a"]


async def test_an_error_unwinds_through_the_earlier_steps(
    spans: InMemorySpanExporter | None,
) -> None:
    log: list[str] = []
    chain = compose([step("a", log), step("b", log, "refuse")], terminal_for(log))
    with pytest.raises(Unauthorized):
        await run(chain, spans)
    assert log == ["in a", "refuse b"]
    if spans is not None:
        refused = next(s for s in spans.get_finished_spans() if s.name == "policy b")
        assert refused.attributes is not None
        assert refused.attributes["error.type"] == "unauthorized"


async def test_an_empty_chain_is_the_terminal() -> None:
    log: list[str] = []
    terminal = terminal_for(log)
    assert compose([], terminal) is terminal
