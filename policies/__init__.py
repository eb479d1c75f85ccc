"""The policy registry: every policy, in chain order, and the chains built from it.

Adding a policy is one module in this package and one line in :data:`POLICIES`. A call of a
given kind runs, in this order, the policies whose ``kinds`` include it and whose ``build``
finds something to do in the route table, then the kind's terminal step:

    infer         auth → traffic → rate_limit → cache → batch → the backend's adapter
    classify, regress
                  auth → traffic → rate_limit → a TF Serving backend
    metadata, ready, status
                  auth → traffic → rate_limit → the backend's metadata and readiness
    passthrough   auth → rate_limit → the backend, bytes as they are
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

from gateway.backends.terminal import Terminal
from gateway.call import CALL_KINDS, CallKind, Next, Policy, compose
from gateway.config.live import Chains, Runtime
from policies.auth import AuthPolicy
from policies.batch import BatchPolicy
from policies.cache import CachePolicy
from policies.rate_limit import RateLimitPolicy
from policies.traffic import TrafficPolicy


class PolicyClass(Protocol):
    """A policy class: its name, the call kinds it serves, and ``build``, which makes it for a
    route table (with that table's settings) or answers None when it has nothing to do."""

    name: str
    kinds: frozenset[CallKind]

    def build(self, runtime: Runtime) -> Policy | None: ...


POLICIES: Final[tuple[PolicyClass, ...]] = (
    AuthPolicy,
    TrafficPolicy,
    RateLimitPolicy,
    CachePolicy,
    BatchPolicy,  # last: a cache hit never waits in a batch queue
)


def build_chains(
    runtime: Runtime, max_body_bytes: int, policies: tuple[PolicyClass, ...] | None = None
) -> Chains:
    """The chain of every call kind for ``runtime``, each policy built once and shared by the
    chains of its kinds; ``policies`` defaults to the registry as it is now."""
    built: list[Policy] = []
    for policy in POLICIES if policies is None else policies:
        made = policy.build(runtime)
        if made is not None:
            built.append(made)
    terminal = Terminal(runtime.table, runtime.backends, max_body_bytes)
    terminals: Mapping[CallKind, Next] = {
        "infer": terminal.infer,
        "classify": terminal.classify,
        "regress": terminal.regress,
        "metadata": terminal.metadata,
        "ready": terminal.ready,
        "status": terminal.status,
        "passthrough": terminal.passthrough,
    }
    return {
        kind: compose([p for p in built if kind in p.kinds], terminals[kind]) for kind in CALL_KINDS
    }


def chain_factory(max_body_bytes: int) -> Callable[[Runtime], Chains]:
    """What the reloader calls for every new route table."""
    return lambda runtime: build_chains(runtime, max_body_bytes)
