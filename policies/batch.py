"""Gateway-side batching, for model versions with a ``batching:`` section: the last step of
the ``infer`` chain (after the cache: a hit never waits in a batch queue).

Calls for one version whose inputs agree in every dimension but the first (and in datatype)
are joined along dimension 0 and sent as one call; the reply is split back by rows. Each call
is checked against the model's inputs before it joins (a malformed one fails alone). A full
queue answers 503 ``overloaded`` with ``Retry-After``; a call whose deadline passes while
queued answers 504 and is never sent (``gateway.batching``).
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.batching.batcher import Batcher
from gateway.call import Call, CallKind, Next, Reply
from gateway.config.live import Runtime


class BatchPolicy:
    name: ClassVar[str] = "batch"
    kinds: ClassVar[frozenset[CallKind]] = frozenset({"infer"})

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        specs = {
            (model, name): version.batching
            for model, spec in runtime.table.models.items()
            for name, version in spec.versions.items()
            if version.batching is not None
        }
        if not specs:
            return None
        return cls(Batcher(specs, runtime.services.batch_metrics))

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        return await self.batcher.run(call, call_next)
