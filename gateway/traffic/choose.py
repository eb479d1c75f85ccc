"""Which version serves an unpinned request: the weighted split, sticky callers, health.

- **Weights** come from the rollout controller while a rollout runs (``TrafficControl``),
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
from collections.abc import Callable, Mapping
from typing import Protocol

from gateway.call import Call
from gateway.config.model import Model
from gateway.headers import Headers
from gateway.traffic.config import Sticky

Weights = dict[str, float]
VERSION_HEADER = "X-Model-Version"
_SCALE = 2.0**64


class TrafficControl(Protocol):
    """What the traffic policy asks of the rollout controller (``gateway.traffic.rollout``)."""

    def weights(self, model: str) -> Mapping[str, float] | None:
        """The model's split right now (percent per version), or None: routes.yaml's holds."""

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        """One answered call of ``model`` served by ``version``, for the rollout gates."""

    def arm(self, model: str, version: str) -> str | None:
        """``canary`` or ``stable`` while ``model`` has a rollout, else None (for traces)."""


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


def only_version(spec: Model) -> str | None:
    """The version every unpinned call of ``spec`` gets whatever the weights, health or
    stickiness, when the model has one version (a rollout's weights name only versions the
    model has, and one weight is chosen without a draw); None when there is a choice."""
    weights = weights_of(spec)
    if len(spec.versions) != 1 or len(weights) != 1:
        return None
    version = next(iter(weights))
    return version if version in spec.versions else None


def healthy(weights: Weights, serving: Callable[[str], bool]) -> Weights:
    """``weights`` without the versions that have no available replica (``serving(version)``
    is False); unchanged when that would leave none (then every choice fails the same way,
    with the backend's 503)."""
    if len(weights) < 2:
        return weights
    kept = {v: w for v, w in weights.items() if serving(v)}
    return kept or weights


def sticky_key(sticky: Sticky | None, call: Call) -> str | None:
    """What identifies the caller for ``sticky:``; None (round-robin) when there is nothing."""
    if sticky is None:
        return None
    if sticky.by == "tenant":
        return call.tenant
    if sticky.by == "api_key":
        caller = call.caller
        if caller is None or caller.principal.via != "api_key":
            return None
        return caller.principal.subject
    if sticky.by == "header":
        return call.headers.get(sticky.name or "")
    return cookie(call.headers, sticky.name or "")


def cookie(headers: Headers, name: str) -> str | None:
    """One cookie's value from the ``Cookie`` header(s) (RFC 6265 §5.4, leniently)."""
    for line in headers.getall("cookie"):
        for part in line.split(";"):
            key, sep, value = part.partition("=")
            if sep and key.strip() == name:
                return value.strip().strip('"')
    return None


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
