"""Builders the policy tests share: a routes.yaml of toy backends, calls, callers, and a
``call_next`` that records what reached it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.auth.authenticator import Caller
from gateway.auth.jwt import Principal
from gateway.call import Call, CallKind, Reply
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Tensor
from gateway.errors import GatewayError
from gateway.headers import Headers
from gateway.store import Tenant

SECRET = b"unit-test-server-secret-0123456789"


def toy_routes(model: str = "", extra: str = "", versions: Sequence[str] = ("1", "2")) -> str:
    """Model ``m`` with ``versions`` (default "1"), each on its own toy backend ``b<v>``;
    ``model`` is indented under ``m``, ``extra`` is top level."""
    backends = "\n".join(
        f'  b{v}: {{kind: toy, urls: ["http://b{v}.invalid"], answer: {v}}}' for v in versions
    )
    listed = "\n".join(f'      "{v}": {{backend: b{v}}}' for v in versions)
    return f"""
backends:
{backends}
models:
  m:
    default: "{versions[0]}"
    versions:
{listed}
{model}
{extra}
"""


def tensors(
    *values: float, request_id: str | None = None, datatype: str = "FP32"
) -> InferenceRequest:
    return InferenceRequest(
        inputs=[Tensor("x", datatype, [len(values)], list(values))], id=request_id
    )


def make_call(
    model: str = "m",
    *,
    kind: CallKind = "infer",
    headers: Sequence[tuple[str, str]] = (),
    pin: str | None = None,
    peer: str | None = None,
    request: InferenceRequest | None = None,
    caller: Caller | None = None,
    required: tuple[str, ...] | None = None,
) -> Call:
    """A call as the HTTP frontend makes it: the scopes it needs follow from kind and pin."""
    if required is None:
        action = "predict" if kind == "infer" else "metadata"
        required = (f"{action}:{model}", f"pin:{model}") if pin else (f"{action}:{model}",)
    return Call(
        kind,
        "req-1",
        Headers.of(headers),
        model=model,
        pin=pin,
        peer=peer,
        required=required,
        request=request if request is not None or kind != "infer" else tensors(1.0),
        caller=caller,
    )


def make_caller(
    tenant: str | None = "acme",
    *,
    plan: str | None = None,
    subject: str = "key-1",
    via: str = "api_key",
    scopes: Sequence[str] = ("*",),
) -> Caller:
    principal = Principal(subject, tenant, frozenset(scopes), "test", None, via)
    return Caller(principal, Tenant(tenant, plan=plan) if tenant is not None else None)


def answer(value: float) -> Reply:
    return Reply(response=InferenceResponse(outputs=[Tensor("y", "FP32", [1], [value])]))


def value_of(reply: Reply) -> float:
    """The one value of the answer's tensors (decoded from the cache's v2 JSON when needed)."""
    response = reply.tensors()
    assert response is not None
    data = response.outputs[0].data
    assert len(data) == 1
    return float(data[0])


@dataclass
class Downstream:
    """A ``call_next`` that records each call (and its version, as it was then) and answers
    ``reply(n)`` for its n-th call (1, 2, ...), or raises ``error`` when one is set."""

    reply: Callable[[int], Reply] = answer
    error: GatewayError | None = None
    calls: list[Call] = field(default_factory=list)
    versions: list[str | None] = field(default_factory=list)

    async def __call__(self, call: Call) -> Reply:
        self.calls.append(call)
        self.versions.append(call.version)
        if self.error is not None:
            raise self.error
        return self.reply(len(self.calls))
