"""The backends' gRPC side (``protocol: grpc``), imported when a backend first needs it.

grpcio's native library and the gRPC wires cost a worker about 10 MiB of RSS (bench/README.md,
the routes curve); a gateway whose routes.yaml names no gRPC backend, and which has no gRPC
port, never loads them. Building a runtime must not wait on an import on the event loop, so
the reloader calls :func:`load_grpc` from the thread that reads the file whenever the table
names a gRPC backend (:func:`names_grpc`); the functions below then only look classes up.

Contract: :func:`grpc_pool` is the pool of a backend whose protocol is ``grpc``;
:func:`v2_over_grpc` and :func:`tfserving_over_grpc` the wire over such a pool, or ``None``
for any other pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.backends.replica_set import ReplicaSet
from gateway.backends.spec import BackendSpec
from gateway.telemetry.metrics import BackendMetrics

if TYPE_CHECKING:
    from gateway.backends.kserve_grpc import V2GRPC
    from gateway.backends.tfserving_grpc import TFServingGRPC


def names_grpc(specs: Iterable[BackendSpec]) -> bool:
    """Whether any of these backends speaks gRPC."""
    return any(spec.protocol == "grpc" for spec in specs)


def load_grpc() -> None:
    """Import the gRPC wires (and grpcio): slow the first time, so call it off the loop."""
    from gateway.backends.kserve_grpc import V2GRPC  # noqa: F401
    from gateway.backends.tfserving_grpc import TFServingGRPC  # noqa: F401


def grpc_pool(name: str, spec: BackendSpec, metrics: BackendMetrics | None) -> ReplicaSet:
    """The replicas of a gRPC backend, each behind its own channel."""
    from gateway.backends.grpc_pool import GRPCPool

    return GRPCPool(name, spec, metrics)


def v2_over_grpc(pool: ReplicaSet) -> V2GRPC | None:
    """The KServe v2 gRPC wire over ``pool``, if it is a gRPC pool."""
    from gateway.backends.grpc_pool import GRPCPool
    from gateway.backends.kserve_grpc import V2GRPC

    return V2GRPC(pool) if isinstance(pool, GRPCPool) else None


def tfserving_over_grpc(pool: ReplicaSet) -> TFServingGRPC | None:
    """TF Serving's PredictionService wire over ``pool``, if it is a gRPC pool."""
    from gateway.backends.grpc_pool import GRPCPool
    from gateway.backends.tfserving_grpc import TFServingGRPC

    return TFServingGRPC(pool) if isinstance(pool, GRPCPool) else None
