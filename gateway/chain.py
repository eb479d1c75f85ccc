"""The per-request Context and the Policy contract the policy chain is built from.

A policy is ``async def __call__(request, ctx, call_next) -> Response``: it may answer at once
(401, 429, a cache hit) or call the next step and look at the response on its way back.
Policies are stateless; per-request state lives in ``ctx``. A policy's constructor keywords are
its routes.yaml schema. The chain is built once per route table, not per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

Next = Callable[[Request, "Context"], Awaitable[Response]]


@dataclass(slots=True)
class Context:
    """What one request carries through the chain. Route choice is made once and kept here."""

    request_id: str
    model: str | None = None
    version: str | None = None
    pinned: bool = False
    required: tuple[str, ...] = ()  # the scopes this call needs (set by the endpoint)
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)


class Policy(Protocol):
    """One step of the chain: auth, rate limit, cache, traffic choice, ..."""

    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response: ...


def build_chain(policies: Sequence[Policy], terminal: Next) -> Next:
    """Compose ``policies`` in order around ``terminal`` (the step that calls the backend)."""
    step = terminal
    for policy in reversed(policies):
        step = _bind(policy, step)
    return step


def _bind(policy: Policy, call_next: Next) -> Next:
    async def step(request: Request, ctx: Context) -> Response:
        return await policy(request, ctx, call_next)

    return step
