"""Which version serves an unpinned request: the weighted split, sticky callers, health.

- **Weights** come from the rollout controller while a rollout runs (``Services.traffic``),
  else routes.yaml's ``traffic``, else 100% the default version.
- **Health**: a version with no available replica for its target gets weight 0 and its share
  goes to the others; when every weighted version is down the weights stay as they are (the
  request then fails with the backend's own 503).
- **Split**: smooth weighted round-robin (nginx's), per model in each worker process: after
  ``n`` choices every version has had within one request of ``n × weight / total``.
- **Sticky**: weighted rendezvous hashing on the caller's key: each version scores
  ``w / -ln(u)`` with ``u`` a BLAKE2b hash of (model, key, version) mapped into (0, 1), and the
  best score wins. The same caller keeps its version while the weights stay, and a weight
  change moves only the callers it must (a version whose weight grows only gains callers).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping

from gateway.config import Model
from gateway.errors import NotFound
from gateway.runtime import Runtime

Weights = dict[str, float]
VERSION_HEADER = "X-Model-Version"
CHOOSE = "traffic.choose"  # ctx.extra: the endpoint left the version to the traffic policy
_SCALE = 2.0**64


def weights_of(spec: Model, live: Mapping[str, float] | None = None) -> Weights:
    """The model's split in effect: ``live`` (a rollout's), else routes.yaml's, else default."""
    if live is not None:
        chosen = {v: float(w) for v, w in live.items() if v in spec.versions and w > 0}
        if chosen:
            return chosen
    if spec.traffic:
        chosen = {v: float(w) for v, w in spec.traffic.items() if w > 0}
        if chosen:
            return chosen
    return {spec.default_version: 1.0}


def healthy(runtime: Runtime, model: str, weights: Weights) -> Weights:
    """``weights`` without the versions that have no available replica; unchanged when that
    would leave none (then every choice fails the same way, with the backend's 503)."""
    if len(weights) < 2:
        return weights
    now = time.monotonic()
    kept = {v: w for v, w in weights.items() if serving(runtime, model, v, now)}
    return kept or weights


def serving(runtime: Runtime, model: str, version: str, now: float | None = None) -> bool:
    """Whether ``version`` of ``model`` has a replica that can take requests (not ejected,
    ready for that model version); False for a name the table no longer has."""
    try:
        resolved = runtime.resolve(model, version)
    except NotFound:
        return False
    key = resolved.target.key
    now = time.monotonic() if now is None else now
    return any(r.available(key, now) for r in resolved.backend.pool.replicas)


def rendezvous(model: str, key: str, weights: Mapping[str, float]) -> str:
    """The version ``key`` sticks to: the highest ``w / -ln(u)`` (weighted rendezvous)."""
    best, best_score = "", -1.0
    prefix = f"{model}\x00{key}\x00".encode()
    for version in sorted(weights):
        weight = weights[version]
        if weight <= 0:
            continue
        digest = hashlib.blake2b(prefix + version.encode(), digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / _SCALE  # strictly inside (0, 1)
        score = weight / -math.log(u)
        if score > best_score:
            best, best_score = version, score
    return best


class RoundRobin:
    """Smooth weighted round-robin for one model (nginx's ``ngx_http_upstream_get_peer``)."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def choose(self, weights: Mapping[str, float]) -> str:
        current = self._current
        if current.keys() != weights.keys():
            # A version came or went (weights changed, or health): keep the others' standing.
            self._current = current = {v: current.get(v, 0.0) for v in weights}
        total = 0.0
        best = ""
        best_value = -math.inf
        for version, weight in weights.items():
            value = current[version] + weight
            current[version] = value
            total += weight
            if value > best_value:
                best, best_value = version, value
        current[best] -= total
        return best


class Chooser:
    """The per-process traffic state: one :class:`RoundRobin` per model."""

    def __init__(self) -> None:
        self._models: dict[str, RoundRobin] = {}

    def choose(self, model: str, weights: Mapping[str, float], sticky: str | None = None) -> str:
        if len(weights) == 1:
            return next(iter(weights))
        if sticky is not None:
            return rendezvous(model, sticky, weights)
        robin = self._models.get(model)
        if robin is None:
            robin = self._models[model] = RoundRobin()
        return robin.choose(weights)
