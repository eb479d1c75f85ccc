"""The backend adapter contract: one module per server kind implements it (``ADAPTERS``)."""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

from gateway.backends.readiness import Readiness
from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.backends.upstream import Target
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Signature
from gateway.errors import UnsupportedMethod

ExampleMethod = Literal["classify", "regress"]


def unsupported(method: str, kind: str, model: str) -> UnsupportedMethod:
    return UnsupportedMethod(
        f"{method} is a TF Serving method: model {model!r} is served by a {kind} backend, "
        "which has predict only"
    )


class Adapter(Readiness, Protocol):
    """Translates a call's tensors to one server kind's protocol and back.

    An adapter knows its server's URLs, request and reply shapes, error bodies and readiness
    checks (``Readiness``: the server's, the bulk model index where the server has one, one
    model version's), and declares its own routes.yaml schema (``spec``: a
    :class:`BackendSpec` whose ``kind`` is a ``Literal`` of its name, with its own keys and
    checks). It never knows about tenants or policies; replica choice, retries and deadlines
    are the pool's.

    It is given the pool its spec's ``protocol`` calls for: a ``pool.ReplicaPool`` for http,
    a ``grpc_pool.GRPCPool`` for grpc (kinds whose ``spec.protocols`` include it). A kind
    that speaks HTTP only may declare ``ReplicaPool`` as its parameter.
    """

    kind: ClassVar[str]
    spec: ClassVar[type[BackendSpec]]

    def __init__(self, pool: ReplicaSet) -> None: ...

    async def infer(
        self, request: InferenceRequest, target: Target, signature: Signature | None
    ) -> InferenceResponse:
        """Run one inference; raise a GatewayError for every failure."""

    async def examples(self, method: ExampleMethod, body: bytes, target: Target) -> bytes:
        """TF Serving's ``classify`` or ``regress`` over ``tf.Example`` JSON, answered as the
        server answers it; a kind without them raises :class:`UnsupportedMethod`."""

    async def metadata(self, target: Target) -> Signature | None:
        """The model's inputs and outputs as the server reports them (None if it cannot)."""
