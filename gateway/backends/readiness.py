"""What a server kind says about readiness, and what the health checks (``health``) ask of it.

Three questions, each the server's own answer, never a guess:

- **Is the server up?** (``server_ready``) One request per replica per interval: v2 servers'
  ``/v2/health/live`` (or ServerLive over gRPC; never the strict ``/v2/health/ready``, which is
  false while any one model is not ready), TorchServe's ``/ping`` answering at all, TF Serving's
  status API answering at all.
- **Which models are ready?** (``model_index``) Every model version's state from one bulk call
  where the server has one: Triton's and MLServer's repository index. TorchServe's model list
  (a page per 100 models) says which models are registered, but not whether their workers
  run: its index is not ``complete``, so the workers of a model in use are probed one by one.
- **Is this model version ready?** (``probe``) One request for one model version: what a
  kind without a bulk API is asked (TF Serving), lazily and at a bounded rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.backends.replica import Replica, TargetKey
from gateway.backends.upstream import Target

READY = "READY"  # the state Triton and MLServer give a model version that can serve
_READY: Final = (True, "")  # a ready version's verdict: one tuple for all of them


class IndexUnavailable(Exception):
    """A bulk readiness call that did not give an index (an error status, a malformed reply):
    the checks fall back to per-model probes at the bounded rate."""


class ModelIndex(Protocol):
    """One bulk call's answer: every model version's readiness on one replica."""

    @property
    def complete(self) -> bool:
        """Whether a model version the index does not rule out needs no probe of its own."""

    def verdict(self, key: TargetKey) -> tuple[bool, str] | None:
        """(ready, the server's reason when not) for ``key``; None when the index cannot tell
        (a per-model probe then decides)."""


@dataclass(frozen=True, slots=True)
class RepositoryIndex:
    """Triton's and MLServer's ``POST /v2/repository/index`` (or RepositoryIndex over gRPC):
    ``[{"name", "version", "state", "reason"}]`` for every model in the repository, loaded or
    not. A version not listed is not ready (the server does not have it); a target without a
    native version (the server's default) is ready when any version of the name is."""

    states: Mapping[TargetKey, tuple[bool, str]]
    any_ready: Mapping[str, bool]
    complete: bool = field(default=True, init=False)

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str | None, str, str]]) -> RepositoryIndex:
        """From (name, version or None, state, reason) entries."""
        states: dict[TargetKey, tuple[bool, str]] = {}
        any_ready: dict[str, bool] = {}
        for name, version, state, reason in entries:
            ready = state == READY
            states[(name, version or None)] = (
                _READY if ready else (False, reason or state or "not ready")
            )
            if ready or name not in any_ready:
                any_ready[name] = ready
        return cls(states, any_ready)

    @classmethod
    def from_json(cls, document: Any) -> RepositoryIndex:
        """The REST reply: a JSON array of objects; anything else is ``IndexUnavailable``.
        The array is emptied as it is read: a server's index of 10,000 models is a few MiB of
        objects, and the round's peak, which sets the worker's RSS, then never holds them and
        the index at once (issue 16)."""
        if not isinstance(document, list):
            raise IndexUnavailable("the repository index is not a JSON array")
        return cls.of(_consumed(document))

    def verdict(self, key: TargetKey) -> tuple[bool, str] | None:
        name, version = key
        if version is None:
            ready = self.any_ready.get(name, False)
            return ready, "" if ready else "no ready version in the server's repository index"
        return self.states.get(key, (False, "not in the server's repository index"))

    def lists(self, key: TargetKey) -> bool:
        """Whether the server has ``key`` at all (loaded or not)."""
        name, version = key
        return name in self.any_ready if version is None else key in self.states


def _consumed(document: list[Any]) -> Iterator[tuple[str, str | None, str, str]]:
    """The entries of a REST index, each item dropped from ``document`` once read; equal
    version texts are one string."""
    versions: dict[str, str] = {}
    for i, item in enumerate(document):
        document[i] = None
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise IndexUnavailable("a repository index entry without a name")
        version = item.get("version")
        text = str(version) if version not in (None, "") else None
        yield (
            name,
            None if text is None else versions.setdefault(text, text),
            str(item.get("state") or ""),
            str(item.get("reason") or ""),
        )


@dataclass(frozen=True, slots=True)
class RegisteredModels:
    """TorchServe's management ``GET /models``: the names registered, not their workers. A
    model that is not registered is not ready; one that is may still have no worker ready,
    which only its own description tells (``complete`` is False)."""

    names: frozenset[str]
    complete: bool = field(default=False, init=False)

    def verdict(self, key: TargetKey) -> tuple[bool, str] | None:
        if key[0] in self.names:
            return None
        return False, "not registered on the server"


class Readiness(Protocol):
    """A server kind's readiness checks (each adapter implements them). Each may raise
    ``aiohttp.ClientError``, ``OSError``, ``TimeoutError`` or ``ValueError`` for a server
    that does not answer sensibly; the checker counts that as "not ready"."""

    async def server_ready(self, replica: Replica) -> bool | None:
        """Is the server on ``replica`` up? None: the kind has no such check."""

    async def model_index(self, replica: Replica) -> ModelIndex | None:
        """Every model version's readiness from one bulk call; None: the kind has no bulk
        API. Raises :class:`IndexUnavailable` when the call fails."""

    async def probe(self, replica: Replica, target: Target) -> bool:
        """Is ``target`` ready on ``replica``? The server kind's real readiness, not a ping."""
