"""Traffic: which version serves the call, decided once, after auth and before everything else.

A pinned call (``/versions/{v}`` or ``X-Model-Version``, allowed by the ``pin:<model>`` scope)
keeps its version. Otherwise the version comes from the model's split
(``gateway.traffic.choose``): the rollout controller's live weights or routes.yaml's, without
versions that have no healthy replica, sticky per caller when the model says ``sticky:``, else
smooth weighted round-robin. A ``status`` call without a pin describes every version and
chooses none. The choice is left in ``call.resolved`` for every later step (the cache key
holds it). On the way back the version is reported in ``X-Model-Version``; an inference's
answer is reported to the rollout controller, and a model with ``shadow:`` is offered it.
"""

from __future__ import annotations

import time
from typing import ClassVar, Self

from gateway.call import ANSWER_KINDS, MODEL_KINDS, Call, CallKind, Next, Reply, Resolved
from gateway.config.live import Runtime
from gateway.errors import GatewayError
from gateway.traffic.choose import VERSION_HEADER, healthy, only_version, sticky_key, weights_of


class TrafficPolicy:
    name: ClassVar[str] = "traffic"
    kinds: ClassVar[frozenset[CallKind]] = MODEL_KINDS

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.models = runtime.table.models
        self.chooser = runtime.services.chooser
        self.control = runtime.services.traffic
        self.shadow = runtime.services.shadow
        # each model's only version, resolved (None: a choice to make), found on its first call
        # and kept for this route table: a reload of thousands of models pays nothing for it
        self.only: dict[str, Resolved | None] = {}

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        return cls(runtime)

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        model = call.model or ""
        spec = self.models.get(model)
        if spec is None or (call.pin is not None and call.pin not in spec.versions):
            # An unknown name is answered (404) by the last step, so only callers who passed
            # every step, limits included, learn which names exist.
            return await call_next(call)
        if call.pin is not None:
            call.resolved = self.runtime.resolve(model, call.pin)
        elif call.kind != "status":
            only = self.only
            resolved = only[model] if model in only else only.setdefault(model, self._only(model))
            if resolved is None:
                live = self.control.weights(model) if self.control is not None else None
                weights = weights_of(spec, live)
                if len(weights) > 1:
                    weights = healthy(weights, lambda v: self.runtime.serving(model, v))
                chosen = self.chooser.choose(model, weights, sticky_key(spec.sticky, call))
                resolved = self.runtime.resolve(model, chosen)
            call.resolved = resolved
        version = call.version
        if version is None:
            return await call_next(call)
        if call.kind not in ANSWER_KINDS:
            reply = await call_next(call)
            reply.set_header(VERSION_HEADER, version)
            return reply
        started = time.perf_counter()
        try:
            reply = await call_next(call)
        except GatewayError as exc:
            exc.headers.setdefault(VERSION_HEADER, version)
            self._observe(call, model, version, exc.status, time.perf_counter() - started)
            raise
        reply.set_header(VERSION_HEADER, version)
        self._observe(call, model, version, reply.status, time.perf_counter() - started, reply)
        return reply

    def _only(self, model: str) -> Resolved | None:
        version = only_version(self.models[model])
        return None if version is None else self.runtime.resolve(model, version)

    def _observe(
        self,
        call: Call,
        model: str,
        version: str,
        status: int,
        seconds: float,
        reply: Reply | None = None,
    ) -> None:
        """The answer, for the rollout controller and, on a model with ``shadow:``, the mirror.
        An answer from the cache is neither: it is not this version's work, and counting it
        would flatter a canary's error rate and p99."""
        if call.cache in ("hit", "collapsed"):
            return
        if self.control is not None:
            self.control.observe(model, version, status, seconds)
        spec = self.models[model]
        if spec.shadow is None or self.shadow is None or call.kind != "infer":
            return
        response = reply.response if reply is not None else None
        self.shadow.offer(
            self.runtime.resolve, spec, model, version, status, call.request, response, seconds
        )
