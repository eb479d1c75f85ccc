"""One request, whatever protocol brought it: the Call, its Reply, and the Policy contract.

    frontend (gateway.edge) ─► Call ─► the chain of its kind ─► Reply ─► the same frontend

A frontend decodes its wire format into a :class:`Call`, runs the chain of the call's kind on
the route table it took (the whole call runs on that one table), and encodes the
:class:`Reply`, or renders the error, in its own format. Policies read the call and fill its
typed fields on the way; nothing after the frontend knows the wire format.

A :class:`Policy` is ``async def __call__(call, call_next) -> Reply``: it may answer at once
(a cache hit), raise a :class:`~gateway.errors.GatewayError` (401, 429) or call the next step
and look at the reply on its way back. :func:`compose` builds a chain once per route table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Tracer

from gateway.auth.authenticator import Caller as Caller  # part of the contract: call.caller
from gateway.auth.client_certs import ClientCert
from gateway.backends.live import Resolved as Resolved  # part of the contract: call.resolved
from gateway.codecs import raw, v2
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, ModelInfo
from gateway.config.model import PassthroughRoute
from gateway.errors import BadRequest
from gateway.headers import Headers
from gateway.telemetry import tracing

CallKind = Literal["infer", "classify", "regress", "metadata", "ready", "status", "passthrough"]
"""``infer``: tensors in, tensors out. ``classify``, ``regress``: TF Serving's methods over
``tf.Example`` features, whose JSON goes to a TF Serving backend as it came. ``metadata``,
``ready``: one model version described. ``status``: every version of a model (or the pinned
one). ``passthrough``: opaque bytes relayed to a backend as they are."""

CALL_KINDS: Final[tuple[CallKind, ...]] = (
    "infer", "classify", "regress", "metadata", "ready", "status", "passthrough"
)  # fmt: skip
ANSWER_KINDS: Final = frozenset[CallKind]({"infer", "classify", "regress"})  # the model's work
MODEL_KINDS: Final = ANSWER_KINDS | frozenset[CallKind]({"metadata", "ready", "status"})
CacheResult = Literal["hit", "miss", "stale", "collapsed", "bypass"]
CallOrigin = Literal["live", "job"]
"""``live``: a caller is waiting on a frontend. ``job``: an async job replayed by a job
worker; its caller was authenticated at submit (``caller`` is set), so the auth step only
re-authorizes it."""


class Payload(Protocol):
    """What the caller sent, as its frontend received it; read only when a step asks."""

    async def read(self) -> bytes:
        """The whole body, bounded by the frontend (413 beyond its limit)."""

    def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives (passthrough), bounded the same way."""

    @property
    def length(self) -> int | None:
        """The declared size, when the frontend knows it before reading."""


Decoder = Callable[[bytes], InferenceRequest]


@dataclass(slots=True)
class CacheProbe:
    """The cache entry a call may be answered from, read in the rate-limit step's store round
    trip (one round trip for the limit and the lookup), and what that read found."""

    group: str
    key: str
    lock: float  # seconds a miss holds back identical misses (the fill lock's time to live)
    found: bytes | None = None
    filling: bool | None = None  # whether the round trip took the fill lock; None: not tried
    read: bool = False  # whether the round trip was made (a store outage makes none)

    @property
    def flight(self) -> str:
        return f"{self.group}|{self.key}"


@dataclass(slots=True, eq=False)
class Call:
    """One request in the chain. The frontend fills what the caller said; every step after it
    fills what it learns, in typed fields."""

    kind: CallKind
    request_id: str
    headers: Headers
    method: str = "POST"
    path: str = ""
    query: str = ""
    scheme: str = "http"
    peer: str | None = None  # the client's address
    client_cert: ClientCert | None = None  # the TLS client certificate the edge verified
    model: str | None = None  # as the caller named it (not yet known to be served)
    pin: str | None = None  # the version the caller asked for (path or X-Model-Version)
    required: tuple[str, ...] = ()  # the scopes this call needs
    payload: Payload | None = None
    decoder: Decoder | None = None  # the frontend's codec: payload bytes -> tensors
    source: Callable[[], InferenceRequest] | None = None  # or: tensors from a parsed message
    request: InferenceRequest | None = None  # the tensors, once decoded (see inference())
    route: PassthroughRoute | None = None  # passthrough: the route the path matched
    deadline: float | None = None  # time.monotonic() by which the caller wants its answer (gRPC)
    origin: CallOrigin = "live"  # where the call came from (a job's replay: "job")
    # -- what the chain learns --
    caller: Caller | None = None  # auth: who is calling (None: anonymous)
    auth_failure: str | None = None  # auth: why it refused, for the metrics
    resolved: Resolved | None = None  # traffic: the version that serves this call
    limited: Literal["allowed", "rejected"] | None = None  # rate limit: the decision
    probe: CacheProbe | None = None  # rate limit → cache: the entry read with the limits
    cache: CacheResult | None = None  # cache: what it did, for the metrics and the log
    batch: int | None = None  # batch: the rows of the batch this call was sent in

    @property
    def version(self) -> str | None:
        """The version serving this call, once the traffic step chose it."""
        return self.resolved.version if self.resolved is not None else None

    @property
    def tenant(self) -> str | None:
        return self.caller.principal.tenant if self.caller is not None else None

    async def inference(self) -> InferenceRequest:
        """The call's tensors, decoded on first use (a call refused earlier never parses)."""
        request = self.request
        if request is None:
            if self.source is not None:
                request = self.request = self.source()
            elif self.decoder is not None and self.payload is not None:
                body = await self.payload.read()
                if not raw.loaded() and b"binary_data" in body:
                    # binary tensor data, in or asked out: numpy loaded now, off the loop
                    await asyncio.to_thread(raw.load)
                request = self.request = self.decoder(body)
            else:
                raise BadRequest("this call carries no tensors")
        return request


@dataclass(slots=True, eq=False)
class Reply:
    """What the chain answers; the frontend encodes it. Tensors for ``infer`` (or, from the
    cache, their encoding in KServe v2 JSON, which a v2 frontend may send as it is), a
    :class:`ModelInfo` for the describing kinds, bytes or a stream for ``passthrough``."""

    status: int = 200
    response: InferenceResponse | None = None
    v2_json: bytes | None = None  # the answer already encoded (KServe v2 JSON, no id)
    info: ModelInfo | None = None
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None  # releases the stream's connection
    headers: list[tuple[str, str]] = field(default_factory=list)  # sent with the answer

    def tensors(self) -> InferenceResponse | None:
        """The answer's tensors (decoded from ``v2_json`` when that is all there is)."""
        if self.response is None and self.v2_json is not None:
            self.response = v2.decode_response(self.v2_json)
        return self.response

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:  # a loop, no generator; the name as given first
            if key == name or key.lower() == wanted:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        """Add ``name`` unless a step nearer the backend already set it."""
        if self.header(name) is None:
            self.headers.append((name, value))


Next = Callable[[Call], Awaitable[Reply]]


class Policy(Protocol):
    """One step of a chain: auth, traffic, rate limit, cache...

    ``name`` names its span (``policy <name>``), ``kinds`` the call kinds whose chains it
    belongs to. Stateless per call (what it learns goes into the call); built once per route
    table by ``build``, which returns None when the table gives it nothing to do.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[CallKind]]

    async def __call__(self, call: Call, call_next: Next) -> Reply: ...


def compose(policies: Sequence[Policy], terminal: Next) -> Next:
    """``policies`` in order around ``terminal`` (the step that reaches the backend).

    With tracing on (decided here, once), each step runs in a span of its own."""
    step = terminal
    tracer = tracing.TRACER
    for policy in reversed(policies):
        step = _bind(policy, step) if tracer is None else _traced(policy, step, tracer)
    return step


def _bind(policy: Policy, call_next: Next) -> Next:
    # A plain function handing back the policy's own coroutine: no coroutine of its own
    # around it (one frame fewer per step and request).
    def step(call: Call) -> Awaitable[Reply]:
        return policy(call, call_next)

    return step


def _traced(policy: Policy, call_next: Next, tracer: Tracer) -> Next:
    """The step in a span covering the policy's own work: the span ends when the policy hands
    on to the next step (or answers), so the steps are siblings under the server span and each
    one's duration is its own cost."""
    name = "policy " + policy.name

    async def step(call: Call) -> Reply:
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).is_recording():
            # Not sampled: a child span would record nothing, so make none (sampled-out
            # requests then cost about what they cost with tracing off).
            return await policy(call, call_next)
        span = tracer.start_span(name, context=parent)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        ended = False

        async def downstream(call: Call) -> Reply:
            nonlocal ended
            if not ended:
                ended = True
                span.end()
            inner = otel_context.attach(parent)
            try:
                return await call_next(call)
            finally:
                otel_context.detach(inner)

        try:
            return await policy(call, downstream)
        except Exception as exc:
            if not ended:
                span.set_attribute("error.type", getattr(exc, "code", type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            if not ended:
                span.end()

    return step
