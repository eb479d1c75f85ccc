"""A toy backend kind and a toy policy: each is one class plus one registry line.

``ToyBackend`` follows the :class:`~gateway.backends.adapter.Adapter` protocol with a spec of
its own (``kind: toy`` and its own key, ``answer``); registered in
``gateway.backends.ADAPTERS`` it serves models without a socket: its probe says ready, its
inference answers ``answer`` in one FP32 tensor. ``ToyPolicy`` follows the policy registry's
contract (``name``, ``kinds``, ``build``) and marks every reply of its chains.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field

from gateway.backends.pool import ReplicaPool
from gateway.backends.replica import Replica
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target
from gateway.call import Call, CallKind, Next, Reply
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature, Tensor
from gateway.config.live import Runtime

TOY_HEADER = "X-Toy"


class ToySpec(BackendSpec):
    kind: Literal["toy"]
    answer: float = Field(default=7.0, description="What every inference answers.")


class ToyBackend:
    kind: ClassVar[str] = "toy"
    spec: ClassVar[type[BackendSpec]] = ToySpec

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool
        spec = pool.spec
        self.answer = spec.answer if isinstance(spec, ToySpec) else 7.0
        self.requests: list[tuple[InferenceRequest, Target]] = []

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        self.requests.append((request, target))
        output = Tensor("y", "FP32", [1], [self.answer])
        return InferenceResponse(outputs=[output], model_version=target.version)

    async def metadata(self, target: Target) -> Signature | None:
        return target.declared

    async def probe(self, replica: Replica, target: Target) -> bool:
        return True

    async def server_ready(self, replica: Replica) -> bool | None:
        return None  # no server check, no bulk index: per-model probes only

    async def model_index(self, replica: Replica) -> None:
        return None


class ToyPolicy:
    """Adds ``X-Toy`` to the replies of its kinds, and notes what each call held when it ran
    (its version, limit decision and cache result: which steps ran before it). Every policy
    ``build`` made is kept in ``made``; :func:`toy_policy` gives a class with a list of its own.
    """

    name: ClassVar[str] = "toy"
    kinds: ClassVar[frozenset[CallKind]] = frozenset({"infer"})
    made: ClassVar[list[ToyPolicy]] = []

    def __init__(self) -> None:
        self.saw: list[tuple[str | None, str | None, str | None]] = []

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        made = cls()
        cls.made.append(made)
        return made

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        self.saw.append((call.version, call.limited, call.cache))
        reply = await call_next(call)
        reply.set_header(TOY_HEADER, "on")
        return reply


def toy_policy(kinds: frozenset[CallKind] = frozenset({"infer"})) -> type[ToyPolicy]:
    """A fresh :class:`ToyPolicy` class for ``kinds``, with its own ``made`` list."""

    class Toy(ToyPolicy):
        made: ClassVar[list[ToyPolicy]] = []

    Toy.kinds = kinds
    return Toy


class IdlePolicy(ToyPolicy):
    """A policy whose ``build`` finds nothing to do in any route table."""

    name: ClassVar[str] = "idle"
    kinds: ClassVar[frozenset[CallKind]] = frozenset({"infer", "metadata"})

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        return None
